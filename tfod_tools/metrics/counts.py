"""Per image and class TP / FP / FN at a score threshold and IoU, and the confusion matrix.

Counts are per class: detections scoring >= ``score_threshold`` are matched COCO-style (shared
engine) to ground truth of their class; a matched detection is a TP, an unmatched one an FP (also
when the image has no box of that class), an unmatched box an FN. Detections matched to crowd or
ignored boxes count neither way, and such boxes are never FNs.

The confusion matrix matches class-agnostically (greedy by score, IoU >= ``iou``): row = true class,
column = predicted class, the last row/column is background (an unmatched detection is
``[background, predicted]``, a missed box ``[true, background]``).

>>> from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
>>> data = AnnotatedSet(
...     images=ImageTable.from_sizes([1], [100], [100]), categories={1: "a", 2: "b"},
...     ground_truth=GroundTruth.from_arrays([1, 1], [[0, 0, 10, 10], [50, 50, 60, 60]], [1, 2]),
...     detections=Detections.from_arrays([1, 1], [[0, 0, 10, 10], [50, 50, 60, 60]], [1, 1], [0.9, 0.8]))
>>> t = per_image_counts(data)
>>> [(r["image_id"], r["class"], r["tp"], r["fp"], r["fn"]) for r in t.rows()]
[(1, 'a', 1, 1, 0), (1, 'b', 0, 0, 1)]
>>> confusion_matrix(data).matrix.tolist()
[[1, 0, 0], [1, 0, 0], [0, 0, 0]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tfod_tools.data.model import AnnotatedSet, Detections
from tfod_tools.metrics.boxes import pair_iou
from tfod_tools.metrics.matching import candidate_pairs, greedy_match
from tfod_tools.metrics.protocol import match_coco

IntArray = npt.NDArray[np.int64]
_NO_LIMIT = 1 << 40


def _above(data: AnnotatedSet, score_threshold: float) -> AnnotatedSet:
    dets = data.detections if data.detections is not None else Detections.empty()
    return AnnotatedSet(
        data.images, data.categories, data.ground_truth, dets.select(dets.scores >= score_threshold)
    )


@dataclass(frozen=True)
class CountTable:
    """TP/FP/FN per (image, class) pair that has a box or a detection."""

    image_ids: IntArray
    class_ids: IntArray
    class_names: tuple[str, ...]
    tp: IntArray
    fp: IntArray
    fn: IntArray

    def rows(self) -> list[dict[str, Any]]:
        """One dict per (image, class)."""
        return [
            {"image_id": int(i), "class_id": int(c), "class": n, "tp": int(a), "fp": int(b), "fn": int(f)}
            for i, c, n, a, b, f in zip(
                self.image_ids, self.class_ids, self.class_names, self.tp, self.fp, self.fn, strict=False
            )
        ]

    def totals(self) -> dict[str, dict[str, int]]:
        """Sums per class name."""
        out: dict[str, dict[str, int]] = {}
        for r in self.rows():
            d = out.setdefault(r["class"], {"tp": 0, "fp": 0, "fn": 0})
            for k in ("tp", "fp", "fn"):
                d[k] += r[k]
        return out


def per_image_counts(data: AnnotatedSet, score_threshold: float = 0.5, iou: float = 0.5) -> CountTable:
    """TP/FP/FN of every (image, class) at ``score_threshold`` and ``iou``."""
    m = match_coco(
        _above(data, score_threshold),
        iou_thresholds=[iou],
        area_ranges={"all": (0.0, 1e10)},
        max_det=_NO_LIMIT,
    )
    n_cat = max(int(m.category_ids.shape[0]), 1)
    n_pairs = m.image_ids.shape[0] * n_cat
    d_key = m.det_image * n_cat + m.det_cat
    tp = np.bincount(d_key[m.matched[0, 0]], minlength=n_pairs)
    fp = np.bincount(d_key[~m.matched[0, 0] & ~m.ignored[0, 0]], minlength=n_pairs)
    g_key = m.gt_image * n_cat + m.gt_cat
    npos = np.bincount(g_key[~m.gt_ignore[0]], minlength=n_pairs)
    fn = npos - tp
    present = np.zeros(n_pairs, dtype=bool)
    present[d_key] = True
    present[g_key] = True
    keys = np.flatnonzero(present)
    cls = m.category_ids[keys % n_cat]
    return CountTable(
        image_ids=m.image_ids[keys // n_cat],
        class_ids=cls,
        class_names=tuple(str(data.categories[int(c)]) for c in cls),
        tp=tp[keys].astype(np.int64),
        fp=fp[keys].astype(np.int64),
        fn=fn[keys].astype(np.int64),
    )


@dataclass(frozen=True)
class ConfusionMatrix:
    """``matrix[true, predicted]`` over ``labels`` (class names, then ``"background"``)."""

    labels: tuple[str, ...]
    matrix: IntArray

    def to_dict(self) -> dict[str, Any]:
        """As plain data."""
        return {"labels": list(self.labels), "matrix": self.matrix.tolist()}


def confusion_matrix(data: AnnotatedSet, score_threshold: float = 0.5, iou: float = 0.5) -> ConfusionMatrix:
    """Class-agnostic greedy matching by score, tallied into a (K+1) x (K+1) matrix."""
    sub = _above(data, score_threshold)
    sub.validate()
    gt, dt = sub.ground_truth, sub.detections if sub.detections is not None else Detections.empty()
    cat_ids = data.category_ids
    k = int(cat_ids.shape[0])
    d_img = np.searchsorted(np.sort(data.images.ids), dt.image_ids)
    g_img = np.searchsorted(np.sort(data.images.ids), gt.image_ids)
    order = np.lexsort((-dt.scores, d_img))
    pd, pg = candidate_pairs(d_img[order], g_img)
    ious = pair_iou(dt.boxes[order][pd], gt.boxes[pg], gt.iscrowd[pg])
    skip = gt.iscrowd | gt.ignore
    res = greedy_match(pd, pg, ious, d_img[order], np.array([iou]), skip[None], gt.iscrowd, "coco")
    matched_gt = res.dense_gt(order.shape[0])[0, 0]
    ignored = res.dense_ignored(order.shape[0])[0, 0]
    d_cls = np.searchsorted(cat_ids, dt.classes[order])
    g_cls = np.searchsorted(cat_ids, gt.classes)
    matrix = np.zeros((k + 1, k + 1), dtype=np.int64)
    hit = (matched_gt >= 0) & ~ignored
    np.add.at(matrix, (g_cls[matched_gt[hit]], d_cls[hit]), 1)
    np.add.at(matrix, (np.full(int((matched_gt < 0).sum()), k), d_cls[matched_gt < 0]), 1)
    found = np.zeros(len(gt), dtype=bool)
    found[matched_gt[hit]] = True
    missed = ~found & ~skip
    np.add.at(matrix, (g_cls[missed], np.full(int(missed.sum()), k)), 1)
    labels = (*tuple(str(data.categories[int(c)]) for c in cat_ids), "background")
    return ConfusionMatrix(labels, matrix)
