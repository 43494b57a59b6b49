"""One checkpoint's metrics under the stock TF OD API TensorBoard tags, and its PR curves.

:func:`checkpoint_metrics` turns an evaluated :class:`AnnotatedSet` (plus the eval losses) into
``{tag: value}``: the tags of each chosen metric protocol of :mod:`tfod_tools.evaluation.protocols`
that gives checkpoint tags (``coco``: :mod:`~tfod_tools.evaluation.protocols.coco`; ``voc``:
:mod:`~tfod_tools.evaluation.protocols.voc`), and the losses (``Loss/...``) as given.

:func:`pr_counts` gives each class's PR curve at IoU 0.5 (COCO matching) as TensorBoard's PR Curves
plugin counts (tp, fp, tn, fn per threshold; fn includes ground truth never detected).

>>> from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
>>> data = AnnotatedSet(
...     images=ImageTable.from_sizes([1], [100], [100]), categories={1: "cat"},
...     ground_truth=GroundTruth.from_arrays([1, 1], [[0, 0, 50, 50], [60, 60, 90, 90]], [1, 1]),
...     detections=Detections.from_arrays([1], [[0, 0, 50, 50]], [1], [0.9]))
>>> tags = checkpoint_metrics(data, ("coco", "voc"), {"Loss/total_loss": 1.5})
>>> round(tags["DetectionBoxes_Precision/mAP@.50IOU"], 4), tags["PascalBoxes_Precision/mAP@0.5IOU"]
(0.505, 0.5)
>>> round(tags["DetectionBoxes_PerformanceByCategory/mAP/cat"], 4), tags["Loss/total_loss"]
(0.505, 1.5)
>>> counts = pr_counts(data, num_thresholds=3)["cat"]
>>> counts[0].tolist(), counts[3].tolist()  # tp and fn at thresholds 0, 0.5, 1
([1.0, 1.0, 0.0], [1.0, 1.0, 2.0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from tfod_tools.data.model import AnnotatedSet
from tfod_tools.evaluation.protocols import protocols as registered_protocols
from tfod_tools.metrics.curves import pr_curves
from tfod_tools.tensorboard.pr_curves import DEFAULT_NUM_THRESHOLDS, PRCurveSummary, compute_pr_curve

__all__ = ["checkpoint_metrics", "curve_from_counts", "pr_counts", "pr_tag"]

PR_TAG = "DetectionBoxes_PR@.50IOU/"


def pr_tag(name: str) -> str:
    """The PR-curve tag of a class.

    >>> pr_tag("cat")
    'DetectionBoxes_PR@.50IOU/cat'
    """
    return PR_TAG + name


def checkpoint_metrics(
    data: AnnotatedSet, protocols: Sequence[str], losses: Mapping[str, float] | None = None
) -> dict[str, float]:
    """``{tag: value}`` for one checkpoint (see the module docstring)."""
    tags: dict[str, float] = {}
    for protocol in registered_protocols():
        if protocol.name in protocols and protocol.tags is not None:
            tags.update(protocol.tags(data))
    for key, value in (losses or {}).items():
        tags[key] = float(value)
    return tags


def pr_counts(
    data: AnnotatedSet, iou: float = 0.5, num_thresholds: int = DEFAULT_NUM_THRESHOLDS
) -> dict[str, npt.NDArray[np.float64]]:
    """Per class, a ``(4, num_thresholds)`` array: tp, fp, tn, fn at thresholds ``i/(T-1)``."""
    out: dict[str, npt.NDArray[np.float64]] = {}
    for name, curve in pr_curves(data, iou).items():
        hits = np.diff(curve.tp, prepend=0).astype(bool)
        binned = compute_pr_curve(hits, curve.scores, num_thresholds=num_thresholds)
        fn = curve.num_gt - binned.tp
        out[name] = np.stack([binned.tp, binned.fp, binned.tn, fn]).astype(np.float64)
    return out


def curve_from_counts(counts: npt.NDArray[np.float64]) -> PRCurveSummary:
    """The PR Curves plugin curve of a ``(4, T)`` counts array."""
    return PRCurveSummary.from_counts(counts[0], counts[1], counts[2], counts[3])
