"""PR curves in the format of TensorBoard's PR Curves plugin, without TensorFlow.

The plugin stores one float32 tensor of shape ``[6, num_thresholds]`` per step: rows are true
positives, false positives, true negatives, false negatives, precision and recall at thresholds
evenly spaced in ``[0, 1]`` (threshold ``i / (num_thresholds - 1)``), and the plugin metadata
carries ``num_thresholds``. :func:`compute_pr_curve` bins scores the way the plugin's own
``summary.pb`` does (a score ``s`` counts as positive at every threshold ``<= s``, after flooring
to the threshold grid).

>>> import numpy as np
>>> curve = compute_pr_curve([True, False, True], [0.9, 0.6, 0.2], num_thresholds=3)
>>> curve.tp.tolist(), curve.fp.tolist()
([2.0, 1.0, 0.0], [1.0, 1.0, 0.0])
>>> np.round(curve.precision, 3).tolist(), curve.recall.tolist()
([0.667, 0.5, 0.0], [1.0, 0.5, 0.0])
>>> PRCurveSummary.from_array(curve.to_array()).num_thresholds
3
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.pr_curve import metadata as _pr_metadata

__all__ = ["DEFAULT_NUM_THRESHOLDS", "PLUGIN_NAME", "PRCurveSummary", "compute_pr_curve", "pr_curve_metadata"]

PLUGIN_NAME: str = _pr_metadata.PLUGIN_NAME
DEFAULT_NUM_THRESHOLDS = 201
_MINIMUM_COUNT = 1e-7  # the plugin's floor on denominators

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PRCurveSummary:
    """The payload of one TensorBoard ``pr_curves`` summary: counts and rates at ``num_thresholds``
    thresholds evenly spaced in ``[0, 1]`` (binned scores; compare
    :class:`tfod_tools.metrics.curves.ClassPRCurve`, exact, one point per detection).

    Build it from labels and scores (:func:`compute_pr_curve`), from counts
    (:meth:`from_counts`), or with all six arrays precomputed: ``PRCurveSummary(tp, fp, tn, fn,
    precision, recall)``.
    """

    tp: FloatArray
    fp: FloatArray
    tn: FloatArray
    fn: FloatArray
    precision: FloatArray
    recall: FloatArray

    @property
    def num_thresholds(self) -> int:
        """How many thresholds the curve has."""
        return int(self.tp.shape[0])

    @property
    def thresholds(self) -> FloatArray:
        """The thresholds, ``i / (num_thresholds - 1)``."""
        return np.linspace(0.0, 1.0, self.num_thresholds, dtype=np.float64)

    @classmethod
    def from_counts(cls, tp: Any, fp: Any, tn: Any, fn: Any) -> PRCurveSummary:
        """A curve from counts per threshold; precision and recall as the plugin computes them.

        >>> PRCurveSummary.from_counts([4, 2], [4, 0], [0, 4], [0, 2]).precision.tolist()
        [0.5, 1.0]
        """
        arrays = [np.asarray(a, dtype=np.float64).reshape(-1) for a in (tp, fp, tn, fn)]
        if len({a.shape[0] for a in arrays}) != 1 or arrays[0].shape[0] < 2:
            raise ValueError("tp, fp, tn, fn must have the same length >= 2")
        tp_, fp_, tn_, fn_ = arrays
        precision = tp_ / np.maximum(_MINIMUM_COUNT, tp_ + fp_)
        recall = tp_ / np.maximum(_MINIMUM_COUNT, tp_ + fn_)
        return cls(tp_, fp_, tn_, fn_, precision, recall)

    @classmethod
    def from_array(cls, array: Any) -> PRCurveSummary:
        """A curve from the plugin's ``[6, num_thresholds]`` tensor."""
        data = np.asarray(array, dtype=np.float64)
        if data.ndim != 2 or data.shape[0] != 6 or data.shape[1] < 2:
            raise ValueError(f"a PR-curve tensor has shape [6, N >= 2], got {list(data.shape)}")
        return cls(*(data[i].copy() for i in range(6)))

    def to_array(self) -> npt.NDArray[np.float32]:
        """The plugin's ``[6, num_thresholds]`` float32 tensor."""
        rows = (self.tp, self.fp, self.tn, self.fn, self.precision, self.recall)
        return np.stack([np.asarray(r, dtype=np.float32) for r in rows])


def compute_pr_curve(
    labels: Any, predictions: Any, num_thresholds: int = DEFAULT_NUM_THRESHOLDS, weights: Any = None
) -> PRCurveSummary:
    """A PR curve from boolean ``labels`` and ``predictions`` in ``[0, 1]``.

    Predictions outside ``[0, 1]`` are clipped, as the plugin does; ``weights`` scale each count.
    """
    if num_thresholds < 2:
        raise ValueError("num_thresholds must be >= 2")
    truth = np.asarray(labels, dtype=bool).reshape(-1)
    scores = np.clip(np.asarray(predictions, dtype=np.float64).reshape(-1), 0.0, 1.0)
    if truth.shape != scores.shape:
        raise ValueError(f"labels ({truth.shape[0]}) and predictions ({scores.shape[0]}) differ in length")
    w = np.broadcast_to(np.asarray(1.0 if weights is None else weights, dtype=np.float64), truth.shape)
    buckets = np.floor(scores * (num_thresholds - 1)).astype(np.int64)
    tp_buckets = np.bincount(buckets, weights=w * truth, minlength=num_thresholds)
    fp_buckets = np.bincount(buckets, weights=w * ~truth, minlength=num_thresholds)
    tp = np.cumsum(tp_buckets[::-1])[::-1]
    fp = np.cumsum(fp_buckets[::-1])[::-1]
    return PRCurveSummary.from_counts(tp, fp, fp[0] - fp, tp[0] - tp)


def pr_curve_metadata(
    num_thresholds: int, display_name: str = "", description: str = ""
) -> summary_pb2.SummaryMetadata:
    """The ``SummaryMetadata`` the PR Curves plugin expects on a PR-curve tensor.

    >>> pr_curve_metadata(5).plugin_data.plugin_name
    'pr_curves'
    """
    meta = _pr_metadata.create_summary_metadata(
        display_name=display_name, description=description, num_thresholds=num_thresholds
    )
    meta.data_class = summary_pb2.DATA_CLASS_TENSOR
    return meta
