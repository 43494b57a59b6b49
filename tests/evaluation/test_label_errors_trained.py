"""Likely label errors on the session's trained tiny SSD: planted errors rank above clean boxes.

The stored detections of the best evaluated step (``evaluated`` fixture: ``tfod evaluate`` over
ckpt-1..4) do not depend on the ground truth, so errors are planted into the loaded ground truth in
memory (no extra training or evaluation): boxes dropped (``missing``), labels swapped
(``wrong_label``) and boxes shifted by half their width (``loose_box``). The 300-step model is weak
(COCO mAP ~0.3), and an error can only be seen where the model sees the object, so errors are
planted only on boxes it detects: a confident (score >= ``DEFAULT_MIN_SCORE``) same-class detection
with IoU >= 0.5 (>= 0.7 for the shifted boxes, whose detection must still tell the shift). The
planted errors must all be found, each kind's top candidate must be a planted one, and the planted
candidates must rank on average above the clean boxes' candidates of their kind.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tfod_tools.data.model import AnnotatedSet
from tfod_tools.data.store import load_detections
from tfod_tools.diagnostics.label_errors import (
    DEFAULT_MIN_SCORE,
    KINDS,
    LOOSE_MAX_IOU,
    MATCH_IOU,
    find_label_errors,
)
from tfod_tools.ledger import Ledger
from tfod_tools.metrics.boxes import iou_matrix

pytestmark = pytest.mark.slow

PER_KIND = 2


@dataclass(frozen=True)
class Planted:
    data: AnnotatedSet
    dropped: list[tuple[int, np.ndarray]]  # (image id, box) of the dropped boxes
    rows: dict[str, set[int]]  # wrong_label / loose_box: planted rows of data.ground_truth


def _detected_iou(data: AnnotatedSet) -> np.ndarray:
    """Per ground-truth box: the best IoU of a confident same-class detection (0 when none)."""
    gt, dt = data.ground_truth, data.detections
    assert dt is not None
    best = np.zeros(len(gt))
    for row in range(len(gt)):
        mine = (dt.image_ids == gt.image_ids[row]) & (dt.classes == gt.classes[row])
        mine &= dt.scores >= DEFAULT_MIN_SCORE
        if mine.any():
            best[row] = iou_matrix(dt.boxes[mine], gt.boxes[row][None, :]).max()
    return best


def _plant(data: AnnotatedSet, seed: int = 0) -> Planted:
    """Drop, relabel and shift ``PER_KIND`` boxes each (disjoint; only boxes the model detects)."""
    gt = data.ground_truth
    iou = _detected_iou(data)
    widths = dict(zip(data.images.ids.tolist(), data.images.widths.tolist(), strict=True))
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.flatnonzero((iou >= 0.5) & ~gt.iscrowd))
    tight = [int(r) for r in order if iou[r] >= 0.7]
    shift = tight[:PER_KIND]
    rest = [int(r) for r in order if int(r) not in shift]
    drop, relabel = rest[:PER_KIND], rest[PER_KIND : 2 * PER_KIND]
    assert len(shift) == len(drop) == len(relabel) == PER_KIND, "too few detected boxes to plant into"
    boxes, classes = gt.boxes.copy(), gt.classes.copy()
    others = sorted(data.categories)
    for row in relabel:
        classes[row] = next(c for c in others if c != classes[row])
    for row in shift:
        half = (boxes[row, 2] - boxes[row, 0]) / 2
        sign = 1.0 if boxes[row, 2] + half <= widths[int(gt.image_ids[row])] else -1.0
        boxes[row, [0, 2]] += sign * half
    keep = np.setdiff1d(np.arange(len(gt)), drop)
    new_row = {int(old): new for new, old in enumerate(keep)}
    changed = replace(gt, boxes=boxes, classes=classes, wh=None).select(keep)
    return Planted(
        data=replace(data, ground_truth=changed),
        dropped=[(int(gt.image_ids[r]), gt.boxes[r]) for r in drop],
        rows={"wrong_label": {new_row[r] for r in relabel}, "loose_box": {new_row[r] for r in shift}},
    )


def _is_planted(candidate: Any, planted: Planted) -> bool:
    if candidate.kind != "missing":
        return candidate.gt_index in planted.rows[candidate.kind]
    return any(
        image_id == candidate.image_id and iou_matrix(np.asarray([candidate.box]), box[None, :])[0, 0] >= 0.5
        for image_id, box in planted.dropped
    )


@pytest.fixture(scope="module")
def best_step_data(evaluated: tuple[Path, dict[str, Any]]) -> AnnotatedSet:
    """The stored ground truth and detections of the evaluated step with the best COCO mAP."""
    model_dir, _ = evaluated
    with Ledger.open(model_dir, readonly=True) as ledger:
        best = ledger.best()
    assert best is not None
    return load_detections(model_dir, best.step)


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_errors_rank_above_clean_boxes(best_step_data: AnnotatedSet, seed: int) -> None:
    planted = _plant(best_step_data, seed)
    found = find_label_errors(planted.data)
    assert set(found) == set(KINDS)
    for kind in KINDS:
        flags = [_is_planted(c, planted) for c in found[kind]]
        assert all(c.kind == kind for c in found[kind])
        assert sum(flags) == PER_KIND, (kind, flags)  # every planted error found, each once
        assert flags[0], (kind, flags)  # the top candidate is a planted error
        ranks = np.arange(len(flags))
        clean = ranks[~np.asarray(flags)]
        if clean.size:
            assert ranks[np.asarray(flags)].mean() < clean.mean(), (kind, flags)
        confidences = [c.confidence for c in found[kind]]
        assert confidences == sorted(confidences, reverse=True)


def test_clean_set_flags_only_boxes_the_model_misses(best_step_data: AnnotatedSet) -> None:
    """Unmodified annotations: a box the model detects tightly is never a wrong_label / loose_box."""
    found = find_label_errors(best_step_data)
    iou = _detected_iou(best_step_data)
    for kind in ("wrong_label", "loose_box"):
        for candidate in found[kind]:
            assert candidate.gt_index is not None
            assert iou[candidate.gt_index] < max(LOOSE_MAX_IOU, MATCH_IOU), (kind, candidate)
