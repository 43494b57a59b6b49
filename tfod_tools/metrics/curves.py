"""Precision-recall curves per class; precision, recall and F1 against the score threshold; best-F1 threshold.

Detections are matched COCO-style (the shared engine, one IoU threshold, all areas, at most
``max_det`` per image and class); detections matched to crowd/ignored boxes are dropped. The curve
has one point per detection in descending score order; :func:`threshold_table` keeps the last point
of each run of equal scores, so row ``i`` describes "keep every detection scoring >= threshold[i]".

>>> from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
>>> data = AnnotatedSet(
...     images=ImageTable.from_sizes([1], [100], [100]), categories={1: "a"},
...     ground_truth=GroundTruth.from_arrays([1, 1], [[0, 0, 10, 10], [50, 50, 60, 60]], [1, 1]),
...     detections=Detections.from_arrays([1, 1, 1], [[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]],
...                                       [1, 1, 1], [0.9, 0.8, 0.3]))
>>> c = pr_curves(data)["a"]
>>> c.precision.round(3).tolist(), c.recall.tolist()
([1.0, 0.5, 0.667], [0.5, 0.5, 1.0])
>>> best = c.best_f1()
>>> best.threshold, round(best.f1, 3)
(0.3, 0.8)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tfod_tools.data.model import AnnotatedSet
from tfod_tools.metrics.protocol import match_coco

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class OperatingPoint:
    """Precision, recall and F1 when detections scoring >= ``threshold`` are kept."""

    threshold: float
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int

    def to_dict(self) -> dict[str, Any]:
        """As plain data."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class ClassPRCurve:
    """One class's curve from the matched detections, one point per (non-ignored) detection in
    descending score order (exact; the binned TensorBoard form is
    :class:`tfod_tools.tensorboard.pr_curves.PRCurveSummary`)."""

    name: str
    num_gt: int
    scores: FloatArray
    tp: npt.NDArray[np.int64]
    fp: npt.NDArray[np.int64]

    @property
    def precision(self) -> FloatArray:
        """Precision after each detection."""
        return self.tp / np.maximum(self.tp + self.fp, 1)

    @property
    def recall(self) -> FloatArray:
        """Recall after each detection (``nan`` without ground truth)."""
        return self.tp / self.num_gt if self.num_gt else np.full(self.tp.shape, np.nan)

    @property
    def f1(self) -> FloatArray:
        """F1 after each detection (0 where precision and recall are both 0)."""
        p, r = self.precision, np.nan_to_num(self.recall)
        return np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1), 0.0)

    def threshold_table(self) -> list[OperatingPoint]:
        """One operating point per distinct score (descending)."""
        if not self.scores.shape[0]:
            return []
        last = np.flatnonzero(np.append(self.scores[1:] != self.scores[:-1], True))
        p, r, f = self.precision, np.nan_to_num(self.recall), self.f1
        return [
            OperatingPoint(
                float(self.scores[i]),
                float(p[i]),
                float(r[i]),
                float(f[i]),
                int(self.tp[i]),
                int(self.fp[i]),
                int(self.num_gt - self.tp[i]),
            )
            for i in last
        ]

    def best_f1(self) -> OperatingPoint | None:
        """The threshold with the highest F1 (the highest on ties); ``None`` without detections."""
        table = self.threshold_table()
        if not table:
            return None
        return max(table, key=lambda op: (op.f1, op.threshold))


def pr_curves(data: AnnotatedSet, iou: float = 0.5, *, max_det: int = 100) -> dict[str, ClassPRCurve]:
    """A :class:`ClassPRCurve` for every category of ``data``."""
    m = match_coco(data, iou_thresholds=[iou], area_ranges={"all": (0.0, 1e10)}, max_det=max_det)
    keep = ~m.ignored[0, 0]
    order = np.lexsort((-m.det_score, m.det_cat))
    order = order[keep[order]]
    cat_s = m.det_cat[order]
    bounds = np.searchsorted(cat_s, np.arange(m.category_ids.shape[0] + 1))
    out: dict[str, ClassPRCurve] = {}
    for k, cid in enumerate(m.category_ids.tolist()):
        idx = order[bounds[k] : bounds[k + 1]]
        hits = m.matched[0, 0, idx]
        out[str(data.categories[cid])] = ClassPRCurve(
            name=str(data.categories[cid]),
            num_gt=int(m.num_gt[k, 0]),
            scores=m.det_score[idx],
            tp=np.cumsum(hits).astype(np.int64),
            fp=np.cumsum(~hits).astype(np.int64),
        )
    return out


def best_f1_thresholds(data: AnnotatedSet, iou: float = 0.5) -> dict[str, OperatingPoint | None]:
    """The best-F1 operating point of every class."""
    return {name: curve.best_f1() for name, curve in pr_curves(data, iou).items()}
