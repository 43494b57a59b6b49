"""COCO-style matching of an :class:`~tfod_tools.data.model.AnnotatedSet`, shared by every metric.

:func:`match_coco` does what pycocotools' ``COCOeval.evaluate`` does, vectorised: group detections
and ground truth by (image, category), sort detections by score (stable, file order on ties), keep
the best ``max_det`` per group, compute IoUs (boxes or masks) for every pair in a group, and run the
greedy engine of :mod:`tfod_tools.metrics.matching` for every IoU threshold and area range at once.
A detection's area range is decided by ``Detections.area`` when the source gave one (a COCO results
file: the bbox's ``w * h`` whenever results carry a bbox, even for mask IoU, as ``loadRes`` does),
else by its box area (``bbox``) or mask area (``segm``). Box IoU is pycocotools' own arithmetic on
``[x, y, w, h]`` (:func:`~tfod_tools.metrics.boxes.coco_pair_iou`), with the source's ``w, h`` when known.
COCO AP, PR curves, counts and the error breakdown all start from its :class:`CocoMatch`.

>>> import numpy as np
>>> from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
>>> data = AnnotatedSet(
...     images=ImageTable.from_sizes([1], [100], [100]), categories={1: "a"},
...     ground_truth=GroundTruth.from_arrays([1], [[0, 0, 10, 10]], [1]),
...     detections=Detections.from_arrays([1, 1], [[0, 0, 10, 10], [0, 0, 10, 9]], [1, 1], [0.9, 0.8]))
>>> m = match_coco(data, iou_thresholds=[0.5])
>>> m.matched[0, 0].tolist(), m.num_gt[:, 0].tolist()  # area range "all"
([True, False], [1])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from tfod_tools.data.areas import COCO_AREA_RANGES
from tfod_tools.data.model import AnnotatedSet, Detections
from tfod_tools.errors import TfodError
from tfod_tools.metrics.boxes import coco_pair_iou, coco_xywh, mask_area, mask_pair_iou
from tfod_tools.metrics.matching import MatchResult, candidate_pairs, greedy_match

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
IouType = Literal["bbox", "segm"]

COCO_IOU_THRESHOLDS: FloatArray = np.linspace(  # type: ignore[assignment]
    0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True
)
COCO_RECALL_THRESHOLDS: FloatArray = np.linspace(  # type: ignore[assignment]
    0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True
)


@dataclass(frozen=True)
class CocoMatch:
    """Matched detections, in processing order (image, category, score); see :func:`match_coco`.

    ``det_index`` maps each processed detection to its row in ``data.detections``; ``matched`` and
    ``ignored`` are ``(A, T, N)`` (area range, IoU threshold, detection): a true positive, or neither
    TP nor FP (matched to a crowd/ignored box, or unmatched and outside the area range).
    ``num_gt`` is ``(K, A)``: ground truth that is not ignored, per category and area range.
    """

    det_index: IntArray
    det_image: IntArray
    det_cat: IntArray
    det_rank: IntArray
    det_score: FloatArray
    gt_image: IntArray
    gt_cat: IntArray
    gt_ignore: BoolArray
    matched: BoolArray
    ignored: BoolArray
    num_gt: IntArray
    match: MatchResult
    image_ids: IntArray
    category_ids: IntArray
    iou_thresholds: FloatArray
    area_labels: tuple[str, ...]

    def dt_gt(self) -> npt.NDArray[np.int32]:
        """``(A, T, N)`` ground-truth row matched by each processed detection (``-1``: none)."""
        return self.match.dense_gt(self.det_index.shape[0])


def _area_ranges(area_ranges: Mapping[str, Sequence[float]] | None) -> dict[str, tuple[float, float]]:
    if area_ranges is None:
        return dict(COCO_AREA_RANGES)
    out = {str(k): (float(v[0]), float(v[1])) for k, v in area_ranges.items()}
    if not out:
        raise TfodError("no area ranges given", fix="pass at least one (label -> (min, max)) range")
    return out


def match_coco(
    data: AnnotatedSet,
    iou_type: IouType = "bbox",
    *,
    iou_thresholds: Sequence[float] | FloatArray | None = None,
    area_ranges: Mapping[str, Sequence[float]] | None = None,
    max_det: int = 100,
    validate: bool = True,
) -> CocoMatch:
    """Match ``data.detections`` to ``data.ground_truth`` the way pycocotools' ``evaluate`` does."""
    if validate:
        data.validate()
    if iou_type not in ("bbox", "segm"):
        raise TfodError(f"unknown IoU type {iou_type!r}", fix="use 'bbox' or 'segm'")
    thr = COCO_IOU_THRESHOLDS if iou_thresholds is None else np.asarray(iou_thresholds, dtype=np.float64)
    ranges = _area_ranges(area_ranges)
    rng = np.asarray(list(ranges.values()), dtype=np.float64)
    gt = data.ground_truth
    dt = data.detections if data.detections is not None else Detections.empty()
    if iou_type == "segm" and ((len(gt) and gt.masks is None) or (len(dt) and dt.masks is None)):
        raise TfodError("segm evaluation needs masks on both ground truth and detections", fix="use bbox")
    image_ids = np.sort(data.images.ids)
    cat_ids = data.category_ids
    n_cat = max(int(cat_ids.shape[0]), 1)

    d_img = np.searchsorted(image_ids, dt.image_ids)
    d_cat = np.searchsorted(cat_ids, dt.classes)
    d_group = d_img * n_cat + d_cat
    order = np.lexsort((-dt.scores, d_group))
    sgroup = d_group[order]
    rank = np.arange(order.shape[0]) - np.searchsorted(sgroup, sgroup, side="left")
    keep = rank < max_det
    order, rank, sgroup = order[keep], rank[keep], sgroup[keep]

    g_img = np.searchsorted(image_ids, gt.image_ids)
    g_cat = np.searchsorted(cat_ids, gt.classes)
    g_group = g_img * n_cat + g_cat
    crowd = gt.iscrowd.astype(bool)
    base_ignore = crowd | gt.ignore.astype(bool)
    gt_area = gt.area
    dt_masks = [dt.masks[i] for i in order.tolist()] if iou_type == "segm" and dt.masks is not None else []
    dt_xywh = coco_xywh(dt.boxes, dt.wh)[order]
    if dt.area is not None:
        dt_area = dt.area[order]  # what the source says (a COCO results file: what loadRes gives)
    elif iou_type == "segm":
        dt_area = mask_area(dt_masks)
    else:
        dt_area = dt_xywh[:, 2] * dt_xywh[:, 3]
    gt_ignore = base_ignore[None, :] | (gt_area[None, :] < rng[:, :1]) | (gt_area[None, :] > rng[:, 1:])
    dt_out = (dt_area[None, :] < rng[:, :1]) | (dt_area[None, :] > rng[:, 1:])

    pair_dt, pair_gt = candidate_pairs(sgroup, g_group)
    if iou_type == "segm":
        ious = mask_pair_iou(dt_masks, gt.masks or (), crowd, pair_dt, pair_gt, sgroup[pair_dt])
    else:
        ious = coco_pair_iou(dt_xywh[pair_dt], coco_xywh(gt.boxes, gt.wh)[pair_gt], crowd[pair_gt])
    result = greedy_match(pair_dt, pair_gt, ious, sgroup, thr, gt_ignore, crowd, rule="coco")

    n = order.shape[0]
    matched = result.dense_matched(n)
    by_match = result.dense_ignored(n)
    ignored = by_match | (~(matched | by_match) & dt_out[:, None, :])
    num_gt = np.zeros((int(cat_ids.shape[0]), rng.shape[0]), dtype=np.int64)
    for a in range(rng.shape[0]):
        num_gt[:, a] = np.bincount(g_cat[~gt_ignore[a]], minlength=cat_ids.shape[0])[: cat_ids.shape[0]]
    return CocoMatch(
        det_index=order.astype(np.int64),
        det_image=d_img[order],
        det_cat=d_cat[order],
        det_rank=rank.astype(np.int64),
        det_score=dt.scores[order],
        gt_image=g_img,
        gt_cat=g_cat,
        gt_ignore=gt_ignore,
        matched=matched,
        ignored=ignored,
        num_gt=num_gt,
        match=result,
        image_ids=image_ids,
        category_ids=cat_ids,
        iou_thresholds=thr,
        area_labels=tuple(ranges),
    )
