"""``tfod evaluate --model`` on the session's exports of the trained tiny SSD (the real CLI and API).

The SavedModel's COCO values equal the checkpoint's (its ledger row) within 1e-6, the float TFLite
model's mAP is within 0.01, the int8 model's drop is reported with its causes; the parity table's
fields, the mAP lost to the export's score threshold (none at the pipeline's own, some at the int8
export's 0.3); TensorFlow's own output goes to ``OUT.log``, not the terminal (``--verbose``: the
terminal); refusals exit 2 with one line and write nothing. The source model directory is never written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tfod_tools.cli.app import main
from tfod_tools.data import store
from tfod_tools.data.synthetic import write_synthetic_dataset
from tfod_tools.evaluation.exported import log_path, threshold_loss
from tfod_tools.ledger import Ledger
from tfod_tools.metrics.coco import CATEGORY_MAP, COCO_TAGS

pytestmark = pytest.mark.slow

MAP = COCO_TAGS["AP"]
LIBRARY_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] |[IWEF]\d{4} \d\d:\d\d|INFO: |WARNING:)"
    r"|Warning: |tensorflow",
    re.MULTILINE,
)
"""A line TensorFlow, absl, TFLite or Python warnings print (C++ log prefix, absl prefix, TFLite INFO)."""


def _files(directory: Path) -> dict[str, tuple[int, int]]:
    """Size and mtime of every file (SQLite's ``-shm`` and an empty ``-wal`` left out: any reader's)."""
    found = {}
    for p in sorted(directory.rglob("*")):
        if (
            p.is_file()
            and not p.name.endswith("-shm")
            and not (p.name.endswith("-wal") and not p.stat().st_size)
        ):
            found[str(p.relative_to(directory))] = (p.stat().st_size, p.stat().st_mtime_ns)
    return found


def _ledger_row(model_dir: Path, step: int) -> dict[str, float]:
    ledger = Ledger.open(model_dir, readonly=True)
    try:
        (row,) = [e for e in ledger.evaluations(status="ok") if e.step == step]
    finally:
        ledger.close()
    return dict(row.metrics)


def _evaluate(run_tfod: Callable[..., Any], args: list[str]) -> tuple[int, dict[str, Any], str]:
    proc = run_tfod(["evaluate", *args, "--json"])
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else {}), proc.stderr


def test_saved_model_scores_like_its_checkpoint(
    tmp_path: Path, exports: Any, run_tfod: Callable[..., Any]
) -> None:
    export = tmp_path / "export"  # a copy: the default output directory is inside the export
    shutil.copytree(exports.float_dir, export)
    model_dir = exports.model.model_dir
    before = _files(model_dir)
    code, result, stderr = _evaluate(run_tfod, ["--model", str(export)])
    assert code == 0, stderr[-3000:]
    assert _files(model_dir) == before  # the source model directory is only read
    step = json.loads((export / "export.json").read_text())["source"]["step"]
    reference = _ledger_row(model_dir, step)
    assert result["format"] == "saved_model" and result["images"] == 16
    for tag in COCO_TAGS.values():
        assert result["metrics"][tag] == pytest.approx(reference[tag], abs=1e-6), tag
    for name, ap in result["per_class_ap"].items():
        assert ap == pytest.approx(reference[CATEGORY_MAP + name], abs=1e-6), name
    assert set(result["per_class_ap"]) == {"square", "triangle"}

    table = result["parity"]
    assert table["step"] == step and table["tolerance"] == 1e-6 and table["findings"] == []
    names = [row["name"] for row in table["rows"]]
    assert names == [*COCO_TAGS, "AP/square", "AP/triangle"]
    for row in table["rows"]:
        assert row["checkpoint"] == reference[row["tag"]]
        assert row["delta"] == pytest.approx(row["export"] - row["checkpoint"], abs=1e-12)
        assert abs(row["delta"]) <= 1e-6
    assert table["agreement"] >= 0.99  # the same detections as the checkpoint's stored ones
    # the export keeps the pipeline's score threshold, the one the checkpoint's detections were made
    # at: none of them is removed, no mAP is lost to it
    manifest = json.loads((export / "export.json").read_text())
    assert table["score_threshold"] == manifest["post_processing"]["score_threshold"]
    assert table["threshold_loss"] == 0.0
    assert table["latency_ms_per_image"]["export"] > 0 and result["latency_ms_per_image"] > 0

    out = export / "eval" / "saved_model"
    assert result["out"] == str(out)
    assert sorted(p.name for p in out.iterdir()) == ["detections", "metrics.json"]
    assert json.loads((out / "metrics.json").read_text())["metrics"] == result["metrics"]
    stored = store.load_detections(out, step, path=result["detections_path"])
    assert stored.detections is not None and len(stored.detections.scores) == result["detections"]
    assert store.load_pr_counts(result["detections_path"]).keys() == {"square", "triangle"}
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_other_eval_images_are_scored_without_a_comparison(
    tmp_path: Path, exports: Any, run_tfod: Callable[..., Any]
) -> None:
    """The export scored on records the checkpoint was not evaluated on (a test split): its metrics,
    exit 0, and a note instead of deltas against the checkpoint's values of other images (which
    used to show as a drop and exit 1), and no checkpoint latency computed over the wrong count."""
    other = write_synthetic_dataset(tmp_path / "other", "shapes", train_images=1, eval_images=24, seed=11)
    args = ["--model", str(exports.float_dir), "--records", str(other.eval_record)]
    code, result, stderr = _evaluate(run_tfod, [*args, "--out", str(tmp_path / "o")])
    assert code == 0, stderr[-3000:]
    assert result["images"] == 24 and 0.0 <= result["metrics"][MAP] <= 1.0
    table = result["parity"]
    assert table["findings"] == [] and table["rows"] == [] and table["agreement"] is None
    assert table["latency_ms_per_image"]["checkpoint"] is None
    assert any("other eval images (16 there, 24 here)" in note for note in table["notes"])


def test_tflite_float_within_a_hundredth_and_int8_drop_named(
    tmp_path: Path, exports: Any, run_tfod: Callable[..., Any]
) -> None:
    model_dir = exports.model.model_dir
    before = _files(model_dir)
    out = tmp_path / "tflite"
    code, result, stderr = _evaluate(
        run_tfod, ["--model", str(exports.float_dir / "model.tflite"), "--out", str(out), "--verbose"]
    )
    assert code == 0, stderr[-3000:]
    assert LIBRARY_LINE.search(stderr) and not log_path(out).exists()  # --verbose: TensorFlow's on stderr
    assert result["tf_log"] is None
    assert result["format"] == "tflite" and result["parity"]["tolerance"] == 0.01
    mean_ap = next(r for r in result["parity"]["rows"] if r["name"] == "AP")
    assert abs(mean_ap["delta"]) <= 0.01
    assert (out / "metrics.json").is_file()

    int8_out = tmp_path / "int8"
    code, result, stderr = _evaluate(
        run_tfod,
        ["--model", str(exports.int8_dir), "--out", str(int8_out), "--pipeline", str(exports.model.pipeline)],
    )
    table = result["parity"]
    assert table["tolerance"] == 0.03
    assert code == (1 if table["findings"] else 0), stderr[-3000:]
    # the mAP lost to the 0.3 threshold: the checkpoint's stored detections above 0.3, scored again
    step = exports.int8_json["source"]["step"]
    stored = store.load_detections(model_dir, step)
    lost = threshold_loss(stored, _ledger_row(model_dir, step)[MAP], exports.int8_threshold)
    assert table["score_threshold"] == exports.int8_threshold
    assert table["threshold_loss"] == pytest.approx(lost, abs=1e-12) and lost > 0
    for finding in table["findings"]:  # the drop names both causes this export has, the threshold's cost
        assert "int8 quantisation" in finding
        assert f"score threshold 0.3 (costs {lost:.4f} mAP on the checkpoint's own detections)" in finding
        assert stderr.strip().splitlines()[-1] == f"error: {table['findings'][0]}"
    assert (int8_out / "metrics.json").is_file()
    assert _files(model_dir) == before


def test_tensorflow_output_goes_to_a_log_beside_the_outputs(tmp_path: Path, exports: Any) -> None:
    """A real run at TensorFlow's most verbose C++ log level: the terminal gets tfod's lines only."""
    out = tmp_path / "eval" / "tflite"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0", NO_ALBUMENTATIONS_UPDATE="1")
    env.pop("TF_CPP_MAX_VLOG_LEVEL", None)
    model = exports.float_dir / "model.tflite"
    proc = subprocess.run(
        [sys.executable, "-m", "tfod_tools", "evaluate", "--model", str(model), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr == ""  # no TensorFlow, absl, TFLite or Python warning line, nothing else either
    log = log_path(out)
    assert log == tmp_path / "eval" / "tflite.log" and (out / "metrics.json").is_file()
    text = log.read_text()
    assert text.startswith("--- ") and "tfod evaluate --model" in text.splitlines()[0]
    assert LIBRARY_LINE.search(text), text[-3000:]  # what TensorFlow printed is kept there
    assert f"TensorFlow's own output: {log}" in proc.stdout
    assert "mAP lost to score threshold" in proc.stdout  # the parity table's threshold row


def test_refusals_exit_2_with_one_line_and_nothing_written(
    tmp_path: Path, exports: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    model = exports.model
    three = tmp_path / "three.pbtxt"
    three.write_text("".join(f'item {{ id: {i} name: "{n}" }}\n' for i, n in enumerate("abc", 1)))
    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    out = tmp_path / "out"
    cases = [
        (["--model", str(exports.float_dir), "--model-dir", str(model.model_dir)], "--model and --model-dir"),
        (["--model", str(not_a_model)], "no exported model here"),
        (["--model", str(three)], "not a .tflite file"),
        (
            [
                "--model",
                str(exports.float_dir),
                "--records",
                str(model.eval_record),
                "--label-map",
                str(three),
            ],
            "has 2 classes but the label map has 3",
        ),
    ]
    cases.append(
        (["--model", str(exports.float_dir), "--out", str(model.model_dir / "x")], "inside the source")
    )
    before, model_before = _files(exports.float_dir), _files(model.model_dir)
    for args, message in cases:
        code = main(["evaluate", "--out", str(out), *args])
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert code == 2, captured.err
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], captured.err
        assert captured.out == "" and not out.exists()
    assert _files(exports.float_dir) == before and _files(model.model_dir) == model_before
