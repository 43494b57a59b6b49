"""Synthetic data sets (write_synthetic_dataset) and the `tfod synth` command."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfod_tools.data.areas import COCO_AREA_RANGES, in_area_range
from tfod_tools.data.records import read_annotated_set, read_image_records
from tfod_tools.data.synthetic import (
    generate_images,
    parse_class_ratio,
    write_synthetic_dataset,
)
from tfod_tools.errors import TfodError
from tfod_tools.odapi.label_map import read_label_map


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.mark.parametrize("kind", ["shapes", "xray-like"])
def test_deterministic_by_seed(tmp_path: Path, kind: str) -> None:
    a = write_synthetic_dataset(tmp_path / "a", kind, train_images=6, eval_images=3, seed=5)
    b = write_synthetic_dataset(tmp_path / "b", kind, train_images=6, eval_images=3, seed=5)
    c = write_synthetic_dataset(tmp_path / "c", kind, train_images=6, eval_images=3, seed=6)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert sorted(_files(tmp_path / "a")) == ["eval.record", "label_map.pbtxt", "train.record"]
    assert a.train_record.read_bytes() != c.train_record.read_bytes()
    assert a.eval_record.read_bytes() != c.eval_record.read_bytes()
    assert a.to_dict()["class_counts"] == b.to_dict()["class_counts"]
    # train and eval are different images
    train = {r.key_sha256 for r in read_image_records(a.train_record)}
    evals = {r.key_sha256 for r in read_image_records(a.eval_record)}
    assert not train & evals


def test_defaults_and_summary_match_files(tmp_path: Path) -> None:
    ds = write_synthetic_dataset(tmp_path, "shapes")
    lm = read_label_map(ds.label_map)
    assert lm.categories() == {1: "square", 2: "triangle"}
    for split, path in (("train", ds.train_record), ("eval", ds.eval_record)):
        records = read_image_records(path)
        assert len(records) == ds.images[split] == {"train": 64, "eval": 16}[split]
        assert all(r.format == "jpeg" and r.encoded[:2] == b"\xff\xd8" for r in records)
        assert all(r.width == r.height == 128 for r in records)
        data = read_annotated_set(path, lm)
        counts = {
            name: int(np.sum(data.ground_truth.classes == cid)) for cid, name in lm.categories().items()
        }
        assert counts == ds.class_counts[split]
        assert sum(counts.values()) > ds.images[split]  # a few objects per image
        area = data.ground_truth.area
        assert area.min() >= (128 // 4) ** 2 * 0.99  # large-ish objects
        assert ds.negative_images[split] == 0


def test_boxes_are_tight_around_the_shapes(tmp_path: Path) -> None:
    from PIL import Image

    ds = write_synthetic_dataset(
        tmp_path, "shapes", train_images=6, eval_images=0, seed=3, image_format="png"
    )
    for record in read_image_records(ds.train_record):
        pixels = np.asarray(Image.open(io.BytesIO(record.encoded)), dtype=np.int32)
        background = np.median(pixels.reshape(-1, 3), axis=0)
        for x1, y1, x2, y2 in record.boxes_pixels().round().astype(int):
            inside = pixels[y1:y2, x1:x2]
            # Strongly coloured pixels reach every edge of the box and stay inside it.
            coloured = np.abs(inside - background).sum(axis=2) > 120
            assert coloured[:, 0].any() and coloured[:, -1].any() and coloured[0].any() and coloured[-1].any()
            ring = (
                np.abs(pixels[max(0, y1 - 1) : y2 + 1, max(0, x1 - 1) : x2 + 1] - background).sum(axis=2)
                > 120
            )
            assert ring.sum() == coloured.sum()


def test_xray_like_sizes_negatives_and_imbalance(tmp_path: Path) -> None:
    ds = write_synthetic_dataset(
        tmp_path, "xray-like", train_images=40, eval_images=20, seed=1, negative_share=0.3, class_ratio="4:1"
    )
    lm = read_label_map(ds.label_map)
    assert lm.names == ["opacity", "nodule"]
    assert ds.negative_images == {"train": 12, "eval": 6}
    for split, path in (("train", ds.train_record), ("eval", ds.eval_record)):
        records = read_image_records(path)
        assert sum(r.num_boxes == 0 for r in records) == ds.negative_images[split]
        assert all(r.width == 256 and r.encoded[:2] == b"\xff\xd8" for r in records)
        data = read_annotated_set(path, lm)
        assert not np.any(in_area_range(data.ground_truth.area, "large"))  # default: no large box
        assert ds.area_buckets[split]["large"] == 0
    train = ds.class_counts["train"]
    assert train["opacity"] > 2 * train["nodule"] > 0
    # Grayscale stored as 1-channel JPEG.
    from PIL import Image

    first = read_image_records(ds.train_record)[0]
    assert Image.open(io.BytesIO(first.encoded)).mode == "L"


def test_xray_like_size_options_control_buckets(tmp_path: Path) -> None:
    small = write_synthetic_dataset(tmp_path / "s", "xray-like", train_images=20, eval_images=0, max_size=31)
    assert small.area_buckets["train"]["medium"] == small.area_buckets["train"]["large"] == 0
    large = write_synthetic_dataset(
        tmp_path / "l",
        "xray-like",
        train_images=10,
        eval_images=0,
        min_size=100,
        max_size=120,
        negative_share=0,
    )
    data = read_annotated_set(large.train_record)
    assert len(data.ground_truth) >= 10 and np.all(in_area_range(data.ground_truth.area, "large"))
    assert np.all(data.ground_truth.area >= 100 * 100 * 0.999)
    assert large.area_buckets["train"]["large"] == len(data.ground_truth)
    assert COCO_AREA_RANGES["small"][1] < COCO_AREA_RANGES["large"][0]


def test_generate_images_and_bad_options() -> None:
    images = generate_images("shapes", "train", 3, seed=0, negative_share=1.0)
    assert all(len(i.boxes) == 0 and i.pixels.shape == (128, 128, 3) for i in images)
    assert parse_class_ratio([1, 3]) == (0.25, 0.75)
    for kwargs in (
        {"kind": "nope"},
        {"negative_share": 1.5},
        {"class_ratio": "1:0:2"},
        {"class_ratio": "a:b"},
        {"min_size": 50, "max_size": 10},
        {"image_size": 16},
    ):
        with pytest.raises(TfodError):
            generate_images(**{"kind": "xray-like", "split": "train", "count": 1, **kwargs})


def test_output_path_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(TfodError, match="not a directory"):
        write_synthetic_dataset(target)


def test_cli_runner_json(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tfod_tools.cli.app import _load_commands, app

    _load_commands()
    result = CliRunner().invoke(
        app,
        ["synth", "--kind", "xray-like", "--out", str(tmp_path), "--train-images", "5", "--eval-images", "2",
         "--seed", "3", "--negative-share", "0.4", "--max-size", "40", "--json", "-q"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["kind"] == "xray-like" and summary["images"] == {"train": 5, "eval": 2}
    assert summary["negative_images"] == {"train": 2, "eval": 1}
    assert Path(summary["train_record"]).is_file() and Path(summary["label_map"]).is_file()
    assert summary["area_buckets"]["train"]["large"] == 0


def test_cli_subprocess_human_and_errors(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "tfod_tools", "synth", "--out", str(tmp_path / "d"), "--train-images", "2"]
    done = subprocess.run([*cmd, "--eval-images", "1"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "square" in done.stdout and "train.record" in done.stdout
    assert (tmp_path / "d" / "eval.record").is_file()
    bad = subprocess.run([*cmd, "--kind", "cats"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2
    words = " ".join(bad.stderr.replace("│", " ").split())  # Typer's usage error, in a wrapped panel
    assert "'cats' is not one of 'shapes', 'xray-like'" in words
    assert bad.stdout == ""
