"""Image-level (study-level) metrics per class, as medical papers report them.

An image is *truly positive* for a class when it has a ground-truth box of that class (crowd and
ignored boxes included) and *predicted positive* at threshold ``t`` when a detection of that class
scores >= ``t``. Every image counts, negative images (no boxes) included. Given per class: accuracy,
sensitivity (recall), specificity, precision and F1 at ``t`` and at the best-F1 threshold, and AUROC
from each image's maximum score (images without a detection of the class score lowest, all tied).

>>> from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
>>> data = AnnotatedSet(
...     images=ImageTable.from_sizes([1, 2, 3], [100] * 3, [100] * 3), categories={1: "nodule"},
...     ground_truth=GroundTruth.from_arrays([1], [[0, 0, 10, 10]], [1]),
...     detections=Detections.from_arrays([1, 2], [[0, 0, 9, 9], [5, 5, 9, 9]], [1, 1], [0.9, 0.4]))
>>> r = image_level_metrics(data, threshold=0.5)["nodule"]
>>> r.at_threshold.sensitivity, r.at_threshold.specificity, r.auroc
(1.0, 1.0, 1.0)
>>> r.best.threshold
0.9
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tfod_tools.data.model import AnnotatedSet, Detections

FloatArray = npt.NDArray[np.float64]


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


@dataclass(frozen=True)
class BinaryStats:
    """Image-level confusion counts and rates at one threshold (``nan`` where undefined)."""

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def accuracy(self) -> float:
        """(TP + TN) / all images."""
        return _ratio(self.tp + self.tn, self.tp + self.fp + self.tn + self.fn)

    @property
    def sensitivity(self) -> float:
        """TP / (TP + FN)."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def specificity(self) -> float:
        """TN / (TN + FP)."""
        return _ratio(self.tn, self.tn + self.fp)

    @property
    def precision(self) -> float:
        """TP / (TP + FP)."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def f1(self) -> float:
        """2 TP / (2 TP + FP + FN)."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    def to_dict(self) -> dict[str, Any]:
        """As plain data."""
        names = (
            "threshold",
            "tp",
            "fp",
            "tn",
            "fn",
            "accuracy",
            "sensitivity",
            "specificity",
            "precision",
            "f1",
        )
        return {k: getattr(self, k) for k in names}


@dataclass(frozen=True)
class ImageLevelResult:
    """One class: statistics at the given threshold, at the best-F1 threshold, and AUROC."""

    name: str
    positives: int
    negatives: int
    at_threshold: BinaryStats
    best: BinaryStats
    auroc: float

    def to_dict(self) -> dict[str, Any]:
        """As plain data."""
        return {
            "positives": self.positives,
            "negatives": self.negatives,
            "at_threshold": self.at_threshold.to_dict(),
            "best_f1": self.best.to_dict(),
            "auroc": self.auroc,
        }


def auroc(scores: FloatArray, truth: npt.NDArray[np.bool_]) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); ``nan`` without both classes.

    >>> auroc(np.array([0.9, 0.5, 0.5, 0.1]), np.array([True, True, False, False]))
    0.875
    """
    pos, neg = int(truth.sum()), int((~truth).sum())
    if not pos or not neg:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    ranks = np.empty(s.shape[0])
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    ends = np.r_[starts[1:], s.shape[0]]
    ranks_sorted = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    ranks[order] = ranks_sorted
    return float((ranks[truth].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def _stats(t: float, max_score: FloatArray, truth: npt.NDArray[np.bool_]) -> BinaryStats:
    pred = max_score >= t
    return BinaryStats(
        threshold=float(t),
        tp=int((pred & truth).sum()),
        fp=int((pred & ~truth).sum()),
        tn=int((~pred & ~truth).sum()),
        fn=int((~pred & truth).sum()),
    )


def image_level_metrics(data: AnnotatedSet, threshold: float = 0.5) -> dict[str, ImageLevelResult]:
    """Per class image-level statistics; see the module docstring."""
    dets = data.detections if data.detections is not None else Detections.empty()
    image_ids = np.sort(data.images.ids)
    n_img = image_ids.shape[0]
    out: dict[str, ImageLevelResult] = {}
    for cid in data.category_ids.tolist():
        truth = np.zeros(n_img, dtype=bool)
        truth[np.searchsorted(image_ids, data.ground_truth.image_ids[data.ground_truth.classes == cid])] = (
            True
        )
        max_score = np.full(n_img, -np.inf)
        sel = dets.classes == cid
        np.maximum.at(max_score, np.searchsorted(image_ids, dets.image_ids[sel]), dets.scores[sel])
        candidates = np.unique(max_score[np.isfinite(max_score)])
        table = [_stats(float(t), max_score, truth) for t in candidates]
        best = max(table, key=lambda b: (np.nan_to_num(b.f1, nan=-1.0), b.threshold), default=None)
        if best is None:
            best = _stats(float("inf"), max_score, truth)
        name = str(data.categories[cid])
        out[name] = ImageLevelResult(
            name=name,
            positives=int(truth.sum()),
            negatives=int((~truth).sum()),
            at_threshold=_stats(threshold, max_score, truth),
            best=best,
            auroc=auroc(max_score, truth),
        )
    return out
