"""``tfod evaluate`` on the session's tiny SSD (ckpt-1..4 = steps 0..300): points, ledger, idempotence."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tfod_tools.data.store import load_detections
from tfod_tools.ledger import Ledger
from tfod_tools.metrics.coco import evaluate_coco
from tfod_tools.tensorboard.reader import find_event_files, iter_events, read_pr_curves, read_scalars

pytestmark = pytest.mark.slow

MAP = "DetectionBoxes_Precision/mAP"
STEPS = [0, 100, 200, 300]
STOCK_TAGS = [
    MAP,
    "DetectionBoxes_Precision/mAP@.50IOU",
    "DetectionBoxes_Precision/mAP@.75IOU",
    "DetectionBoxes_Precision/mAP (small)",
    "DetectionBoxes_Precision/mAP (medium)",
    "DetectionBoxes_Precision/mAP (large)",
    "DetectionBoxes_Recall/AR@1",
    "DetectionBoxes_Recall/AR@10",
    "DetectionBoxes_Recall/AR@100",
    "DetectionBoxes_Recall/AR@100 (small)",
    "DetectionBoxes_Recall/AR@100 (medium)",
    "DetectionBoxes_Recall/AR@100 (large)",
    "Loss/localization_loss",
    "Loss/classification_loss",
    "Loss/regularization_loss",
    "Loss/total_loss",
]


def _points_per_tag_step(eval_dir: Path) -> Counter[tuple[str, int]]:
    """Raw count of scalar values per (tag, step) over every event file of the run (no dedup)."""
    counts: Counter[tuple[str, int]] = Counter()
    for files in find_event_files(eval_dir).values():
        for file in files:
            for event in iter_events(file):
                for value in event.summary.value:  # metadata may be sent only with a tag's first value
                    if not value.tag.startswith(("DetectionBoxes_PR@", "custom_scalars")):
                        counts[(value.tag, int(event.step))] += 1
    return counts


def test_every_checkpoint_once_in_order(
    evaluated: tuple[Path, dict[str, Any]], trained_model_dir: Any, evaluate_cli: Callable
) -> None:
    pipeline = trained_model_dir.pipeline
    model_copy, first = evaluated
    assert [e["step"] for e in first["evaluated"]] == STEPS
    assert [e["checkpoint"] for e in first["evaluated"]] == ["ckpt-1", "ckpt-2", "ckpt-3", "ckpt-4"]
    assert first["skipped"] == []
    for entry in first["evaluated"]:
        assert set(STOCK_TAGS) <= set(entry["metrics"])
        assert 0.0 <= entry["metrics"][MAP] <= 1.0

    # TensorBoard: 4 points per tag at the checkpoints' global steps, read back with our reader.
    scalars = [p for p in read_scalars(model_copy) if p.run == "eval"]
    by_tag: dict[str, list[int]] = {}
    for point in scalars:
        by_tag.setdefault(point.tag, []).append(point.step)
    for tag in [
        *STOCK_TAGS,
        "DetectionBoxes_PerformanceByCategory/mAP/square",
        "PascalBoxes_Precision/mAP@0.5IOU",
    ]:
        assert sorted(by_tag[tag]) == STEPS, tag
    assert any(t.startswith("DetectionBoxes_PerformanceByCategory/AP@.50IOU/") for t in by_tag)
    values = {p.step: p.value for p in scalars if p.tag == MAP}
    assert values == pytest.approx({e["step"]: e["metrics"][MAP] for e in first["evaluated"]}, abs=1e-6)
    curves = read_pr_curves(model_copy / "eval")
    assert {(c.tag, c.step) for c in curves} == {
        (f"DetectionBoxes_PR@.50IOU/{name}", step) for name in ("square", "triangle") for step in STEPS
    }
    assert not list((model_copy / "eval" / "protected").iterdir())  # links released after evaluation

    # The ledger: one row per step, with hash, detections path and metrics; the best is kept.
    with Ledger.open(model_copy, readonly=True) as ledger:
        rows = ledger.evaluations()
        assert [r.step for r in rows] == STEPS
        assert all(len(r.content_hash) == 64 and r.detections_path for r in rows)
        best = ledger.best()
        assert best is not None and [k.checkpoint for k in ledger.kept()] == [best.checkpoint]
    assert (
        sorted(p.name for p in (model_copy / "eval" / "best").iterdir())[0]
        == f"{best.checkpoint}.data-00000-of-00001"
    )

    # Stored detections reproduce the metrics without the model.
    data = load_detections(model_copy, 300)
    assert len(data.images) == 16 and set(data.categories.values()) == {"square", "triangle"}
    assert data.detections is not None and len(data.detections) > 0
    assert np.all(data.detections.boxes[:, 2] <= data.images.widths.max() + 1e-6)
    assert evaluate_coco(data).stats["AP"] == pytest.approx(rows[-1].metrics[MAP], abs=1e-12)

    # A second run evaluates nothing and writes nothing new.
    event_files = sorted(p.name for p in (model_copy / "eval").glob("events.out.tfevents.*"))
    second = evaluate_cli(pipeline, model_copy)
    assert second["evaluated"] == []
    assert [s["checkpoint"] for s in second["skipped"]] == ["ckpt-1", "ckpt-2", "ckpt-3", "ckpt-4"]
    assert all("already evaluated" in s["reason"] for s in second["skipped"])
    assert sorted(p.name for p in (model_copy / "eval").glob("events.out.tfevents.*")) == event_files

    # --force re-evaluates (two steps here) and still leaves exactly one point per step and tag.
    forced = evaluate_cli(pipeline, model_copy, "--force", "--checkpoints", "100,300")
    assert [e["step"] for e in forced["evaluated"]] == [100, 300]
    counts = _points_per_tag_step(model_copy / "eval")
    assert counts and set(counts.values()) == {1}
    assert sorted(s for t, s in counts if t == MAP) == STEPS
    with Ledger.open(model_copy, readonly=True) as ledger:
        assert [r.step for r in ledger.evaluations()] == STEPS


def test_broken_checkpoints_are_skipped_with_reason(
    model_copy: Path, trained_model_dir: Any, evaluate_cli: Callable
) -> None:
    data_2 = model_copy / "ckpt-2.data-00000-of-00001"
    content = data_2.read_bytes()
    data_2.unlink()  # a hard link: replace, never modify the shared file
    data_2.write_bytes(content[: len(content) // 2])
    (model_copy / "ckpt-3.data-00000-of-00001").unlink()
    index_4 = model_copy / "ckpt-4.index"
    cut = index_4.read_bytes()[:-20]
    index_4.unlink()
    index_4.write_bytes(cut)
    result = evaluate_cli(trained_model_dir.pipeline, model_copy, "--checkpoints", "all")
    assert [e["checkpoint"] for e in result["evaluated"]] == ["ckpt-1"]
    reasons = {s["checkpoint"]: s["reason"] for s in result["skipped"]}
    assert set(reasons) == {"ckpt-2", "ckpt-3", "ckpt-4"}
    assert "ckpt-3.data-00000-of-00001" in reasons["ckpt-3"] and "missing" in reasons["ckpt-3"]
    assert "truncated" in reasons["ckpt-4"]
    assert reasons["ckpt-2"]  # TensorFlow's own words for a short data file
