"""``tfod_tools.data.split``: stratified, group-aware splits on generated records (TF-free)."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfod_tools.data.records import ImageRecord, write_image_records
from tfod_tools.data.split import split_paths, split_records
from tfod_tools.data.split.strata import Group, stratify, total_variation
from tfod_tools.data.tfrecord import iter_records
from tfod_tools.errors import TfodError
from tfod_tools.odapi.label_map import write_label_map

NAMES = ["cat", "dog", "bird", "fish"]
TVD_SINGLE = 0.03  # one image per group, 400 images: stated tolerance of each split's TVD
TVD_GROUPED = 0.05  # 80 patients of ~5 images


def make_records(directory: Path, n: int = 400, patients: int = 80, seed: int = 3) -> tuple[Path, Path]:
    """``n`` records of ``patients`` patients (source id ``patNN_i``), 0-3 boxes, imbalanced classes."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        k = rng.choice([0, 0, 1, 1, 2, 3])
        classes = [rng.choices([1, 2, 3, 4], weights=[6, 3, 1.5, 0.5])[0] for _ in range(k)]
        records.append(
            ImageRecord.from_pixels(
                f"image-{i}".encode(),
                width=8,
                height=8,
                boxes=[[1, 1, 4, 4]] * k,
                classes=classes,
                label_map=NAMES,
                source_id=f"pat{rng.randrange(patients)}_{i}",
                filename=f"site{i % 7}/img{i}.png",
            )
        )
    half = n // 2
    write_image_records(directory / "a.record", records[:half])
    write_image_records(directory / "b.record", records[half:])
    write_label_map(directory / "lm.pbtxt", NAMES)
    return directory / "a.record", directory / "lm.pbtxt"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("split")
    make_records(directory)
    return directory


def inputs(d: Path) -> list[str]:
    return [str(d / "a.record"), str(d / "b.record")]


def all_records(paths: list[Path]) -> list[bytes]:
    return [data for p in paths for _, data in iter_records(p)]


def test_images_conserved_bytes_identical_and_stratified(data: Path, tmp_path: Path) -> None:
    m = split_records(inputs(data), data / "lm.pbtxt", tmp_path / "s", seed=0)
    paths = split_paths(tmp_path / "s", ["train", "val", "test"])
    outputs = all_records(paths[:-1])
    assert Counter(outputs) == Counter(all_records([data / "a.record", data / "b.record"]))
    assert [s["images"] for s in m["splits"]] == [len(list(iter_records(p))) for p in paths[:-1]]
    assert [s["images"] for s in m["splits"]] == [320, 40, 40]
    assert all(s["tvd"] < TVD_SINGLE for s in m["splits"]), [s["tvd"] for s in m["splits"]]
    assert json.loads(paths[-1].read_text()) == m
    for label, whole in m["classes"].items():
        assert sum(s["classes"][label]["images"] for s in m["splits"]) == whole["images"]
        if label != "negative":
            assert sum(s["classes"][label]["boxes"] for s in m["splits"]) == whole["boxes"]


def test_groups_kept_whole_and_stratified(data: Path, tmp_path: Path) -> None:
    m = split_records(
        inputs(data), data / "lm.pbtxt", tmp_path / "g", group_by=r"source_id_regex:^(pat\d+)_", seed=1
    )
    seen: dict[str, str] = {}
    for s in m["splits"]:
        for _, raw in iter_records(s["path"]):
            patient = ImageRecord.decode(raw).source_id.split("_")[0]
            assert seen.setdefault(patient, s["name"]) == s["name"], f"{patient} in two splits"
    assert len(seen) == m["groups"] == sum(s["groups"] for s in m["splits"])
    assert all(s["tvd"] < TVD_GROUPED for s in m["splits"]), [s["tvd"] for s in m["splits"]]
    assert all(abs(s["image_share"] - s["fraction"]) < 0.03 for s in m["splits"])


def test_deterministic_per_seed(data: Path, tmp_path: Path) -> None:
    def run(name: str, seed: int) -> list[bytes]:
        split_records(inputs(data), data / "lm.pbtxt", tmp_path / name, seed=seed, fractions=[0.5, 0.5])
        return [p.read_bytes() for p in split_paths(tmp_path / name, ["train", "val"])[:-1]]

    first, again, other = run("x", 7), run("x", 7), run("y", 8)
    assert first == again
    assert first != other


def test_manifest_is_byte_identical_for_a_seed(data: Path, tmp_path: Path) -> None:
    for name in ("m1", "m2"):
        (tmp_path / name).mkdir()
        split_records(inputs(data), data / "lm.pbtxt", tmp_path / name / "s", seed=2)
    a = (tmp_path / "m1" / "s-split.json").read_text().replace(str(tmp_path / "m1"), "")
    b = (tmp_path / "m2" / "s-split.json").read_text().replace(str(tmp_path / "m2"), "")
    assert a == b


def test_folds(data: Path, tmp_path: Path) -> None:
    m = split_records(
        inputs(data), data / "lm.pbtxt", tmp_path / "f", folds=5, group_by="filename_regex:^(site\\d+)/"
    )
    assert [s["name"] for s in m["splits"]] == [f"fold{i}" for i in range(5)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"f-fold{i}-of-5.record" for i in range(5)] + ["f-split.json"]
    )
    assert sum(s["groups"] for s in m["splits"]) == 7 and sum(s["images"] for s in m["splits"]) == 400


def test_csv_grouping(data: Path, tmp_path: Path) -> None:
    rows = ["source_id,group"]
    for _, raw in iter_records(data / "a.record"):
        sid = ImageRecord.decode(raw).source_id
        rows.append(f"{sid},{sid.split('_')[0]}")
    table = tmp_path / "groups.csv"
    table.write_text("\n".join(rows) + "\n")
    m = split_records(
        [data / "a.record"], data / "lm.pbtxt", tmp_path / "c", group_by=f"csv:{table}", fractions=[0.5, 0.5]
    )
    assert m["group_by"] == {"kind": "csv", "value": str(table)} and m["images"] == 200


def refused(tmp_path: Path, **kwargs: object) -> str:
    out = tmp_path / "out" / "r"
    with pytest.raises(TfodError) as info:
        split_records(**kwargs, out=out)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()
    return info.value.one_line()


def test_refusals_name_the_file_and_write_nothing(data: Path, tmp_path: Path) -> None:
    base = {"inputs": inputs(data), "label_map": data / "lm.pbtxt"}
    msg = refused(tmp_path, **base, group_by="source_id_regex:^pat[0-4]_")
    assert "a.record: record" in msg and "does not match" in msg
    table = tmp_path / "g.csv"
    table.write_text("source_id,group\npat1_0,p1\n")
    msg = refused(tmp_path, **base, group_by=f"csv:{table}")
    assert msg.startswith(f"{table}:") and "has no row" in msg
    msg = refused(tmp_path, **base, group_by="source_id_regex:^pat")  # one group for three splits
    assert "1 groups cannot fill 3 splits" in msg
    assert "sum to" in refused(tmp_path, **base, fractions=[0.5, 0.4])
    assert "> 0" in refused(tmp_path, **base, fractions=[1.2, -0.2])
    assert "--names" in refused(tmp_path, **base, names=["a", "b"])
    assert "not both" in refused(tmp_path, **base, folds=3, fractions=[0.5, 0.5])
    assert "not KIND:VALUE" in refused(tmp_path, **base, group_by="patient")


def test_a_group_too_large_for_a_split_is_refused(tmp_path: Path) -> None:
    """Groups of 10, 10 and 1 images: both large ones go to train (0.8), so one small split is empty."""
    records = [
        ImageRecord.from_pixels(b"x", width=4, height=4, boxes=[], classes=[], label_map=NAMES, source_id=s)
        for s in ["big_a"] * 10 + ["big_b"] * 10 + ["small"]
    ]
    write_image_records(tmp_path / "in.record", records)
    write_label_map(tmp_path / "lm.pbtxt", NAMES)
    kwargs = {"inputs": [tmp_path / "in.record"], "label_map": tmp_path / "lm.pbtxt"}
    msg = refused(tmp_path, **kwargs, group_by="source_id_regex:^[a-z]+(_[ab])?")
    assert msg.startswith(f"{tmp_path / 'in.record'}: split ") and "would be empty" in msg
    assert "alone has 10" in msg
    msg = refused(tmp_path, **kwargs, group_by="source_id_regex:^[a-z]+")  # big, small: 2 groups
    assert "2 groups cannot fill 3 splits" in msg


def test_output_over_an_input_is_refused(data: Path, tmp_path: Path) -> None:
    copy = tmp_path / "x-train.record"
    copy.write_bytes((data / "a.record").read_bytes())
    with pytest.raises(TfodError, match="overwrite an input"):
        split_records([copy], data / "lm.pbtxt", tmp_path / "x")
    assert copy.read_bytes() == (data / "a.record").read_bytes()


def test_total_variation() -> None:
    assert total_variation({"a": 1}, {"b": 1}) == 1.0
    assert total_variation({"a": 2, "b": 2}, {"a": 1, "b": 1}) == 0.0


@given(
    sizes=st.lists(st.integers(1, 6), min_size=6, max_size=40),
    seed=st.integers(0, 2**16),
    labels=st.lists(st.sampled_from(["a", "b", "c", "negative"]), min_size=40, max_size=40),
)
def test_stratify_assigns_every_group_once(sizes: list[int], seed: int, labels: list[str]) -> None:
    groups = [Group(str(i), n, {labels[i]: n}) for i, n in enumerate(sizes)]
    fractions = [0.6, 0.2, 0.2]
    assignment = stratify(groups, fractions, seed=seed)
    assert len(assignment) == len(groups) and set(assignment) <= {0, 1, 2}
    assert assignment == stratify(groups, fractions, seed=seed)
    # a split never gets more than its target plus the largest group (greedy by need, then refined)
    total = sum(sizes)
    for j, f in enumerate(fractions):
        got = sum(n for n, a in zip(sizes, assignment, strict=True) if a == j)
        assert got <= f * total + 2 * max(sizes) + 1


def test_an_interrupted_write_leaves_nothing(data: Path, tmp_path: Path) -> None:
    calls = []

    def progress(n: int) -> None:
        calls.append(n)
        if len(calls) == 400 + 250:  # pass 1 read 400 records; stop in the middle of pass 2
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        split_records(inputs(data), data / "lm.pbtxt", tmp_path / "new" / "s", progress=progress)
    assert list(tmp_path.iterdir()) == []


def test_manifest_failure_removes_the_split_files(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tfod_tools.data.split as split_module

    def fail(path: Path, text: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(split_module, "write_text_atomic", fail)
    with pytest.raises(OSError, match="disk full"):
        split_records(inputs(data), data / "lm.pbtxt", tmp_path / "new" / "s")
    assert list(tmp_path.iterdir()) == []


@given(
    sizes=st.lists(st.integers(1, 8), min_size=3, max_size=30),
    start=st.lists(st.integers(0, 2), min_size=30, max_size=30),
    seed=st.integers(0, 2**16),
)
def test_refine_never_empties_a_split_nor_worsens(sizes: list[int], start: list[int], seed: int) -> None:
    from tfod_tools.data.split.strata import refine

    groups = [Group(str(i), n, {"ab"[i % 2]: n}) for i, n in enumerate(sizes)]
    initial = [j if i >= 3 else i for i, j in enumerate(start[: len(sizes)])]  # every split starts non-empty
    refined = refine(groups, initial, [0.5, 0.3, 0.2], seed=seed)
    assert set(refined) == {0, 1, 2}

    def score(assignment: list[int]) -> float:
        whole = {"a": 0, "b": 0}
        for g in groups:
            for k, v in g.labels.items():
                whole[k] += v
        total = sum(sizes)
        result = 0.0
        for j, f in enumerate([0.5, 0.3, 0.2]):
            mine = [g for g, a in zip(groups, assignment, strict=True) if a == j]
            counts = {k: sum(g.labels.get(k, 0) for g in mine) for k in whole}
            result += total_variation(counts, whole) + abs(sum(g.images for g in mine) - f * total) / (
                f * total
            )
        return result

    assert score(refined) <= score(initial) + 1e-9
