"""Everything a diagnosis computes from one step's stored detections, computed once.

COCO metrics per class, PR curves and best-F1 thresholds (IoU 0.5), the TIDE-style error breakdown,
image-level statistics, the confusion matrix and per-image TP/FP/FN at one operating threshold (the
mean of the classes' best-F1 thresholds, 0.5 when no class has one).

>>> from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
>>> data = AnnotatedSet(
...     images=ImageTable.from_sizes([1, 2], [100, 100], [100, 100]), categories={1: "a", 2: "b"},
...     ground_truth=GroundTruth.from_arrays([1, 2], [[0, 0, 50, 50], [10, 10, 40, 40]], [1, 2]),
...     detections=Detections.from_arrays([1, 2], [[0, 0, 50, 45], [60, 60, 90, 90]], [1, 2], [0.9, 0.8]))
>>> a = analyse_detections(data, step=4000)
>>> round(a.coco.per_class["a"]["AP"], 3), a.coco.per_class["b"]["AP"], a.threshold
(0.9, 0.0, 0.9)
>>> a.worst_images(1)
[2]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tfod_tools.data.model import AnnotatedSet
from tfod_tools.metrics.coco import CocoResult, evaluate_coco
from tfod_tools.metrics.counts import ConfusionMatrix, CountTable, confusion_matrix, per_image_counts
from tfod_tools.metrics.curves import ClassPRCurve, OperatingPoint, pr_curves
from tfod_tools.metrics.errors import ErrorBreakdown, error_breakdown
from tfod_tools.metrics.image_level import ImageLevelResult, image_level_metrics


@dataclass(frozen=True)
class DetectionAnalysis:
    """The metrics of one evaluated step (see the module docstring)."""

    step: int | None
    data: AnnotatedSet
    coco: CocoResult
    curves: dict[str, ClassPRCurve]
    best_f1: dict[str, OperatingPoint | None]
    breakdown: ErrorBreakdown
    image_level: dict[str, ImageLevelResult]
    threshold: float
    confusion: ConfusionMatrix
    counts: CountTable

    def worst_images(self, n: int = 8) -> list[int]:
        """Image ids with the most false positives + missed boxes at :attr:`threshold` (ties: id)."""
        errors: dict[int, int] = {}
        for image_id, fp, fn in zip(
            self.counts.image_ids.tolist(), self.counts.fp.tolist(), self.counts.fn.tolist(), strict=True
        ):
            errors[image_id] = errors.get(image_id, 0) + fp + fn
        ranked = sorted((-e, i) for i, e in errors.items() if e > 0)
        return [i for _, i in ranked[:n]]

    def per_class_errors(self) -> dict[str, dict[str, int]]:
        """Per class (of the detection; of the box for misses): false positives by type and missed boxes."""
        dets = self.data.detections
        names = {int(c): str(n) for c, n in self.data.categories.items()}
        out = {n: {"Cls": 0, "Loc": 0, "Both": 0, "Dupe": 0, "Bkg": 0, "Miss": 0} for n in names.values()}
        if dets is not None:
            for cls, kind in zip(dets.classes.tolist(), self.breakdown.det_type, strict=True):
                if kind in out[names[cls]]:
                    out[names[cls]][kind] += 1
        for name, curve in self.curves.items():
            found = int(curve.tp[-1]) if curve.tp.shape[0] else 0
            out[name]["Miss"] = curve.num_gt - found
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "step": self.step,
            "coco": self.coco.to_dict(),
            "best_f1": {k: (v.to_dict() if v else None) for k, v in self.best_f1.items()},
            "errors": self.breakdown.to_dict(),
            "image_level": {k: v.to_dict() for k, v in self.image_level.items()},
            "threshold": self.threshold,
            "confusion": self.confusion.to_dict(),
        }


def analyse_detections(data: AnnotatedSet, step: int | None = None) -> DetectionAnalysis:
    """Compute every detection-based metric of ``data`` (ground truth + detections)."""
    coco = evaluate_coco(data)
    curves = pr_curves(data, 0.5)
    best = {name: curve.best_f1() for name, curve in curves.items()}
    thresholds = [op.threshold for op in best.values() if op is not None and op.f1 > 0]
    threshold = round(float(np.mean(thresholds)), 4) if thresholds else 0.5
    return DetectionAnalysis(
        step=step,
        data=data,
        coco=coco,
        curves=curves,
        best_f1=best,
        breakdown=error_breakdown(data),
        image_level=image_level_metrics(data, threshold),
        threshold=threshold,
        confusion=confusion_matrix(data, threshold),
        counts=per_image_counts(data, threshold),
    )
