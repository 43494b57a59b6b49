"""``tfod diagnose``: JSON document, human output, exit codes, and no TensorFlow import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tfod_tools.cli.app import main
from tfod_tools.data.synthetic import SyntheticDataset


def test_json_document(model_dir: Path, xray: SyntheticDataset, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["diagnose", "--model-dir", str(model_dir), "--eval-records", str(xray.eval_record),
         "--label-map", str(xray.label_map), "--json", "--quiet"]
    )  # fmt: skip
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) >= {"findings", "best_checkpoint"}
    best = doc["best_checkpoint"]
    assert (best["step"], best["metric"], best["exists"], best["path"]) == (
        4000,
        "DetectionBoxes_Precision/mAP",
        False,
        None,
    )
    assert abs(best["value"] - 0.837) < 1e-6
    ids = [f["id"] for f in doc["findings"]]
    assert {"overfitting", "best_checkpoint", "undefined_area_metric", "image_level"} <= set(ids)
    for f in doc["findings"]:
        assert set(f) == {"id", "severity", "message", "evidence", "fix"}
        assert f["severity"] in ("info", "warning", "error") and f["message"] and f["fix"]
    severities = [f["severity"] for f in doc["findings"]]
    order = {"error": 0, "warning": 1, "info": 2}
    assert severities == sorted(severities, key=order.__getitem__)


def test_human_output_groups_by_severity(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", "--model-dir", str(model_dir), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.index("warning") < out.index("info")
    assert "overfitting" in out and "fix:" in out and "train total loss" in out


def test_missing_dir_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", "--model-dir", str(tmp_path / "nope")]) == 2
    assert "directory not found" in capsys.readouterr().err


_PROBE = """
import sys
from tfod_tools.cli.app import main
code = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow.") or m == "keras")
print("IMPORTED:" + ",".join(heavy))
sys.exit(code)
"""


def _probe(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_diagnose_never_imports_tensorflow(model_dir: Path, xray: SyntheticDataset, tmp_path: Path) -> None:
    report = tmp_path / "r.html"
    proc = _probe(
        ["diagnose", "--model-dir", str(model_dir), "--eval-records", str(xray.eval_record),
         "--label-map", str(xray.label_map), "--html", str(report), "--json", "--quiet"]
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "IMPORTED:"
    assert report.is_file()


def test_diagnose_with_pipeline_parses_without_tensorflow(model_dir: Path, pipeline_file: Path) -> None:
    proc = _probe(["diagnose", "--model-dir", str(model_dir), "--pipeline", str(pipeline_file), "--quiet"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "IMPORTED:"
    assert "score_threshold_high" in proc.stdout and "anchor_coverage" in proc.stdout
