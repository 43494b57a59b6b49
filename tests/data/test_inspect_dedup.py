"""tfod inspect: duplicate images within the records, and train/eval leaks with --against."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tfod_tools.cli.app import main
from tfod_tools.data.inspect import inspect_records
from tfod_tools.data.records import ImageRecord, write_image_records
from tfod_tools.errors import TfodError
from tfod_tools.odapi.label_map import LabelMap, write_label_map

LM = LabelMap.from_names(["cat", "dog"])


def _image(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = Image.fromarray((rng.random((6, 8, 3)) * 255).astype(np.uint8))
    return small.resize((160, 120), Image.Resampling.BICUBIC)


def _jpeg(img: Image.Image, quality: int = 92) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _record(source_id: str, data: bytes) -> ImageRecord:
    size = Image.open(io.BytesIO(data)).size
    return ImageRecord.from_pixels(
        data,
        width=size[0],
        height=size[1],
        boxes=[[0.1, 0.1, 0.5, 0.5]],
        classes=[1],
        label_map=LM,
        source_id=source_id,
    )


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    out = tmp_path_factory.mktemp("dedup")
    imgs = [_image(seed) for seed in range(8)]
    train = [_record(f"t{k}", _jpeg(img)) for k, img in enumerate(imgs[:6])]
    train.append(_record("t6-copy-of-t0", _jpeg(imgs[0])))  # exact within train
    train.append(_record("t7-q60-of-t1", _jpeg(imgs[1], 60)))  # near within train
    small = imgs[2].resize((80, 60), Image.Resampling.BILINEAR)
    evals = [
        _record("e0-half-of-t2", _jpeg(small)),  # near leak
        _record("e1", _jpeg(imgs[6])),
        _record("e2-same-as-t3", _jpeg(imgs[3])),  # exact leak
        _record("e3", _jpeg(imgs[7])),
    ]
    write_image_records(out / "train.record", train)
    write_image_records(out / "eval.record", evals)
    return out / "train.record", out / "eval.record", write_label_map(out / "label_map.pbtxt", LM)


def test_duplicates_within_the_records(splits: tuple[Path, Path, Path]) -> None:
    train, _, lm = splits
    report = inspect_records(train, lm)
    found = report.to_dict()["duplicate_images"]
    assert found["images_hashed"] == 8 and found["exact_pairs"] == 1 and found["near_pairs"] == 1
    assert [(p["a"]["source_id"], p["b"]["source_id"], p["distance"]) for p in found["exact"]] == [
        ("t0", "t6-copy-of-t0", 0)
    ]
    assert [(p["a"]["index"], p["b"]["index"]) for p in found["near"]] == [(1, 7)]
    assert report.leaks is None and report.to_dict()["train_eval_leak"] is None


def test_no_decode_skips_the_duplicate_search(splits: tuple[Path, Path, Path]) -> None:
    train, other, lm = splits
    assert inspect_records(train, lm, decode_images=False).duplicates is None
    with pytest.raises(TfodError, match="drop --no-decode"):
        inspect_records(train, lm, decode_images=False, against=[other])


def test_against_reports_the_train_eval_leak(splits: tuple[Path, Path, Path]) -> None:
    train, other, lm = splits
    leaks = inspect_records(train, lm, against=[other]).leaks
    assert leaks is not None and leaks["against"] == [str(other)]
    assert [(p["a"]["source_id"], p["b"]["source_id"]) for p in leaks["exact"]] == [("t3", "e2-same-as-t3")]
    assert [(p["a"]["source_id"], p["b"]["source_id"]) for p in leaks["near"]] == [("t2", "e0-half-of-t2")]
    assert (
        0 <= leaks["near"][0]["distance"] <= leaks["max_distance"]
    )  # not the same bytes, maybe the same hash


def test_cli_json_and_human(splits: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    train, other, lm = splits
    args = ["inspect", str(train), "-l", str(lm), "--against", str(other)]
    assert main([*args, "--json", "-q"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["train_eval_leak"]["exact_pairs"] == 1 and data["train_eval_leak"]["near_pairs"] == 1
    assert data["duplicate_images"]["exact_pairs"] == 1
    assert main([*args, "--fail-on-issues", "-q"]) == 1
    out = capsys.readouterr().out
    assert "train/eval leak against" in out and "e0-half-of-t2" in out and "tfod split --group-by" in out
    assert main(["inspect", str(other), "-l", str(lm), "--fail-on-issues", "-q"]) == 0
    assert "duplicate images: 0 exact, 0 near" in capsys.readouterr().out


def test_small_look_alike_records_report_no_false_pairs(tmp_path: Path) -> None:
    from tfod_tools.data.synthetic import write_synthetic_dataset

    write_synthetic_dataset(tmp_path, kind="xray-like", train_images=10, eval_images=10)
    found = inspect_records(tmp_path / "eval.record", tmp_path / "label_map.pbtxt").to_dict()[
        "duplicate_images"
    ]
    assert found["images_hashed"] == 10 and found["fine_hash_confirmed"]  # too few to calibrate
    assert found["unrelated_pair_distance_p1"] is None
    assert (found["exact_pairs"], found["near_pairs"]) == (0, 0)  # independent images: no pair
    leaks = inspect_records(
        tmp_path / "train.record", tmp_path / "label_map.pbtxt", against=[tmp_path / "eval.record"]
    )
    assert leaks.leaks is not None and leaks.leaks["near_pairs"] == 0
