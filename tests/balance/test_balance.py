"""End to end: manifest, plan-consistent counts, determinism across workers, guards, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfod_tools.data.balance import balance, is_eval_split, make_plan
from tfod_tools.data.records import ImageRecord, read_image_records, write_image_records
from tfod_tools.data.synthetic import SyntheticDataset
from tfod_tools.data.tfrecord import count_records, read_records
from tfod_tools.errors import TfodError
from tfod_tools.fsutil import sha256_file
from tfod_tools.odapi.label_map import read_label_map

from .conftest import files_in


def _classes(path: Path) -> list[set[int]]:
    return [set(r.class_label) for r in read_image_records(path)]


@pytest.mark.parametrize("strategy", ["repeat-factor", "oversample"])
def test_manifest_counts_follow_the_plan(xray: SyntheticDataset, tmp_path: Path, strategy: str) -> None:
    # aerial: flips and 90-degree rotations only, so no box is ever lost and counts are exact.
    out = tmp_path / "bal.record"
    m = balance(
        [xray.train_record],
        xray.label_map,
        out,
        recipe="aerial",
        strategy=strategy,
        threshold=0.6,
        shards=3,
        seed=4,
    )
    originals = read_image_records(xray.train_record)
    plan = make_plan(_classes(xray.train_record), strategy=strategy, threshold=0.6, seed=4)
    assert m["plan"]["records"] == plan.total == m["records"] > len(originals)
    names = read_label_map(xray.label_map).categories()
    for cid, name in names.items():
        with_c = [(r, k) for r, k in zip(originals, plan.repeats, strict=True) if cid in r.class_label]
        assert m["counts_before"][name] == {
            "images": len(with_c),
            "boxes": sum(r.class_label.count(cid) for r, _ in with_c),
        }
        assert m["counts_after"][name] == {
            "images": sum(k for _, k in with_c),
            "boxes": sum(k * r.class_label.count(cid) for r, k in with_c),
        }
    negatives = [k for r, k in zip(originals, plan.repeats, strict=True) if not r.num_boxes]
    assert m["counts_before"]["negative"] == {"images": len(negatives)}
    assert m["counts_after"]["negative"] == {"images": sum(negatives)}
    assert m["boxes_dropped"] == {} and m["skipped_images"] == {"count": 0, "ids": []}
    # Shards: names, counts and hashes match the files; round robin over the output order.
    assert [s["path"] for s in m["shards"]] == [f"{out}-0000{i}-of-00003" for i in range(3)]
    for shard in m["shards"]:
        assert shard["records"] == count_records(shard["path"]) and shard["sha256"] == sha256_file(
            shard["path"]
        )
    records = [ImageRecord.decode(d) for s in m["shards"] for d in read_records(s["path"])]
    assert len({r.source_id for r in records}) == len(records) == plan.total
    assert len({r.key_sha256 for r in records}) == len(records)
    assert {r.source_id for r in records if "#aug" not in r.source_id} == {r.source_id for r in originals}
    on_disk = json.loads((tmp_path / "bal.record.manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(m))
    assert m["inputs"] == [{"path": str(xray.train_record), "sha256": sha256_file(xray.train_record)}]
    assert m["seed"] == 4 and m["recipe"]["name"] == "aerial" and len(m["recipe_sha256"]) == 64
    assert m["recipe"]["albumentations"]["transform"]["__class_fullname__"] == "Compose"


def test_originals_are_written_unchanged(xray: SyntheticDataset, tmp_path: Path) -> None:
    out = tmp_path / "o.record"
    balance([xray.train_record], xray.label_map, out, recipe="chest-xray", strategy="oversample")
    written = set(read_records(out))
    assert set(read_records(xray.train_record)) <= written


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**20), shards=st.integers(1, 3), recipe=st.sampled_from(["chest-xray", "natural"])
)
def test_output_is_identical_for_one_and_two_workers(
    xray: SyntheticDataset, tmp_path_factory: pytest.TempPathFactory, seed: int, shards: int, recipe: str
) -> None:
    shard_digests: list[list[tuple[str, str, str]]] = []
    manifests: list[str] = []
    for workers in (1, 2):
        out = tmp_path_factory.mktemp("w") / "bal.record"
        m = balance(
            [xray.train_record],
            xray.label_map,
            out,
            recipe=recipe,
            strategy="oversample",
            seed=seed,
            shards=shards,
            workers=workers,
        )
        shard_digests.append(
            [(Path(s["path"]).name, s["sha256"], sha256_file(s["path"])) for s in m["shards"]]
        )
        m.pop("shards")
        manifests.append(json.dumps(m, sort_keys=True).replace(str(out), "OUT"))
    assert shard_digests[0] == shard_digests[1] and manifests[0] == manifests[1]
    assert all(a == b for _, a, b in shard_digests[0]) and len(shard_digests[0]) == shards


def test_different_seed_different_copies(xray: SyntheticDataset, tmp_path: Path) -> None:
    a = balance(
        [xray.train_record],
        xray.label_map,
        tmp_path / "a.record",
        recipe="natural",
        strategy="oversample",
        seed=1,
    )
    b = balance(
        [xray.train_record],
        xray.label_map,
        tmp_path / "b.record",
        recipe="natural",
        strategy="oversample",
        seed=2,
    )
    assert a["plan"]["copies"] > 0
    assert a["shards"][0]["sha256"] != b["shards"][0]["sha256"]


def _truncate(src: Path, dst: Path, cut: int) -> None:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) - cut])


@pytest.mark.parametrize("damage", ["truncated", "crc"])
def test_corrupt_input_names_file_and_record_and_leaves_nothing(
    xray: SyntheticDataset, tmp_path: Path, damage: str
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    good = inputs / "a.record"
    shutil.copy(xray.train_record, good)
    bad = inputs / "b.record"
    n = count_records(xray.train_record)
    if damage == "truncated":
        _truncate(xray.train_record, bad, 10)
        pattern = rf"b\.record: record {n - 1}: truncated"
    else:
        data = bytearray(xray.train_record.read_bytes())
        data[len(data) // 2] ^= 0xFF
        bad.write_bytes(bytes(data))
        pattern = r"b\.record: record \d+: data CRC mismatch"
    outdir = tmp_path / "out"
    outdir.mkdir()
    with pytest.raises(TfodError, match=pattern):
        balance(
            [good, bad],
            xray.label_map,
            outdir / "bal.record",
            recipe="natural",
            shards=2,
            workers=2,
            emit_sampling_config=True,
        )
    assert files_in(outdir) == []


def _with_bad_image(xray: SyntheticDataset, path: Path) -> list[ImageRecord]:
    from dataclasses import replace

    records = read_image_records(xray.train_record)
    victim = next(i for i, r in enumerate(records) if r.class_label and 2 in r.class_label)
    records[victim] = replace(records[victim], encoded=b"\xff\xd8 garbage, not a JPEG", source_id="broken-1")
    write_image_records(path, records)
    return records


@pytest.mark.parametrize("workers", [1, 2])
def test_bad_image_fail_and_skip(xray: SyntheticDataset, tmp_path: Path, workers: int) -> None:
    src = tmp_path / "train_bad.record"
    records = _with_bad_image(xray, src)
    outdir = tmp_path / "out"
    outdir.mkdir()
    with pytest.raises(
        TfodError, match=r"train_bad\.record: record \d+ \(source id broken-1\): .*does not decode"
    ):
        balance(
            [src],
            xray.label_map,
            outdir / "bal.record",
            recipe="chest-xray",
            strategy="oversample",
            workers=workers,
            shards=2,
        )
    assert files_in(outdir) == []  # no shard, temporary file or worker spool left behind
    m = balance(
        [src],
        xray.label_map,
        outdir / "bal.record",
        recipe="chest-xray",
        strategy="oversample",
        on_bad_image="skip",
        workers=workers,
    )
    assert files_in(outdir) == ["bal.record", "bal.record.manifest.json"]
    assert m["skipped_images"] == {"count": 1, "ids": ["broken-1"]}
    written = [ImageRecord.decode(d) for d in read_records(outdir / "bal.record")]
    assert not any(r.source_id.startswith("broken-1") for r in written)
    plan = make_plan([set(r.class_label) for r in records], strategy="oversample", seed=0)
    victim = next(i for i, r in enumerate(records) if r.source_id == "broken-1")
    assert len(written) == plan.total - plan.repeats[victim]


@pytest.mark.parametrize(
    "name", ["eval.record", "val.record", "coco_test-00000-of-00001", "train_val.tfrecord"]
)
def test_eval_split_is_refused_unless_allowed(xray: SyntheticDataset, tmp_path: Path, name: str) -> None:
    src = tmp_path / name
    shutil.copy(xray.train_record, src)
    with pytest.raises(TfodError, match=r"refusing to augment an evaluation split.*--allow-eval"):
        balance([src], xray.label_map, tmp_path / "bal.record", recipe="aerial")
    assert not (tmp_path / "bal.record").exists()
    m = balance([src], xray.label_map, tmp_path / "bal.record", recipe="aerial", allow_eval=True)
    assert m["records"] >= count_records(src)
    assert not is_eval_split("interval.record") and not is_eval_split("train.record")


def test_output_that_would_overwrite_an_input_is_refused(xray: SyntheticDataset, tmp_path: Path) -> None:
    src = tmp_path / "train.record"
    shutil.copy(xray.train_record, src)
    before = sha256_file(src)
    with pytest.raises(TfodError, match=r"train\.record: the output would overwrite an input"):
        balance([src], xray.label_map, src, recipe="aerial")
    shard = tmp_path / "x.record-00001-of-00002"
    shutil.copy(xray.train_record, shard)
    with pytest.raises(TfodError, match="would overwrite an input"):
        balance([shard], xray.label_map, tmp_path / "x.record", recipe="aerial", shards=2)
    with pytest.raises(TfodError, match="would overwrite an input"):
        balance(
            [src], xray.label_map, Path(str(xray.label_map).removesuffix(".manifest.json")), recipe="aerial"
        )
    assert sha256_file(src) == before


def test_sampling_config_parses_with_the_api_protos(xray: SyntheticDataset, tmp_path: Path) -> None:
    from google.protobuf import text_format

    from tfod_tools.data.balance.sampling import input_reader_text
    from tfod_tools.odapi import compat

    compat.install_protos()
    from object_detection.protos import input_reader_pb2, pipeline_pb2

    out = tmp_path / "bal.record"
    m = balance([xray.train_record], xray.label_map, out, recipe="aerial", emit_sampling_config=True)
    info = m["sampling_config"]
    config = text_format.Parse(Path(info["path"]).read_text(), pipeline_pb2.TrainEvalPipelineConfig())
    reader = config.train_input_reader
    paths = list(reader.tf_record_input_reader.input_path)
    assert paths == [g["path"] for g in info["groups"]]
    assert len(reader.sample_from_datasets_weights) == len(paths)
    assert sum(reader.sample_from_datasets_weights) == pytest.approx(1.0, abs=1e-5)
    assert reader.label_map_path == str(xray.label_map)
    plan_totals = m["plan"]["group_totals"]
    for group, weight in zip(info["groups"], reader.sample_from_datasets_weights, strict=True):
        name = group["path"].rsplit(".group-", 1)[1]
        assert weight == pytest.approx(plan_totals[name] / m["plan"]["records"], abs=1e-5)
        assert group["records"] == count_records(group["path"]) and group["sha256"] == sha256_file(
            group["path"]
        )
    assert sum(g["records"] for g in info["groups"]) == count_records(xray.train_record)
    body = input_reader_text(paths, list(reader.sample_from_datasets_weights))
    parsed = text_format.Parse(body, input_reader_pb2.InputReader())
    assert list(parsed.tf_record_input_reader.input_path) == paths


def test_balance_never_imports_tensorflow(xray: SyntheticDataset, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from tfod_tools.data.balance import balance\n"
        f"balance([{str(xray.train_record)!r}], {str(xray.label_map)!r}, {str(tmp_path / 'b.record')!r},"
        " recipe='chest-xray', workers=2, shards=2)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_a_worker_that_dies_is_a_clear_error(tmp_path: Path) -> None:
    from tfod_tools.data.balance.recipes import load_recipe
    from tfod_tools.data.balance.write import Runner

    with (
        pytest.raises(TfodError, match="worker process died"),
        Runner(load_recipe("natural"), workers=2) as runner,
    ):
        list(runner.map(os._exit, [3, 3, 3]))  # each worker exits mid-job (as if OOM-killed)
