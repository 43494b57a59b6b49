"""Box geometry for the metrics engine: areas and IoU, crowd IoU, two pixel conventions.

Boxes are ``[x1, y1, x2, y2]`` in absolute pixels (the data model's convention). IoU is computed the
way pycocotools' C code does it (intersection first, then ``union = (a_dt + a_gt) - inter``), so
matching decisions agree bit for bit with the reference. Against a *crowd* ground-truth region the
IoU is ``intersection / detection area`` (the detection is judged by how much of it lies inside
the crowd).

The ``inclusive`` convention is the Pascal VOC devkit's: a box from ``x1`` to ``x2`` covers
``x2 - x1 + 1`` pixels, both for areas and for intersections.

>>> import numpy as np
>>> a = np.array([[0.0, 0.0, 10.0, 10.0]])
>>> b = np.array([[5.0, 0.0, 15.0, 10.0], [0.0, 0.0, 5.0, 5.0]])
>>> iou_matrix(a, b).round(4).tolist()
[[0.3333, 0.25]]
>>> iou_matrix(a, b, crowd=np.array([True, False])).round(4).tolist()
[[0.5, 0.25]]
>>> iou_matrix(a, b, convention="inclusive").round(4).tolist()
[[0.375, 0.2975]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tfod_tools.errors import TfodError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
PixelConvention = Literal["continuous", "inclusive"]


def _offset(convention: str) -> float:
    if convention == "continuous":
        return 0.0
    if convention == "inclusive":
        return 1.0
    raise TfodError(f"unknown pixel convention {convention!r}", fix="use 'continuous' or 'inclusive'")


def box_area(boxes: FloatArray, convention: PixelConvention = "continuous") -> FloatArray:
    """Areas of ``[x1, y1, x2, y2]`` boxes.

    >>> box_area(np.array([[0.0, 0.0, 2.0, 3.0]])).tolist()
    [6.0]
    >>> box_area(np.array([[0.0, 0.0, 2.0, 3.0]]), "inclusive").tolist()
    [12.0]
    """
    off = _offset(convention)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return (boxes[:, 2] - boxes[:, 0] + off) * (boxes[:, 3] - boxes[:, 1] + off)


def pair_iou(
    dt_boxes: FloatArray,
    gt_boxes: FloatArray,
    gt_crowd: BoolArray | None = None,
    convention: PixelConvention = "continuous",
) -> FloatArray:
    """IoU of row ``i`` of ``dt_boxes`` with row ``i`` of ``gt_boxes`` (element-wise over pairs).

    >>> pair_iou(np.array([[0.0, 0, 2, 2], [0, 0, 1, 1]]), np.array([[1.0, 0, 3, 2], [2, 2, 3, 3]])).tolist()
    [0.3333333333333333, 0.0]
    """
    off = _offset(convention)
    d = np.asarray(dt_boxes, dtype=np.float64).reshape(-1, 4)
    g = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    w = np.minimum(d[:, 2], g[:, 2]) - np.maximum(d[:, 0], g[:, 0]) + off
    h = np.minimum(d[:, 3], g[:, 3]) - np.maximum(d[:, 1], g[:, 1]) + off
    da = (d[:, 2] - d[:, 0] + off) * (d[:, 3] - d[:, 1] + off)
    ga = (g[:, 2] - g[:, 0] + off) * (g[:, 3] - g[:, 1] + off)
    return _overlap_ratio(w, h, da, ga, gt_crowd)


def _overlap_ratio(
    w: FloatArray, h: FloatArray, da: FloatArray, ga: FloatArray, gt_crowd: BoolArray | None
) -> FloatArray:
    """IoU from the intersection's sides and both areas: ``inter / ((da + ga) - inter)``, crowd: ``/ da``."""
    overlap = (w > 0) & (h > 0)
    inter = np.where(overlap, w * h, 0.0)
    union = (da + ga) - inter
    if gt_crowd is not None:
        union = np.where(np.asarray(gt_crowd, dtype=bool), da, union)
    out = np.zeros(inter.shape[0], dtype=np.float64)
    np.divide(inter, union, out=out, where=overlap)
    return out


def coco_xywh(boxes: FloatArray, wh: FloatArray | None = None) -> FloatArray:
    """``[x, y, w, h]`` of ``[x1, y1, x2, y2]`` boxes, with the source's own ``w, h`` when known.

    >>> coco_xywh(np.array([[1.5, 2.2, 1.5 + 3.5, 2.2 + 1.8]]))[0, 2:].tolist()  # (2.2 + 1.8) - 2.2
    [3.5, 1.7999999999999998]
    >>> coco_xywh(np.array([[1.5, 2.2, 1.5 + 3.5, 2.2 + 1.8]]), np.array([[3.5, 1.8]]))[0, 2:].tolist()
    [3.5, 1.8]
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    size = b[:, 2:] - b[:, :2] if wh is None else np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    return np.concatenate([b[:, :2], size], axis=1)


def coco_pair_iou(dt_xywh: FloatArray, gt_xywh: FloatArray, gt_crowd: BoolArray | None = None) -> FloatArray:
    """Box IoU of pairs exactly as pycocotools' C ``bbIou`` forms it from ``[x, y, w, h]``.

    Right and bottom edges are ``x + w`` and ``y + h``, areas ``w * h``, so the last bit agrees with
    pycocotools (``(x + w) - x`` is not always ``w``: an IoU at a threshold could round the other way).

    >>> gt, dt = np.array([[1.5, 2.2, 3.5, 1.8]]), np.array([[1.5, 2.2, 2.8, 1.8]])
    >>> coco_pair_iou(dt, gt).tolist()  # below the 0.8 threshold, as in pycocotools
    [0.7999999999999998]
    """
    d = np.asarray(dt_xywh, dtype=np.float64).reshape(-1, 4)
    g = np.asarray(gt_xywh, dtype=np.float64).reshape(-1, 4)
    w = np.minimum(d[:, 2] + d[:, 0], g[:, 2] + g[:, 0]) - np.maximum(d[:, 0], g[:, 0])
    h = np.minimum(d[:, 3] + d[:, 1], g[:, 3] + g[:, 1]) - np.maximum(d[:, 1], g[:, 1])
    return _overlap_ratio(w, h, d[:, 2] * d[:, 3], g[:, 2] * g[:, 3], gt_crowd)


def iou_matrix(
    dt_boxes: FloatArray,
    gt_boxes: FloatArray,
    crowd: BoolArray | None = None,
    convention: PixelConvention = "continuous",
) -> FloatArray:
    """IoU of every detection (rows) with every ground-truth box (columns); crowd columns use crowd IoU."""
    d = np.asarray(dt_boxes, dtype=np.float64).reshape(-1, 4)
    g = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    nd, ng = d.shape[0], g.shape[0]
    di = np.repeat(np.arange(nd), ng)
    gi = np.tile(np.arange(ng), nd)
    c = None if crowd is None else np.asarray(crowd, dtype=bool)[gi]
    return pair_iou(d[di], g[gi], c, convention).reshape(nd, ng)


def mask_pair_iou(
    dt_masks: Sequence[dict[str, Any]],
    gt_masks: Sequence[dict[str, Any]],
    gt_crowd: BoolArray,
    pair_dt: IntArray,
    pair_gt: IntArray,
    pair_group: IntArray,
) -> FloatArray:
    """Mask IoU for pairs (uses pycocotools' RLE utilities); pairs must be contiguous per group.

    One call of ``pycocotools.mask.iou`` per group (an image and a category) with both sides present.
    """
    from pycocotools import mask as mask_utils  # run-time use of the RLE utilities only

    out = np.zeros(pair_dt.shape[0], dtype=np.float64)
    if not pair_dt.shape[0]:
        return out
    bounds = np.flatnonzero(np.diff(pair_group)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [pair_dt.shape[0]]])
    for s, e in zip(starts.tolist(), ends.tolist(), strict=False):
        dts = np.unique(pair_dt[s:e])
        gts = np.unique(pair_gt[s:e])
        matrix = np.asarray(
            mask_utils.iou(
                [dt_masks[i] for i in dts.tolist()],
                [gt_masks[j] for j in gts.tolist()],
                [int(x) for x in gt_crowd[gts]],
            ),
            dtype=np.float64,
        ).reshape(dts.shape[0], gts.shape[0])
        out[s:e] = matrix[np.searchsorted(dts, pair_dt[s:e]), np.searchsorted(gts, pair_gt[s:e])]
    return out


def mask_area(masks: Sequence[dict[str, Any]]) -> FloatArray:
    """Pixel areas of COCO RLE masks (:func:`tfod_tools.data.coco.rle_areas`).

    >>> mask_area([{"size": [4, 4], "counts": b"02208"}]).tolist()
    [4.0]
    """
    from tfod_tools.data.coco import rle_areas

    return rle_areas(masks)
