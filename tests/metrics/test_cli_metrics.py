"""``tfod metrics``: JSON and human output, bad input (exit 2), no TensorFlow import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tfod_tools.cli.app import main

REF = Path(__file__).resolve().parents[1] / "data" / "coco_val2014_100"
GT = REF / "instances_val2014_100.json"
DT = REF / "instances_val2014_fakebbox100_results.json"


def test_json_coco(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["metrics", "--gt", str(GT), "--dt", str(DT), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    expected = json.loads((REF / "expected.json").read_text())["bbox"]
    assert doc["protocol"] == "coco"
    for key, value in expected.items():
        assert abs(doc["stats"][key] - value) <= 1e-12
    assert set(doc["per_class"]["person"]) == set(expected)


def test_json_voc_with_threshold(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["metrics", "--gt", str(GT), "--dt", str(DT), "--protocol", "voc07", "--iou", "0.5", "--json"]
    assert main([*args, "--score-threshold", "0.5"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["protocol"] == "voc07" and doc["iou"] == 0.5 and 0 < doc["mAP"] < 1
    assert 0 <= doc["per_class"]["person"]["AP"] <= 1
    assert doc["counts"]["person"]["tp"] > 0
    assert 0 <= doc["image_level"]["person"]["at_threshold"]["sensitivity"] <= 1


def test_human_output_explains_minus_one(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    gt = {
        "info": {},
        "images": [{"id": 1, "width": 100, "height": 100}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "iscrowd": 0}],
    }
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(
        json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 1}])
    )
    assert main(["metrics", "--gt", str(tmp_path / "gt.json"), "--dt", str(tmp_path / "dt.json")]) == 0
    out = capsys.readouterr().out
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000" in out
    assert "-1.000  (no ground truth in area large)" in out


@pytest.mark.parametrize(
    ("dt", "message"),
    [
        ("[{not json", "malformed JSON"),
        (
            '[{"image_id": 999, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}]',
            "image ids not in the ground truth: 999",
        ),
        (
            '[{"image_id": 1, "category_id": 77, "bbox": [0, 0, 1, 1], "score": 1}]',
            "category ids not in the ground truth: 77",
        ),
        ('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, -1, 1], "score": 1}]', "negative width/height"),
        ('[{"image_id": 1, "category_id": 1, "bbox": [0, NaN, 1, 1], "score": 1}]', "NaN/inf bbox"),
    ],
)
def test_bad_input_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], dt: str, message: str) -> None:
    gt = {
        "info": {},
        "images": [{"id": 1, "width": 100, "height": 100}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [],
    }
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(dt)
    assert main(["metrics", "--gt", str(tmp_path / "gt.json"), "--dt", str(tmp_path / "dt.json")]) == 2
    assert message in capsys.readouterr().err


def test_mask_size_mismatch_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt = {
        "info": {},
        "images": [{"id": 1, "width": 100, "height": 100}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [
            {
                "id": 5,
                "image_id": 1,
                "category_id": 1,
                "bbox": [0, 0, 10, 10],
                "area": 100,
                "iscrowd": 0,
                "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]],
            }
        ],
    }
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    rle = {"size": [50, 60], "counts": "PPYo0"}
    (tmp_path / "dt.json").write_text(
        json.dumps([{"image_id": 1, "category_id": 1, "segmentation": rle, "score": 1}])
    )
    args = [
        "metrics",
        "--gt",
        str(tmp_path / "gt.json"),
        "--dt",
        str(tmp_path / "dt.json"),
        "--iou-type",
        "segm",
    ]
    assert main(args) == 2
    assert "masks whose size differs from their image: #0 (image 1)" in capsys.readouterr().err


def test_metrics_never_imports_tensorflow() -> None:
    code = (
        "import sys\n"
        "from tfod_tools.cli.app import main\n"
        f"rc = main(['metrics', '--gt', {str(GT)!r}, '--dt', {str(DT)!r}, '--json',"
        " '--score-threshold', '0.3'])\n"
        "assert rc == 0, rc\n"
        "bad = sorted(m for m in sys.modules if m == 'tensorflow' or m.startswith('tensorflow.'))\n"
        "print('TF', len(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("TF 0")
