"""The demo's pure pieces: the comparison table, the report rendering, the workdir rules."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from tfod_tools.demo.report import (
    ALL_CLASSES,
    CATEGORY_AP,
    CATEGORY_AP50,
    MAP,
    MAP50,
    comparison_rows,
    markdown_table,
    operating_point,
    operating_rows,
    operating_table,
    per_class,
    render_html,
    render_markdown,
)
from tfod_tools.demo.settings import FULL, QUICK
from tfod_tools.demo.state import STATE_FILE, prepare_workdir
from tfod_tools.errors import TfodError


def _metrics(opacity: float, nodule: float, m: float) -> dict[str, float]:
    return {
        CATEGORY_AP + "opacity": opacity,
        CATEGORY_AP + "nodule": nodule,
        CATEGORY_AP50 + "opacity": min(1.0, opacity * 2),
        CATEGORY_AP50 + "nodule": nodule if nodule < 0 else min(1.0, nodule * 2),
        MAP: m,
        MAP50: min(1.0, m * 2),
        "DetectionBoxes_Precision/mAP (large)": -1.0,
    }


def test_comparison_keeps_undefined_apart_from_zero() -> None:
    before = _metrics(0.4, -1.0, 0.4)
    after = _metrics(0.5, 0.0, 0.25)
    rows = comparison_rows(before, after, ["opacity", "nodule"])
    assert [r.name for r in rows] == ["opacity", "nodule", ALL_CLASSES]
    nodule = rows[1]
    assert (nodule.before, nodule.after, nodule.delta) == (-1.0, 0.0, None)
    assert rows[0].delta == pytest.approx(0.1)
    assert rows[2].to_dict()["change"] == pytest.approx(-0.15)
    text = markdown_table(rows, minority="nodule")
    assert "| **nodule** (minority) | -1 | 0.000 | n/a |" in text
    assert "| opacity | 0.400 | 0.500 | +0.100 |" in text


def test_nan_from_the_ledger_is_undefined() -> None:
    assert per_class({CATEGORY_AP + "nodule": math.nan}, ["nodule"]) == {"nodule": -1.0}


def _report() -> dict[str, Any]:
    before, after = _metrics(0.4, 0.05, 0.225), _metrics(0.42, 0.2, 0.31)
    rows = comparison_rows(before, after, ["opacity", "nodule"])
    runs = {
        run: {
            "step": 300,
            "best_step": 200,
            "evaluated_steps": [0, 100, 200, 300],
            "findings": ["class_imbalance", "undefined_area_metric"],
            "diagnose_html": f"reports/{run}/diagnose.html",
            "curves_png": f"reports/{run}/curves.png",
        }
        for run in ("before", "after")
    }
    return {
        "settings": QUICK.to_dict(),
        "minority_class": "nodule",
        "comparison": [r.to_dict() for r in rows],
        "balance": {
            "recipe": "chest-xray",
            "strategy": "oversample",
            "counts_before": {"opacity": {"images": 60, "boxes": 90}, "nodule": {"images": 12, "boxes": 13}},
            "counts_after": {"opacity": {"images": 62, "boxes": 93}, "nodule": {"images": 60, "boxes": 64}},
        },
        "runs": runs,
        "tensorboard": "tensorboard --logdir workspace/demo/runs",
        "operating_point": {
            "threshold": 0.5,
            "before": operating_point(
                {"opacity": {"tp": 50, "fp": 20, "fn": 10}, "nodule": {"tp": 3, "fp": 0, "fn": 27}},
                ["opacity", "nodule"],
            ),
            "after": operating_point(
                {"opacity": {"tp": 48, "fp": 18, "fn": 12}, "nodule": {"tp": 21, "fp": 2, "fn": 9}},
                ["opacity", "nodule"],
            ),
        },
    }


def test_operating_point_counts_recall_and_precision_and_keeps_undefined_apart() -> None:
    before = operating_point({"nodule": {"tp": 0, "fp": 0, "fn": 5}}, ["opacity", "nodule"])
    assert before["nodule"] == {"tp": 0, "fp": 0, "fn": 5, "recall": 0.0, "precision": -1.0}
    assert before["opacity"]["recall"] == -1.0  # no ground truth: undefined, not 0
    after = operating_point({"nodule": {"tp": 4, "fp": 4, "fn": 1}}, ["opacity", "nodule"])
    rows = operating_rows(before, after, ["opacity", "nodule"])
    assert rows[0].recall_delta is None
    assert (rows[1].recall_after, rows[1].recall_delta, rows[1].precision_after) == (0.8, 0.8, 0.5)
    # Precision with nothing kept is "n/a", recall of a class without boxes "-1": neither is a 0.
    text = operating_table(rows, minority="nodule")
    assert "| **nodule** (minority) | 0.000 | 0.800 | +0.800 | n/a | 0.500 |" in text
    assert "| opacity | -1 | -1 | n/a | n/a | n/a |" in text


def test_markdown_report_has_tables_counts_and_links() -> None:
    text = render_markdown(_report())
    assert "| **nodule** (minority) | 0.050 | 0.200 | +0.150 |" in text
    assert "## At the operating threshold (score >= 0.5)" in text
    assert "| **nodule** (minority) | 0.100 | 0.700 | +0.600 | 1.000 | 0.913 |" in text
    assert "| opacity | 0.833 | 0.800 | -0.033 | 0.714 | 0.727 |" in text
    assert "| nodule | 12 | 60 | 13 | 64 |" in text
    assert "[reports/before/diagnose.html](reports/before/diagnose.html)" in text
    assert "`class_imbalance`" in text and "tensorboard --logdir workspace/demo/runs" in text


def test_html_report_is_self_contained_and_links_the_diagnoses() -> None:
    page = render_html(_report())
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>")
    assert 'href="reports/after/diagnose.html"' in page
    assert 'class="minority"' in page and "+0.150" in page
    assert "score &gt;= 0.5" in page and '<td class="n up">+0.600</td>' in page
    assert "<script" not in page and "http" not in page  # nothing fetched from elsewhere


def test_workdir_refuses_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(TfodError, match="not a tfod demo workdir"):
        prepare_workdir(tmp_path, QUICK, force=False)
    with pytest.raises(TfodError, match="not a tfod demo workdir"):
        prepare_workdir(tmp_path, QUICK, force=True)  # --force never deletes what is not ours
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_workdir_refuses_other_settings_and_force_starts_over(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    state = prepare_workdir(work, QUICK, force=False)
    state.steps["data"] = {"result": {}, "outputs": ["data/train.record"], "seconds": 1.0}
    state.save()
    (work / "data").mkdir()
    (work / "data" / "train.record").write_bytes(b"")
    resumed = prepare_workdir(work, QUICK, force=False)
    assert resumed.done("data") and not resumed.done("inspect")
    (work / "data" / "train.record").unlink()
    assert not prepare_workdir(work, QUICK, force=False).done("data")  # a missing output redoes the step
    with pytest.raises(TfodError, match="--force"):
        prepare_workdir(work, FULL, force=False)
    fresh = prepare_workdir(work, FULL, force=True)
    assert fresh.steps == {} and not (work / "data").exists()
    assert json.loads((work / STATE_FILE).read_text())["settings"]["mode"] == "full"


def _export(verdict: str, findings: list[str]) -> dict[str, Any]:
    values = [("AP", MAP, 0.31, 0.31 if verdict == "ok" else 0.25), ("AP50", MAP50, 0.6, 0.6)]
    rows = [
        {"name": name, "tag": tag, "checkpoint": a, "export": b, "delta": b - a} for name, tag, a, b in values
    ]
    model = {
        "path": "export/saved_model",
        "verdict": verdict,
        "tolerance": 1e-6,
        "findings": findings,
        "agreement": 0.975,
        "latency_ms": {"checkpoint": 80.0, "export": 21.5},
        "rows": rows,
    }
    return {
        "step": 600,
        "checkpoint": "ckpt-7",
        "formats": ["saved_model"],
        "dir": "export",
        "note": "TFLite float is exported in the full demo only",
        "models": {"saved_model": model},
        "predict": {
            "score_threshold": 0.5,
            "inputs": ["export/inputs/01-a.png"],
            "images": ["export/predict/images/01-a.png"],
            "detections": 3,
            "detections_json": "export/predict/detections.json",
        },
    }


def test_report_shows_the_parity_table_and_the_predictions() -> None:
    report = {**_report(), "export": _export("ok", [])}
    text = render_markdown(report)
    assert "## The exported model" in text and "step 600, `ckpt-7`" in text
    assert "Parity: **ok: no COCO value dropped by more than the tolerance (1e-06)**." in text
    assert "| AP | 0.3100 | 0.3100 | +0.00e+00 |" in text
    assert "| detections agreeing |  | 97.5 % |  |" in text and "| ms per image | 80.0 | 21.5 |  |" in text
    assert "![export/predict/images/01-a.png](export/predict/images/01-a.png)" in text
    assert "full demo only" in text
    page = render_html(report)
    assert '<img src="export/predict/images/01-a.png"' in page and 'class="parity"' in page
    assert '<strong class="up">ok' in page and "http" not in page
    dropped = render_html(
        {**_report(), "export": _export("drop", ["drop beyond 1e-06: AP 0.3100 -> 0.2500"])}
    )
    assert '<strong class="down">drop beyond the tolerance (1e-06): drop beyond 1e-06: AP' in dropped
    assert "-6.00e-02" in dropped
    # A report without the export step (an older workdir's document) still renders.
    assert "The exported model" not in render_markdown(_report())
