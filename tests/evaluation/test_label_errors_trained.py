"""Likely label errors on the session's trained tiny SSD: planted errors rank above clean boxes.

The stored detections of the best evaluated step (``evaluated`` fixture: ``tfod evaluate`` over
ckpt-1..4) do not depend on the ground truth, so errors are planted into the loaded ground truth in
memory (no extra training or evaluation): boxes dropped (``missing``), labels swapped
(``wrong_label``) and boxes shifted by half their width (``loose_box``), one kind at a time. The
300-step model is weak (COCO mAP 0.2-0.35, 5-11 of the 24 eval boxes detected, varying from one
training to the next), and an error can only be seen where the model sees the object, so errors are
planted only on boxes it detects: a confident (score >= ``DEFAULT_MIN_SCORE``) same-class detection
with IoU >= 0.5 (>= 0.7 for the shifted boxes, whose detection must still tell the shift, and must
overlap the shifted box as a loose box is defined to: at least ``LOOSE_MIN_IOU`` + 0.05). The
planted errors must all be found, and they must rank above the clean items of their kind: every
other ground-truth box (wrong_label, loose_box) or every other confident detection (missing), a clean
item that is no candidate counting as confidence 0 (the probability that a planted error outranks a
clean item, ties counting half, at least :data:`MIN_AUC`). Precision at K on a better-trained model
is what ``scripts/bench_label_errors.py`` measures.
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
    LOOSE_MIN_IOU,
    MATCH_IOU,
    LabelErrorKind,
    find_label_errors,
)
from tfod_tools.ledger import Ledger
from tfod_tools.metrics.boxes import iou_matrix

pytestmark = pytest.mark.slow

PER_KIND = 2
MIN_AUC = 0.75


@dataclass(frozen=True)
class Planted:
    data: AnnotatedSet
    kind: str
    dropped: list[tuple[int, np.ndarray]]  # missing: (image id, box) of the dropped boxes
    rows: set[int]  # wrong_label / loose_box: planted rows of data.ground_truth


def _detected_iou(data: AnnotatedSet, boxes: np.ndarray | None = None) -> np.ndarray:
    """Per ground-truth box (or per row of ``boxes`` in its place): the best IoU of a confident
    same-class detection (0 when none)."""
    gt, dt = data.ground_truth, data.detections
    assert dt is not None
    boxes = gt.boxes if boxes is None else boxes
    best = np.zeros(len(gt))
    for row in range(len(gt)):
        mine = (dt.image_ids == gt.image_ids[row]) & (dt.classes == gt.classes[row])
        mine &= dt.scores >= DEFAULT_MIN_SCORE
        if mine.any():
            best[row] = iou_matrix(dt.boxes[mine], boxes[row][None, :]).max()
    return best


def _shifted(data: AnnotatedSet) -> np.ndarray:
    """Every ground-truth box moved sideways by half its width (left where right leaves the image)."""
    gt = data.ground_truth
    widths = dict(zip(data.images.ids.tolist(), data.images.widths.tolist(), strict=True))
    boxes = gt.boxes.copy()
    for row in range(len(gt)):
        half = (boxes[row, 2] - boxes[row, 0]) / 2
        sign = 1.0 if boxes[row, 2] + half <= widths[int(gt.image_ids[row])] else -1.0
        boxes[row, [0, 2]] += sign * half
    return boxes


def _plant(data: AnnotatedSet, kind: str, seed: int = 0) -> Planted:
    """Drop, relabel or shift ``PER_KIND`` boxes (only boxes the model detects; at least one: a model
    that detects a single box tightly enough gets one shifted box). A shifted box is planted only
    where its detection still overlaps it as a loose box does (IoU in ``[LOOSE_MIN_IOU + 0.05,
    LOOSE_MAX_IOU)``): a detection at IoU 0.70 can overlap the box shifted by half its width by
    0.19, which is no loose box but a box the model does not see."""
    gt = data.ground_truth
    iou = _detected_iou(data)
    shifted = _shifted(data)
    after = _detected_iou(data, shifted)
    loose = (after >= LOOSE_MIN_IOU + 0.05) & (after < LOOSE_MAX_IOU)
    order = np.random.default_rng(seed).permutation(np.flatnonzero((iou >= 0.5) & ~gt.iscrowd))
    pool = [int(r) for r in order if kind != "loose_box" or (iou[r] >= 0.7 and loose[r])]
    rows = pool[:PER_KIND]
    assert rows, f"no detected box to plant {kind} into"
    boxes, classes = gt.boxes.copy(), gt.classes.copy()
    if kind == "wrong_label":
        for row in rows:
            classes[row] = next(c for c in sorted(data.categories) if c != classes[row])
    if kind == "loose_box":
        boxes[rows] = shifted[rows]
    changed = replace(gt, boxes=boxes, classes=classes, wh=None)
    if kind != "missing":
        return Planted(replace(data, ground_truth=changed), kind, [], set(rows))
    keep = np.setdiff1d(np.arange(len(gt)), rows)
    dropped = [(int(gt.image_ids[r]), gt.boxes[r]) for r in rows]
    return Planted(replace(data, ground_truth=changed.select(keep)), kind, dropped, set())


def _covers(image_id: int, box: Any, dropped: tuple[int, np.ndarray]) -> bool:
    return image_id == dropped[0] and iou_matrix(np.asarray([box]), dropped[1][None, :])[0, 0] >= 0.5


def _is_planted(candidate: Any, planted: Planted) -> bool:
    if candidate.kind != "missing":
        return candidate.gt_index in planted.rows
    return any(_covers(candidate.image_id, candidate.box, d) for d in planted.dropped)


def _planted_and_clean(found: list[Any], planted: Planted) -> tuple[list[float], list[float]]:
    """Confidences of the planted errors and of the clean items (0 for an item that is no candidate)."""
    data = planted.data
    if planted.kind != "missing":
        by_row = {c.gt_index: c.confidence for c in found}
        rows = np.flatnonzero(~data.ground_truth.iscrowd).tolist()
        scores = {row: by_row.get(row, 0.0) for row in rows}
        return [scores[r] for r in sorted(planted.rows)], [
            v for r, v in scores.items() if r not in planted.rows
        ]
    dets = data.detections
    assert dets is not None
    hits = [
        max((c.confidence for c in found if _covers(c.image_id, c.box, d)), default=0.0)
        for d in planted.dropped
    ]
    clean = [c.confidence for c in found if not _is_planted(c, planted)]
    confident = np.flatnonzero(dets.scores >= DEFAULT_MIN_SCORE)
    own = [
        k
        for k in confident.tolist()
        if any(_covers(int(dets.image_ids[k]), dets.boxes[k], d) for d in planted.dropped)
        or any(
            iou_matrix(dets.boxes[k][None, :], np.asarray([c.box]))[0, 0] >= 0.5
            for c in found
            if c.image_id == int(dets.image_ids[k])
        )
    ]
    clean += [0.0] * (len(confident) - len(own))
    return hits, clean


def _auc(planted: list[float], clean: list[float]) -> float:
    """The probability that a planted error outranks a clean item (ties count half)."""
    if not clean:
        return 1.0
    wins = sum((p > c) + 0.5 * (p == c) for p in planted for c in clean)
    return float(wins) / (len(planted) * len(clean))


@pytest.fixture(scope="module")
def best_step_data(evaluated: tuple[Path, dict[str, Any]]) -> AnnotatedSet:
    """The stored ground truth and detections of the evaluated step with the best COCO mAP."""
    model_dir, _ = evaluated
    with Ledger.open(model_dir, readonly=True) as ledger:
        best = ledger.best()
    assert best is not None
    return load_detections(model_dir, best.step)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_planted_errors_rank_above_clean_boxes(
    best_step_data: AnnotatedSet, kind: LabelErrorKind, seed: int
) -> None:
    planted = _plant(best_step_data, kind, seed)
    found = find_label_errors(planted.data)
    assert set(found) == set(KINDS)
    assert all(c.kind == kind for c in found[kind])
    flags = [_is_planted(c, planted) for c in found[kind]]
    assert sum(flags) == len(planted.rows or planted.dropped), (
        kind,
        flags,
    )  # every planted error found, once
    confidences = [c.confidence for c in found[kind]]
    assert confidences == sorted(confidences, reverse=True)
    hits, clean = _planted_and_clean(found[kind], planted)
    assert min(hits) > 0, (kind, hits)
    assert _auc(hits, clean) >= MIN_AUC, (kind, hits, sorted(clean, reverse=True)[:5], len(clean))


def test_clean_set_flags_only_boxes_the_model_misses(best_step_data: AnnotatedSet) -> None:
    """Unmodified annotations: a box the model detects tightly is never a wrong_label / loose_box."""
    found = find_label_errors(best_step_data)
    iou = _detected_iou(best_step_data)
    for kind in ("wrong_label", "loose_box"):
        for candidate in found[kind]:
            assert candidate.gt_index is not None
            assert iou[candidate.gt_index] < max(LOOSE_MAX_IOU, MATCH_IOU), (kind, candidate)
