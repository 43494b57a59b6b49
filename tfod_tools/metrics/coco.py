"""COCO detection metrics, exactly as pycocotools' ``COCOeval`` computes them, per class included.

:func:`evaluate_coco` reproduces ``evaluate()``, ``accumulate()`` and ``summarize()``: 10 IoU
thresholds, 101 recall thresholds, ``maxDets`` 1/10/100 per image and category, area ranges from the
ground truth's ``area``, crowd regions, the ``-1`` convention for "nothing to measure", and the 12
statistics. The same statistics are also given per class (what the TF OD API's
``include_metrics_per_category`` promises). A ground-truth box with ``ignore`` set is treated like
a crowd box that is not a crowd (it can absorb one detection, and counts neither way); pycocotools
itself overwrites that flag with ``iscrowd``. ``difficult`` is a Pascal VOC notion and is not used.

**Tied scores** are ordered as pycocotools orders them (both of its sorts are stable mergesorts): in
an image by their order in the input, across images by image id, lowest first, as pycocotools sorts
the ids (``sorted(cocoGt.getImgIds())``). That is a rule, so the TF OD API's
``CocoDetectionEvaluator`` (pycocotools underneath) agrees on ties too, with one catch: it keeps the
ids it is given, so string ids sort as strings (``"10"`` before ``"9"``), and ``model_main_tf2`` gives
it an int32 hash of each image's ``source_id`` (``inputs.HASH_KEY``), so there ties across images go in
hash order. tfod_tools sorts the image table's integer ids; renumber the images in the evaluator's
order to reproduce such a run exactly.

>>> from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
>>> data = AnnotatedSet(
...     images=ImageTable.from_sizes([1, 2], [100, 100], [100, 100]), categories={1: "cat", 2: "dog"},
...     ground_truth=GroundTruth.from_arrays([1, 2], [[0, 0, 50, 50], [10, 10, 20, 20]], [1, 2]),
...     detections=Detections.from_arrays([1, 2], [[0, 0, 50, 45], [50, 50, 60, 60]], [1, 2], [0.9, 0.8]))
>>> res = evaluate_coco(data)
>>> round(res.stats["AP50"], 4), round(res.per_class["cat"]["AP"], 4), res.per_class["dog"]["AP"]
(0.5, 0.9, 0.0)
>>> res.stats["APl"], res.reasons["APl"]
(-1.0, 'no ground truth in area large')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tfod_tools.data.model import AnnotatedSet
from tfod_tools.errors import TfodError
from tfod_tools.metrics.protocol import COCO_RECALL_THRESHOLDS, CocoMatch, IouType, match_coco

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

STAT_KEYS: tuple[str, ...] = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)

COCO_TAGS: dict[str, str] = {
    "AP": "DetectionBoxes_Precision/mAP",
    "AP50": "DetectionBoxes_Precision/mAP@.50IOU",
    "AP75": "DetectionBoxes_Precision/mAP@.75IOU",
    "APs": "DetectionBoxes_Precision/mAP (small)",
    "APm": "DetectionBoxes_Precision/mAP (medium)",
    "APl": "DetectionBoxes_Precision/mAP (large)",
    "AR1": "DetectionBoxes_Recall/AR@1",
    "AR10": "DetectionBoxes_Recall/AR@10",
    "AR100": "DetectionBoxes_Recall/AR@100",
    "ARs": "DetectionBoxes_Recall/AR@100 (small)",
    "ARm": "DetectionBoxes_Recall/AR@100 (medium)",
    "ARl": "DetectionBoxes_Recall/AR@100 (large)",
}
"""The 12 statistics under the stock TF OD API TensorBoard tag names (``DetectionMasks_`` for segm)."""

CATEGORY_MAP = "DetectionBoxes_PerformanceByCategory/mAP/"
"""The stock per-category mAP tag prefix (``include_metrics_per_category``); the class name follows."""
CATEGORY_AP50 = "DetectionBoxes_PerformanceByCategory/AP@.50IOU/"
"""The per-category AP@0.5 tag prefix tfod adds beside the stock one."""

_AREA_OF = {"s": "small", "m": "medium", "l": "large"}


def tag_for(key: str, iou_type: str = "bbox") -> str:
    """TensorBoard tag of a statistic.

    >>> tag_for("AP50"), tag_for("ARs", "segm")
    ('DetectionBoxes_Precision/mAP@.50IOU', 'DetectionMasks_Recall/AR@100 (small)')
    """
    tag = COCO_TAGS[key]
    return tag.replace("DetectionBoxes_", "DetectionMasks_") if iou_type == "segm" else tag


@dataclass(frozen=True)
class CocoResult:
    """The 12 statistics, overall and per class, with pycocotools' ``precision`` and ``recall`` arrays.

    ``precision`` is ``(T, R, K, A, M)`` and ``recall`` ``(T, K, A, M)`` (IoU threshold, recall
    threshold, category, area range, max detections), ``-1`` where a category has no ground truth.
    ``reasons`` explains each ``-1`` statistic; ``per_class_reasons`` does so per class.
    """

    iou_type: str
    stats: dict[str, float]
    per_class: dict[str, dict[str, float]]
    precision: FloatArray
    recall: FloatArray
    iou_thresholds: FloatArray
    recall_thresholds: FloatArray
    area_ranges: dict[str, tuple[float, float]]
    max_dets: tuple[int, ...]
    category_ids: IntArray
    category_names: tuple[str, ...]
    num_gt: IntArray
    reasons: dict[str, str] = field(default_factory=dict)
    per_class_reasons: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays)."""
        return {
            "protocol": "coco",
            "iou_type": self.iou_type,
            "stats": dict(self.stats),
            "per_class": {k: dict(v) for k, v in self.per_class.items()},
            "reasons": dict(self.reasons),
            "per_class_reasons": {k: dict(v) for k, v in self.per_class_reasons.items() if v},
            "num_gt": {n: int(self.num_gt[i, 0]) for i, n in enumerate(self.category_names)},
            "iou_thresholds": [float(t) for t in self.iou_thresholds],
            "area_ranges": {k: list(v) for k, v in self.area_ranges.items()},
            "max_dets": list(self.max_dets),
        }

    def tags(self) -> dict[str, float]:
        """The statistics under their TF OD API TensorBoard tag names."""
        return {tag_for(k, self.iou_type): v for k, v in self.stats.items() if k in COCO_TAGS}


def _recall_ordinals(num_gt: IntArray, rec_thr: FloatArray) -> IntArray:
    """``(K, A, R)``: 0-based index of the first true positive whose recall reaches each threshold."""
    out = np.zeros((*num_gt.shape, rec_thr.shape[0]), dtype=np.int64)
    for (k, a), npig in np.ndenumerate(num_gt):
        if npig > 0:
            rc = np.arange(1, npig + 1, dtype=np.float64) / npig
            out[k, a] = np.searchsorted(rc, rec_thr, side="left")
    return out


def _segment_suffix_max(values: FloatArray, seg: IntArray, n_seg: int) -> FloatArray:
    """Exact running maximum from the right within contiguous segments (ascending ``seg``)."""
    if not values.shape[0]:
        return values
    uniq, inv = np.unique(values, return_inverse=True)
    width = np.int64(uniq.shape[0])
    offset = (np.int64(n_seg) - 1 - seg[::-1]) * width
    acc = np.maximum.accumulate(offset + inv[::-1])
    return uniq[(acc - offset)[::-1]]


def accumulate(m: CocoMatch, max_dets: Sequence[int], rec_thr: FloatArray) -> tuple[FloatArray, FloatArray]:
    """pycocotools' ``accumulate``: the ``(T, R, K, A, M)`` precision and ``(T, K, A, M)`` recall."""
    n_area, n_thr = m.matched.shape[:2]
    n_cat, n_rec, n_max = m.category_ids.shape[0], rec_thr.shape[0], len(max_dets)
    precision = -np.ones((n_thr, n_rec, n_cat, n_area, n_max))
    recall = -np.ones((n_thr, n_cat, n_area, n_max))
    if not n_cat:
        return precision, recall
    # Category, then score (stable), then image, then rank in the image: pycocotools' concatenation order.
    s = np.lexsort((-m.det_score, m.det_cat))
    cat_s = m.det_cat[s]
    rank_s = m.det_rank[s]
    cat_start = np.searchsorted(cat_s, np.arange(n_cat), side="left")
    ordinals = _recall_ordinals(m.num_gt, rec_thr)
    eps = np.spacing(1)
    for mi, max_det in enumerate(max_dets):
        keep = rank_s < max_det
        kept = np.cumsum(keep)
        kept_before = (
            np.where(cat_start > 0, kept[np.maximum(cat_start - 1, 0)], 0) if kept.size else cat_start * 0
        )
        for a in range(n_area):
            tp = m.matched[a][:, s] & keep
            ig_cum = np.cumsum(m.ignored[a][:, s] & keep, axis=1)
            if ig_cum.shape[1]:
                ig_before = np.where(cat_start > 0, ig_cum[:, np.maximum(cat_start - 1, 0)], 0)
            else:
                ig_before = np.zeros((n_thr, n_cat), dtype=np.int64)
            t_i, n_i = np.nonzero(tp)
            k_i = cat_s[n_i]
            seg = t_i * n_cat + k_i
            ordinal = np.arange(seg.shape[0]) - np.searchsorted(seg, seg, side="left") + 1
            position = kept[n_i] - kept_before[k_i]
            fp = (position - ordinal - (ig_cum[t_i, n_i] - ig_before[t_i, k_i])).astype(np.float64)
            tpf = ordinal.astype(np.float64)
            pr = tpf / (fp + tpf + eps)
            best = _segment_suffix_max(pr, seg, n_thr * n_cat)
            n_tp = np.bincount(seg, minlength=n_thr * n_cat).reshape(n_thr, n_cat)
            seg_first = (np.cumsum(n_tp.reshape(-1)) - n_tp.reshape(-1)).reshape(n_thr, n_cat)
            want = ordinals[:, a, :]  # (K, R)
            reach = want[None, :, :] < n_tp[:, :, None]  # (T, K, R)
            idx = np.where(reach, seg_first[:, :, None] + want[None, :, :], 0)
            q = np.where(reach, best[idx] if best.shape[0] else 0.0, 0.0)  # (T, K, R)
            valid = m.num_gt[:, a] > 0
            precision[:, :, valid, a, mi] = q.transpose(0, 2, 1)[:, :, valid]
            recall[:, valid, a, mi] = n_tp[:, valid] / m.num_gt[valid, a]
    return precision, recall


def _mean_valid(values: FloatArray) -> float:
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def _stat_specs(
    thr: FloatArray, labels: Sequence[str], max_dets: Sequence[int]
) -> list[tuple[str, bool, IntArray | None, int, int]]:
    """(key, is_ap, IoU index or None, area index, max-dets index) for every statistic, like summarize()."""
    specs: list[tuple[str, bool, IntArray | None, int, int]] = []
    area_index = {lab: i for i, lab in enumerate(labels)}
    a_all = area_index.get("all", 0)
    m_last = len(max_dets) - 1
    specs.append(("AP", True, None, a_all, m_last))
    for key, value in (("AP50", 0.5), ("AP75", 0.75)):
        specs.append((key, True, np.where(value == thr)[0], a_all, m_last))
    for letter, label in _AREA_OF.items():
        if label in area_index:
            specs.append((f"AP{letter}", True, None, area_index[label], m_last))
    for mi, md in enumerate(max_dets):
        specs.append((f"AR{md}", False, None, a_all, mi))
    for letter, label in _AREA_OF.items():
        if label in area_index:
            specs.append((f"AR{letter}", False, None, area_index[label], m_last))
    return specs


def _reason(key: str, t_idx: IntArray | None, num_gt: IntArray, a: int, label: str) -> str:
    if t_idx is not None and not t_idx.size:
        return f"IoU threshold {key[2:4]}% is not among the evaluated thresholds"
    if not num_gt.size or not (num_gt[..., a] > 0).any():
        return "no ground truth" if label == "all" else f"no ground truth in area {label}"
    return ""


def evaluate_coco(
    data: AnnotatedSet,
    iou_type: IouType = "bbox",
    *,
    iou_thresholds: Sequence[float] | FloatArray | None = None,
    area_ranges: Mapping[str, Sequence[float]] | None = None,
    max_dets: Sequence[int] = (1, 10, 100),
    per_class: bool = True,
    validate: bool = True,
) -> CocoResult:
    """COCO mAP/mAR of ``data`` (boxes or masks), overall and per class; see the module docstring."""
    max_dets = tuple(int(x) for x in max_dets)
    if not max_dets or any(x <= 0 for x in max_dets):
        raise TfodError(f"max_dets must be positive, got {max_dets}")
    m = match_coco(
        data,
        iou_type,
        iou_thresholds=iou_thresholds,
        area_ranges=area_ranges,
        max_det=max_dets[-1],
        validate=validate,
    )
    rec_thr = COCO_RECALL_THRESHOLDS
    precision, recall = accumulate(m, max_dets, rec_thr)
    labels = m.area_labels
    specs = _stat_specs(m.iou_thresholds, labels, max_dets)
    names = tuple(str(data.categories[int(c)]) for c in m.category_ids)
    stats: dict[str, float] = {}
    reasons: dict[str, str] = {}
    per: dict[str, dict[str, float]] = {n: {} for n in names} if per_class else {}
    per_reasons: dict[str, dict[str, str]] = {n: {} for n in names} if per_class else {}
    for key, is_ap, t_idx, a, mi in specs:
        arr = precision[:, :, :, a, mi] if is_ap else recall[:, :, a, mi]
        if t_idx is not None:
            arr = arr[t_idx]
        stats[key] = _mean_valid(arr)
        if stats[key] == -1.0:
            reasons[key] = _reason(key, t_idx, m.num_gt, a, labels[a])
        for k, name in enumerate(names if per_class else ()):
            value = _mean_valid(arr[..., k])
            per[name][key] = value
            if value == -1.0:
                per_reasons[name][key] = _reason(key, t_idx, m.num_gt[k : k + 1], a, labels[a])
    return CocoResult(
        iou_type=iou_type,
        stats=stats,
        per_class=per,
        precision=precision,
        recall=recall,
        iou_thresholds=m.iou_thresholds,
        recall_thresholds=rec_thr,
        area_ranges=dict(zip(labels, _ranges_of(area_ranges), strict=True)),
        max_dets=max_dets,
        category_ids=m.category_ids,
        category_names=names,
        num_gt=m.num_gt,
        reasons=reasons,
        per_class_reasons=per_reasons,
    )


def _ranges_of(area_ranges: Mapping[str, Sequence[float]] | None) -> list[tuple[float, float]]:
    from tfod_tools.data.areas import COCO_AREA_RANGES

    src = COCO_AREA_RANGES if area_ranges is None else area_ranges
    return [(float(v[0]), float(v[1])) for v in src.values()]
