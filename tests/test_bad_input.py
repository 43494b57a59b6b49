"""Bad input through the real CLI (``python -m tfod_tools``): exit 2, one line naming the file, no output.

Every case builds a good input with the project's own writers (:mod:`tfod_tools.data.synthetic`,
:func:`~tfod_tools.data.records.write_image_records`, :class:`~tfod_tools.tensorboard.writer.EventWriter`,
the pipeline templates), damages it, and runs a TF-free command on it in a subprocess, as a user
would. It must exit 2 with exactly one line on stderr - ``error: FILE: what (fix: how)``, naming
the damaged file, no traceback - and leave nothing under the output name (the output directory of
each case does not exist before and must not exist after). Commands with a status line
(``inspect``, ``diagnose``) run with ``-q``; the others run as they are, so a progress bar left on
stderr would fail the case. ``tfod evaluate``'s bad input is tested in
``tests/evaluation/test_bad_input.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tfod_tools.data.records import read_image_records, write_image_records
from tfod_tools.data.synthetic import SyntheticDataset, write_synthetic_dataset
from tfod_tools.odapi.pipeline import pipeline_to_text, render_template
from tfod_tools.tensorboard.writer import EventWriter


@dataclass(frozen=True)
class Inputs:
    """The good inputs every case damages, under ``root``."""

    root: Path
    data: SyntheticDataset
    model_dir: Path  # train/ and eval/ event files
    pipeline: Path


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    root = tmp_path_factory.mktemp("bad_input")
    data = write_synthetic_dataset(root / "data", "shapes", train_images=6, eval_images=3, seed=3)
    model_dir = root / "model"
    for run, tag in (("train", "Loss/total_loss"), ("eval", "DetectionBoxes_Precision/mAP")):
        with EventWriter(model_dir / run) as writer:
            for step in (100, 200, 300):
                writer.add_scalar(tag, 1.0 / step, step)
    config = render_template(
        "tiny-ssd", label_map=data.label_map, train_records=data.train_record, eval_records=data.eval_record
    )
    pipeline = root / "pipeline.config"
    pipeline.write_text(pipeline_to_text(config))
    return Inputs(root, data, model_dir, pipeline)


def _frame_ends(path: Path) -> list[int]:
    """Byte offsets where each TFRecord frame of ``path`` ends."""
    data, ends, pos = path.read_bytes(), [], 0
    while pos < len(data):
        pos += 16 + int.from_bytes(data[pos : pos + 8], "little")
        ends.append(pos)
    return ends


def _cut(src: Path, dst: Path, at: int) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(src.read_bytes()[:at])
    return dst


def _event_file(run_dir: Path) -> Path:
    (path,) = sorted(run_dir.glob("events.out.tfevents.*"))
    return path


# Each case: (inputs, a fresh directory for its damaged files) -> (argv after `tfod`, damaged file,
# output path that must not appear).
Case = Callable[[Inputs, Path], tuple[list[str], Path, Path | None]]


def truncated_record_inspect(g: Inputs, d: Path) -> tuple[list[str], Path, Path | None]:
    ends = _frame_ends(g.data.train_record)
    bad = _cut(g.data.train_record, d / "train.record", ends[-2] + 40)  # inside the last record
    return ["inspect", str(bad), "-l", str(g.data.label_map), "-q"], bad, None


def truncated_record_balance(g: Inputs, d: Path) -> tuple[list[str], Path, Path | None]:
    ends = _frame_ends(g.data.train_record)
    bad = _cut(g.data.train_record, d / "train.record", ends[1] + 5)  # inside the third header
    out = d / "out" / "balanced.record"
    return ["balance", "-i", str(bad), "--label-map", str(g.data.label_map), "--out", str(out)], bad, out


def record_file_that_is_an_event_file(g: Inputs, d: Path) -> tuple[list[str], Path, Path | None]:
    bad = d / "train.record"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(_event_file(g.model_dir / "train").read_bytes())  # framed, but Events, not Examples
    return ["inspect", str(bad), "-l", str(g.data.label_map), "-q"], bad, None


def truncated_event_file(g: Inputs, d: Path) -> tuple[list[str], Path, Path | None]:
    source = _event_file(g.model_dir / "train")
    ends = _frame_ends(source)  # file_version, then three scalars
    bad = _cut(source, d / "model" / "train" / source.name, ends[0] + 20)  # inside the first scalar
    out = d / "out" / "curves.csv"
    return ["curves", "--model-dir", str(d / "model"), "--out", str(out)], bad, out


def text_named_like_an_event_file(g: Inputs, d: Path) -> tuple[list[str], Path, Path | None]:
    bad = d / "model" / "eval" / _event_file(g.model_dir / "eval").name
    bad.parent.mkdir(parents=True)
    bad.write_text("step,mAP\n100,0.25\n200,0.5\n")
    out = d / "out" / "curves.csv"
    return ["curves", "--model-dir", str(d / "model"), "--out", str(out)], bad, out


def record_file_named_like_an_event_file(g: Inputs, d: Path) -> tuple[list[str], Path, Path | None]:
    bad = d / "model" / "eval" / _event_file(g.model_dir / "eval").name
    bad.parent.mkdir(parents=True)
    bad.write_bytes(g.data.eval_record.read_bytes())  # framed, CRCs fine, but tf.train.Examples
    out = d / "out" / "report.html"
    return ["diagnose", "--model-dir", str(d / "model"), "--html", str(out), "-q"], bad, out


def _duplicate_ids(d: Path) -> Path:
    bad = d / "label_map.pbtxt"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("item { id: 1 name: 'square' }\nitem { id: 1 name: 'triangle' }\n")
    return bad


def duplicate_label_map_ids_balance(g: Inputs, d: Path) -> tuple[list[str], Path, Path | None]:
    bad = _duplicate_ids(d)
    out = d / "out" / "balanced.record"
    args = ["balance", "-i", str(g.data.train_record), "--label-map", str(bad), "--out", str(out)]
    return args, bad, out


def duplicate_label_map_ids_convert(g: Inputs, d: Path) -> tuple[list[str], Path, Path | None]:
    bad = _duplicate_ids(d)
    coco = d / "instances.json"
    coco.write_text(json.dumps(_coco(g)))
    out = d / "out" / "train.record"
    return ["convert", "--from", "coco", "-a", str(coco), "--classes", str(bad), "--out", str(out)], bad, out


def nan_box_in_a_record(g: Inputs, d: Path) -> tuple[list[str], Path, Path | None]:
    records = read_image_records(g.data.train_record)
    first = records[1]
    records[1] = replace(first, ymax=(float("nan"), *first.ymax[1:]))
    (bad,) = write_image_records(d / "train.record", records)
    out = d / "out" / "balanced.record"
    args = ["balance", "-i", str(bad), "--label-map", str(g.data.label_map), "--out", str(out)]
    return [*args, "--strategy", "oversample"], bad, out


def _coco(g: Inputs) -> dict[str, object]:
    """A COCO ground truth for the synthetic eval images (image ids 1..3)."""
    images = [{"id": i, "width": 128, "height": 128, "file_name": f"{i}.jpg"} for i in (1, 2, 3)]
    annotations = [
        {"id": i, "image_id": i, "category_id": 1, "bbox": [10, 10, 40, 30], "area": 1200, "iscrowd": 0}
        for i in (1, 2, 3)
    ]
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "square"}]}


def unknown_image_ids_in_detections(g: Inputs, d: Path) -> tuple[list[str], Path, Path | None]:
    d.mkdir(parents=True)
    gt = d / "gt.json"
    gt.write_text(json.dumps(_coco(g)))
    bad = d / "detections.json"
    detections = [
        {"image_id": i, "category_id": 1, "bbox": [10, 10, 40, 30], "score": 0.9} for i in (1, 2, 7)
    ]
    bad.write_text(json.dumps(detections))
    return ["metrics", "--gt", str(gt), "--dt", str(bad)], bad, None


def _placeholder_pipeline(g: Inputs, d: Path) -> Path:
    bad = d / "pipeline.config"
    bad.parent.mkdir(parents=True, exist_ok=True)
    text = g.pipeline.read_text().replace(
        "train_config {",
        'train_config {\n  fine_tune_checkpoint: "PATH_TO_BE_CONFIGURED/checkpoint/ckpt-0"',
        1,
    )
    bad.write_text(text)
    return bad


def _inspect_with(g: Inputs, pipeline: Path) -> tuple[list[str], Path, Path | None]:
    return (
        ["inspect", str(g.data.train_record), "-l", str(g.data.label_map), "-p", str(pipeline), "-q"],
        pipeline,
        None,
    )


def _diagnose_with(g: Inputs, pipeline: Path, d: Path) -> tuple[list[str], Path, Path | None]:
    out = d / "out" / "report.html"
    args = [
        "diagnose",
        "--model-dir",
        str(g.model_dir),
        "--pipeline",
        str(pipeline),
        "--html",
        str(out),
        "-q",
    ]
    return args, pipeline, out


def placeholder_fine_tune_checkpoint_inspect(g: Inputs, d: Path) -> tuple[list[str], Path, Path | None]:
    return _inspect_with(g, _placeholder_pipeline(g, d))


def placeholder_fine_tune_checkpoint_diagnose(g: Inputs, d: Path) -> tuple[list[str], Path, Path | None]:
    return _diagnose_with(g, _placeholder_pipeline(g, d), d)


def _balance_with_recipe(g: Inputs, d: Path, text: str) -> tuple[list[str], Path, Path | None]:
    bad = d / "recipe.yaml"
    bad.parent.mkdir(parents=True)
    bad.write_text(text)
    out = d / "out" / "balanced.record"
    args = ["balance", "-i", str(g.data.train_record), "--label-map", str(g.data.label_map)]
    return [*args, "--recipe", str(bad), "--out", str(out)], bad, out


def recipe_that_is_not_a_recipe(g: Inputs, d: Path) -> tuple[list[str], Path, Path | None]:
    return _balance_with_recipe(
        g, d, "name: my-recipe\ntransforms: [HorizontalFlip, Rotate]\n"
    )  # not A.to_dict


def recipe_that_is_not_yaml(g: Inputs, d: Path) -> tuple[list[str], Path, Path | None]:
    return _balance_with_recipe(g, d, "albumentations: {transform: [unclosed\n")


def _unparsable_pipeline(g: Inputs, d: Path) -> Path:
    bad = d / "pipeline.config"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text(g.pipeline.read_text().replace("batch_size:", "batch_sise:", 1))
    return bad


def pipeline_that_does_not_parse_inspect(g: Inputs, d: Path) -> tuple[list[str], Path, Path | None]:
    return _inspect_with(g, _unparsable_pipeline(g, d))


def pipeline_that_does_not_parse_diagnose(g: Inputs, d: Path) -> tuple[list[str], Path, Path | None]:
    return _diagnose_with(g, _unparsable_pipeline(g, d), d)


_COCO_CUT_SHORT = "not JSON"
_COCO_WITHOUT_IMAGES = "no images"


def _bad_coco(g: Inputs, d: Path, name: str, damage: str) -> Path:
    d.mkdir(parents=True)
    bad = d / name
    if damage == _COCO_CUT_SHORT:
        bad.write_text(json.dumps(_coco(g))[:-20])
    else:
        bad.write_text(json.dumps({k: v for k, v in _coco(g).items() if k != "images"}))
    return bad


def _metrics_with(g: Inputs, d: Path, damage: str) -> tuple[list[str], Path, Path | None]:
    bad = _bad_coco(g, d, "gt.json", damage)
    (d / "dt.json").write_text("[]")
    return ["metrics", "--gt", str(bad), "--dt", str(d / "dt.json")], bad, None


def _convert_with(g: Inputs, d: Path, damage: str) -> tuple[list[str], Path, Path | None]:
    bad = _bad_coco(g, d, "instances.json", damage)
    out = d / "out" / "train.record"
    return ["convert", "--from", "coco", "-a", str(bad), "--out", str(out)], bad, out


def coco_that_is_not_json_metrics(g: Inputs, d: Path) -> tuple[list[str], Path, Path | None]:
    return _metrics_with(g, d, _COCO_CUT_SHORT)


def coco_without_images_metrics(g: Inputs, d: Path) -> tuple[list[str], Path, Path | None]:
    return _metrics_with(g, d, _COCO_WITHOUT_IMAGES)


def coco_that_is_not_json_convert(g: Inputs, d: Path) -> tuple[list[str], Path, Path | None]:
    return _convert_with(g, d, _COCO_CUT_SHORT)


def coco_without_images_convert(g: Inputs, d: Path) -> tuple[list[str], Path, Path | None]:
    return _convert_with(g, d, _COCO_WITHOUT_IMAGES)


def convert_with_a_missing_image(g: Inputs, d: Path) -> tuple[list[str], Path, Path | None]:
    """Two images exist, the third does not: the first records were already being written."""
    from PIL import Image

    d.mkdir(parents=True)
    for i in (1, 2):
        Image.new("RGB", (128, 128), (200, 200, 200)).save(d / f"{i}.jpg")
    coco = d / "instances.json"
    coco.write_text(json.dumps(_coco(g)))
    out = d / "out" / "sub" / "train.record"
    return (
        ["convert", "--from", "coco", "-a", str(coco), "--out", str(out), "--shards", "2"],
        d / "3.jpg",
        out,
    )


CASES: list[Case] = [
    truncated_record_inspect,
    truncated_record_balance,
    record_file_that_is_an_event_file,
    truncated_event_file,
    text_named_like_an_event_file,
    record_file_named_like_an_event_file,
    duplicate_label_map_ids_balance,
    duplicate_label_map_ids_convert,
    nan_box_in_a_record,
    unknown_image_ids_in_detections,
    placeholder_fine_tune_checkpoint_inspect,
    placeholder_fine_tune_checkpoint_diagnose,
    recipe_that_is_not_a_recipe,
    recipe_that_is_not_yaml,
    pipeline_that_does_not_parse_inspect,
    pipeline_that_does_not_parse_diagnose,
    coco_that_is_not_json_metrics,
    coco_without_images_metrics,
    coco_that_is_not_json_convert,
    coco_without_images_convert,
    convert_with_a_missing_image,
]


@pytest.mark.parametrize("case", CASES, ids=[case.__name__ for case in CASES])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(good: Inputs, case: Case) -> None:
    workdir = good.root / "cases" / case.__name__
    args, damaged, out = case(good, workdir)
    assert out is None or not out.parent.exists()
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "tfod_tools", *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    (line,) = lines
    assert line.startswith("error: ") and "(fix: " in line, line
    assert str(damaged) in line, line
    assert proc.stdout == ""
    if out is not None:
        assert not out.exists()
        assert not (workdir / "out").exists(), sorted(p.name for p in (workdir / "out").rglob("*"))
