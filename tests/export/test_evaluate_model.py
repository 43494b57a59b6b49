"""``tfod evaluate --model`` on the session's exports of the trained tiny SSD (the real CLI and API).

The SavedModel's COCO values equal the checkpoint's (its ledger row) within 1e-6, the float TFLite
model's mAP is within 0.01, the int8 model's drop is reported with its causes; the parity table's
fields; refusals exit 2 with one line and write nothing. The source model directory is never written.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tfod_tools.cli.app import main
from tfod_tools.data import store
from tfod_tools.ledger import Ledger
from tfod_tools.metrics.coco import CATEGORY_MAP, COCO_TAGS

pytestmark = pytest.mark.slow


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
    assert table["latency_ms_per_image"]["export"] > 0 and result["latency_ms_per_image"] > 0

    out = export / "eval" / "saved_model"
    assert result["out"] == str(out)
    assert sorted(p.name for p in out.iterdir()) == ["detections", "metrics.json"]
    assert json.loads((out / "metrics.json").read_text())["metrics"] == result["metrics"]
    stored = store.load_detections(out, step, path=result["detections_path"])
    assert stored.detections is not None and len(stored.detections.scores) == result["detections"]
    assert store.load_pr_counts(result["detections_path"]).keys() == {"square", "triangle"}
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_tflite_float_within_a_hundredth_and_int8_drop_named(
    tmp_path: Path, exports: Any, run_tfod: Callable[..., Any]
) -> None:
    model_dir = exports.model.model_dir
    before = _files(model_dir)
    out = tmp_path / "tflite"
    code, result, stderr = _evaluate(
        run_tfod, ["--model", str(exports.float_dir / "model.tflite"), "--out", str(out)]
    )
    assert code == 0, stderr[-3000:]
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
    for finding in table["findings"]:  # the drop names both causes this export has
        assert "int8 quantisation" in finding and "score threshold 0.3" in finding
        assert stderr.strip().splitlines()[-1] == f"error: {table['findings'][0]}"
    assert (int8_out / "metrics.json").is_file()
    assert _files(model_dir) == before


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
