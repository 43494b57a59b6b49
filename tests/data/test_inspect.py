"""tfod inspect: counts against the synthetic generator, every finding from a crafted record, CLI, no TF."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from tfod_tools.cli.app import main
from tfod_tools.data.inspect import inspect_records
from tfod_tools.data.records import ImageRecord, write_image_records
from tfod_tools.data.synthetic import write_synthetic_dataset
from tfod_tools.data.validate import ISSUE_CATALOG
from tfod_tools.odapi.label_map import LabelMap, write_label_map
from tfod_tools.odapi.pipeline import parse_pipeline_text, render_template, save_pipeline
from tfod_tools.odapi.resizer import ImageResizer

LM = LabelMap.from_names(["cat", "dog"])


def _jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 80, 40)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _record(
    source_id: str, boxes: list[list[float]], classes: list[int], size: tuple[int, int] = (100, 50)
) -> ImageRecord:
    return ImageRecord.from_pixels(
        _jpeg(*size),
        width=size[0],
        height=size[1],
        boxes=boxes,
        classes=classes,
        label_map=LM,
        source_id=source_id,
    )


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return write_synthetic_dataset(
        tmp_path_factory.mktemp("synth"),
        "xray-like",
        train_images=40,
        eval_images=8,
        seed=3,
        image_format="png",
    )


def test_counts_match_the_generator(synthetic) -> None:  # type: ignore[no-untyped-def]
    report = inspect_records(synthetic.train_record, synthetic.label_map)
    counts = synthetic.class_counts["train"]
    assert report.images == 40
    assert report.negative_images == synthetic.negative_images["train"]
    assert report.boxes == sum(counts.values())
    assert {name: c["boxes"] for name, c in report.per_class.items()} == counts
    assert report.area_buckets == synthetic.area_buckets["train"]
    assert report.image_sizes == {"256x256": 40}
    assert sum(v for k, v in report.aspect_ratios.items() if k != "quantiles") == report.boxes
    assert report.issues == []
    both = inspect_records([synthetic.train_record, synthetic.eval_record], synthetic.label_map)
    assert both.images == 48 and len(both.files) == 2


def test_every_finding_from_a_crafted_record(tmp_path: Path) -> None:
    good = _record("good", [[10, 10, 50, 40]], [1])
    records = [
        good,
        _record("outside", [[-5, 0, 50, 40]], [1]),
        replace(_record("nan", [[10, 10, 50, 40]], [1]), xmin=(float("nan"),)),
        _record("flat", [[10, 10, 10, 40]], [2]),
        _record("inverted", [[60, 10, 20, 40]], [2]),
        _record("dup", [[10, 10, 50, 40], [11, 10, 50, 40], [10, 10, 50, 40]], [1, 1, 2]),
        replace(good, source_id="mismatch", class_label=(2,)),
        replace(good, source_id="unknown-text", class_text=("horse",)),
        replace(good, source_id="unknown-label", class_text=(), class_label=(7,)),
        replace(good, source_id="zero", class_text=(), class_label=(0,)),
        replace(good, source_id="size", width=200),
        _record("many", [[1, 1, 9, 9], [20, 1, 29, 9], [40, 1, 49, 9]], [1, 2, 1]),
        replace(good, source_id="good"),
        replace(good, source_id=""),
        replace(good, source_id="broken", encoded=good.encoded[:-10]),
        replace(good, source_id="tiff", encoded=_tiff()),
    ]
    path = write_image_records(tmp_path / "bad.record", records)[0]
    lm = write_label_map(tmp_path / "lm.pbtxt", LM)
    config = parse_pipeline_text("train_config { max_number_of_boxes: 2 }")
    report = inspect_records(path, lm, pipeline=config)
    counts = {issue.id: issue.count for issue in report.issues}
    assert counts == {
        "undecodable_image": 2,
        "size_mismatch": 1,
        "box_outside_image": 1,
        "degenerate_box": 2,
        "inverted_box": 1,
        "duplicate_box": 1,  # boxes 0 and 1 (same class); box 2 is another class
        "class_text_mismatch": 1,
        "unknown_label": 2,
        "label_zero": 1,
        "too_many_boxes": 2,  # "dup" and "many" have 3 > 2
        "duplicate_source_id": 1,
        "missing_source_id": 1,
    }
    examples = {issue.id: issue.examples[0] for issue in report.issues}
    assert examples["inverted_box"].source_id == "inverted" and examples["inverted_box"].index == 4
    assert examples["inverted_box"].file == str(path)
    assert examples["duplicate_source_id"].detail == f"also record 0 of {path}"
    assert "truncated JPEG" in examples["undecodable_image"].detail
    assert "TIFF" in report.issue("undecodable_image").examples[1].detail  # type: ignore[union-attr]
    assert examples["size_mismatch"].detail == "stored 200x50, image is 100x50"
    assert examples["class_text_mismatch"].detail == "box 0: text 'cat' is id 1, label is 2"
    # the API counts the text's class: "mismatch" is a cat
    assert set(counts) <= set(ISSUE_CATALOG)
    assert report.max_boxes == 2 and report.max_boxes_source.startswith("train_config.max_number_of_boxes")
    no_decode = inspect_records(path, lm, decode_images=False)
    assert no_decode.issue("undecodable_image") is None and no_decode.issue("size_mismatch") is None
    assert no_decode.max_boxes == 100 and no_decode.issue("too_many_boxes") is None


def _tiff() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (100, 50)).save(buffer, format="TIFF")
    return buffer.getvalue()


def test_pipeline_model_input_buckets_max_boxes_and_num_classes(tmp_path: Path) -> None:
    # a 60x60 box in a 600x300 image: medium in original pixels, small in a 128x128 model input
    records = [_record("a", [[0, 0, 60, 60]], [1], size=(600, 300))]
    path = write_image_records(tmp_path / "eval.record", records)[0]
    config = render_template(
        "tiny-ssd",
        label_map={1: "cat", 2: "dog", 3: "cow"},
        train_records="x/train.record",
        eval_records="y/eval.record",
    )
    config.eval_input_reader[0].max_number_of_boxes = 7
    pipeline = save_pipeline(config, tmp_path / "pipeline.config")
    report = inspect_records(path, LM, pipeline=pipeline)
    assert report.area_buckets == {"small": 0, "medium": 1, "large": 0}
    assert report.model_area_buckets == {"small": 1, "medium": 0, "large": 0}
    assert report.model_input == ImageResizer("fixed_shape_resizer", height=128, width=128)
    assert (report.max_boxes, report.max_boxes_source) == (7, "eval_input_reader[0].max_number_of_boxes")
    mismatch = report.issue("num_classes_mismatch")
    assert mismatch is not None and mismatch.examples[0].detail == "label map max id 2, num_classes 3"


def test_cli_json_shape_and_exit_codes(synthetic, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert (
        main(["inspect", str(synthetic.eval_record), "--label-map", str(synthetic.label_map), "--json", "-q"])
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert {"images", "boxes", "negative_images", "per_class", "area_buckets", "issues"} <= set(doc)
    assert set(doc["per_class"]) == {"opacity", "nodule"}
    assert set(doc["per_class"]["opacity"]) == {"images", "boxes"}
    assert set(doc["area_buckets"]) == {"small", "medium", "large"}
    bad = write_image_records(tmp_path / "bad.record", [_record("", [[0, 0, 10, 10]], [1])])[0]
    lm = write_label_map(tmp_path / "lm.pbtxt", LM)
    assert main(["inspect", str(bad), "-l", str(lm), "--json", "-q", "--fail-on-issues"]) == 1
    issue = json.loads(capsys.readouterr().out)["issues"][0]
    assert issue["id"] == "missing_source_id" and set(issue) >= {"id", "count", "examples"}
    assert set(issue["examples"][0]) >= {"file", "index", "source_id"}
    # a truncated record file: exit 2, one line naming the file and record index
    data = synthetic.eval_record.read_bytes()
    (tmp_path / "cut.record").write_bytes(data[: len(data) - 100])
    assert main(["inspect", str(tmp_path / "cut.record"), "-l", str(synthetic.label_map), "-q"]) == 2
    err = capsys.readouterr().err
    assert "cut.record" in err and "record 7" in err
    assert main(["inspect", str(bad), "-l", str(tmp_path / "nope.pbtxt"), "-q"]) == 2


def test_inspect_does_not_import_tensorflow(synthetic, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = render_template(
        "tiny-ssd", label_map={1: "opacity", 2: "nodule"}, train_records="t", eval_records="e"
    )
    pipeline = save_pipeline(config, tmp_path / "pipeline.config")
    code = (
        "import sys\n"
        "from tfod_tools.cli.app import main\n"
        f"args = ['inspect', {str(synthetic.eval_record)!r}, '-l', {str(synthetic.label_map)!r}]\n"
        "rc = main([*args, '--json', '-q'])\n"
        "assert rc == 0, rc\n"
        f"rc = main([*args, '--pipeline', {str(pipeline)!r}, '--json', '-q'])\n"
        "assert rc == 0, rc\n"
        "print(sorted(m for m in sys.modules if m == 'tensorflow' or m.startswith('tensorflow.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
