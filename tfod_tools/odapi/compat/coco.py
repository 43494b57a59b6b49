"""Per-category COCO metrics with stock pycocotools (finding 6: "Category stats do not exist").

With ``eval_config { include_metrics_per_category: true }`` the API's
``coco_tools.COCOEvalWrapper.ComputeMetrics`` reads ``self.category_stats``, a ``(12, K)`` array
that only Google's patched ``COCOeval.summarize`` produced: row ``i`` is COCO summary statistic
``i`` (AP, AP50, AP75, AP small/medium/large, AR@1, AR@10, AR@100, AR small/medium/large)
computed for one category. Stock pycocotools never sets it, so evaluation raises
``ValueError('Category stats do not exist')``. This fix wraps ``COCOEvalWrapper.summarize`` so
that, after the stock summary, it derives ``category_stats`` from the accumulated
``eval['precision']`` / ``eval['recall']`` arrays with the same rules as the summary (mean over
cells that are not ``-1``; ``-1`` when there is none).

>>> import numpy as np, types
>>> params = types.SimpleNamespace(iouThrs=np.array([0.5, 0.75]), maxDets=[1, 10, 100],
...                                areaRngLbl=["all", "small", "medium", "large"])
>>> precision = -np.ones((2, 3, 2, 4, 3))     # T, R, K, A, M
>>> precision[:, :, 0, 0, 2] = [[1.0, 1.0, 0.5], [0.0, 0.0, 0.0]]
>>> recall = -np.ones((2, 2, 4, 3))            # T, K, A, M
>>> recall[:, 0, 0, :] = [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
>>> stats = category_stats_from(precision, recall, params)
>>> stats.shape
(12, 2)
>>> stats[:3, 0].round(4).tolist(), float(stats[0, 1]), float(stats[8, 0])
([0.4167, 0.8333, 0.0], -1.0, 0.5)
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np

# (is_precision, iou threshold or None for all, area label, index into maxDets)
_STATS: tuple[tuple[bool, float | None, str, int], ...] = (
    (True, None, "all", 2),
    (True, 0.5, "all", 2),
    (True, 0.75, "all", 2),
    (True, None, "small", 2),
    (True, None, "medium", 2),
    (True, None, "large", 2),
    (False, None, "all", 0),
    (False, None, "all", 1),
    (False, None, "all", 2),
    (False, None, "small", 2),
    (False, None, "medium", 2),
    (False, None, "large", 2),
)


def _mean_defined(values: np.ndarray) -> float:
    defined = values[values > -1]
    return float(np.mean(defined)) if defined.size else -1.0


def category_stats_from(precision: np.ndarray, recall: np.ndarray, params: Any) -> np.ndarray:
    """The ``(12, K)`` per-category summary statistics from accumulated COCO arrays.

    ``precision`` is ``[T, R, K, A, M]`` and ``recall`` ``[T, K, A, M]`` as ``COCOeval.accumulate``
    leaves them in ``eval``; ``params`` supplies ``iouThrs``, ``areaRngLbl`` and ``maxDets``.
    """
    num_categories = precision.shape[2]
    iou_thresholds = np.asarray(params.iouThrs, dtype=np.float64)
    stats = -np.ones((len(_STATS), num_categories), dtype=np.float64)
    max_dets = list(params.maxDets)
    for row, (is_precision, iou, area, det_index) in enumerate(_STATS):
        if area not in params.areaRngLbl or det_index >= len(max_dets):
            continue
        a = list(params.areaRngLbl).index(area)
        m = det_index
        t = np.arange(len(iou_thresholds)) if iou is None else np.flatnonzero(np.isclose(iou_thresholds, iou))
        if t.size == 0:
            continue
        for k in range(num_categories):
            cells = precision[t, :, k, a, m] if is_precision else recall[t, k, a, m]
            stats[row, k] = _mean_defined(cells)
    return stats


def stock_cocoeval_lacks_category_stats() -> bool:
    """True when the installed pycocotools ``COCOeval`` does not compute ``category_stats``."""
    import inspect

    from pycocotools import cocoeval

    return "category_stats" not in inspect.getsource(cocoeval.COCOeval)


def patch_coco_tools(coco_tools: types.ModuleType) -> bool:
    """Wrap ``coco_tools.COCOEvalWrapper.summarize`` to set ``category_stats``; False if already done."""
    wrapper = coco_tools.COCOEvalWrapper
    if getattr(wrapper, "_tfod_category_stats", False):
        return False
    original = wrapper.summarize

    def summarize(self: Any) -> None:
        original(self)
        iou_type = getattr(self, "_iou_type", "bbox")
        if iou_type in ("bbox", "segm") and not hasattr(self, "category_stats"):
            self.category_stats = category_stats_from(
                np.asarray(self.eval["precision"]), np.asarray(self.eval["recall"]), self.params
            )

    summarize.__doc__ = original.__doc__
    wrapper.summarize = summarize
    wrapper._tfod_category_stats = True
    return True
