"""Pascal VOC average precision: VOC 2007 11-point (``voc07``) and VOC 2010+ every-point (``voc``).

Matching follows the devkit (and the TF OD API's ``PascalDetectionEvaluator``): detections of a
class are visited by descending score; each looks at its highest-IoU ground-truth box in the image;
at IoU >= ``iou`` it is a true positive if that box is still free, a duplicate (false positive) if
taken, and neither if the box is ``difficult`` (``ignore`` and ``iscrowd`` boxes are treated as
difficult too). Difficult boxes are not counted as positives. ``pixel_convention="continuous"`` is
the TF OD API's geometry; ``"inclusive"`` is the devkit's ``+1`` rule. A class without ground truth
has AP ``nan`` and is left out of the mean.

**Tied scores.** tfod_tools visits tied detections in one fixed order, for the matching in an image
and for the class's PR curve: by image (ascending id), then by their order in the input. The TF OD
API's ``PascalDetectionEvaluator`` has no fixed order. It sorts twice with numpy's default
``np.argsort(scores)`` reversed: per image and class in ``np_box_list_ops.sort_by_field`` (called by
``non_max_suppression`` from ``PerImageEvaluation._get_overlaps_and_scores_box_mode``), and per class
over all images' detections, concatenated in the order the images were added, in
``metrics.compute_precision_recall``. That sort is not stable, and how it permutes ties depends on the
machine: numpy 2.2 dispatches it to x86-simd-sort on CPUs with AVX2 or AVX-512, which reorders ties
from 4 elements up; without them it is an introsort, stable only up to 16 elements (and then
reversed: the last tied detection added comes first). So the API's AP on tied scores changes with the
CPU, the numpy build and the array lengths; no rule reproduces it. What does not change: a detection
looks only at its own best-IoU box, so how many detections of a tie group are true positives, and
hence precision and recall after each tie group, are the same in every order; only the points
inside a group move, and AP with them. :func:`ap_tie_range` gives each class's AP with the true
positives of every tie group first (the highest AP any order gives) and last (the lowest). The API's
AP lies in that range; where no tie group mixes true and false positives it is one value, and equal
to ours.

>>> from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
>>> data = AnnotatedSet(
...     images=ImageTable.from_sizes([1], [100], [100]), categories={1: "a"},
...     ground_truth=GroundTruth.from_arrays([1, 1], [[0, 0, 10, 10], [50, 50, 60, 60]], [1, 1]),
...     detections=Detections.from_arrays([1, 1], [[0, 0, 10, 10], [0, 0, 10, 11]], [1, 1], [0.9, 0.8]))
>>> evaluate_voc(data, method="voc").mAP
0.5
>>> round(evaluate_voc(data).mAP, 4)  # voc07 by default
0.5455
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tfod_tools.data.model import AnnotatedSet, Detections
from tfod_tools.errors import TfodError
from tfod_tools.metrics.boxes import PixelConvention, pair_iou
from tfod_tools.metrics.matching import candidate_pairs, greedy_match

FloatArray = npt.NDArray[np.float64]
VocMethod = Literal["voc07", "voc"]


def ap_every_point(precision: FloatArray, recall: FloatArray) -> float:
    """Area under the monotone PR envelope (VOC 2010+; the TF OD API's ``compute_average_precision``).

    >>> ap_every_point(np.array([1.0, 0.5]), np.array([0.5, 0.5]))
    0.5
    """
    if not precision.size:
        return 0.0
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    idx = np.where(r[1:] != r[:-1])[0] + 1
    return float(np.sum((r[idx] - r[idx - 1]) * p[idx]))


def ap_11_point(precision: FloatArray, recall: FloatArray) -> float:
    """VOC 2007 11-point interpolated AP.

    >>> round(ap_11_point(np.array([1.0, 0.5]), np.array([0.5, 0.5])), 4)
    0.5455
    """
    total = 0.0
    for t in np.linspace(0.0, 1.0, 11):
        above = precision[recall >= t]
        total += float(above.max()) if above.size else 0.0
    return total / 11.0


@dataclass(frozen=True)
class VocResult:
    """mAP and per-class AP, with each class's precision/recall/score arrays (score order)."""

    method: str
    iou: float
    pixel_convention: str
    mAP: float
    per_class: dict[str, dict[str, float]]
    precision: dict[str, FloatArray] = field(default_factory=dict)
    recall: dict[str, FloatArray] = field(default_factory=dict)
    scores: dict[str, FloatArray] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (``nan`` becomes ``None``)."""

        def clean(x: float) -> float | None:
            return None if np.isnan(x) else float(x)

        return {
            "protocol": self.method,
            "iou": self.iou,
            "pixel_convention": self.pixel_convention,
            "mAP": clean(self.mAP),
            "per_class": {n: {k: clean(v) for k, v in d.items()} for n, d in self.per_class.items()},
        }


def evaluate_voc(
    data: AnnotatedSet,
    *,
    iou: float = 0.5,
    method: VocMethod = "voc07",
    pixel_convention: PixelConvention = "continuous",
    validate: bool = True,
) -> VocResult:
    """Pascal VOC AP of every class at one IoU threshold; see the module docstring."""
    if method not in ("voc07", "voc"):
        raise TfodError(f"unknown VOC method {method!r}", fix="use 'voc07' (11-point) or 'voc' (every point)")
    if validate:
        data.validate()
    gt = data.ground_truth
    dt = data.detections if data.detections is not None else Detections.empty()
    image_ids = np.sort(data.images.ids)
    cat_ids = data.category_ids
    n_cat = max(int(cat_ids.shape[0]), 1)
    d_img, d_cat = np.searchsorted(image_ids, dt.image_ids), np.searchsorted(cat_ids, dt.classes)
    d_group = d_img * n_cat + d_cat
    order = np.lexsort((-dt.scores, d_group))
    g_group = np.searchsorted(image_ids, gt.image_ids) * n_cat + np.searchsorted(cat_ids, gt.classes)
    hard = gt.difficult | gt.ignore | gt.iscrowd
    pair_dt, pair_gt = candidate_pairs(d_group[order], g_group)
    ious = pair_iou(dt.boxes[order][pair_dt], gt.boxes[pair_gt], None, pixel_convention)
    res = greedy_match(
        pair_dt, pair_gt, ious, d_group[order], np.array([iou]), hard[None], np.zeros_like(hard), "voc"
    )
    n = order.shape[0]
    tp = res.dense_matched(n)[0, 0]
    ignored = res.dense_ignored(n)[0, 0]
    # Global order per class: score (stable), then image, then rank in the image.
    s = np.lexsort((-dt.scores[order], d_cat[order]))
    cat_s = d_cat[order][s]
    npos = np.bincount(np.searchsorted(cat_ids, gt.classes[~hard]), minlength=cat_ids.shape[0])
    ap_fn = ap_11_point if method == "voc07" else ap_every_point
    per: dict[str, dict[str, float]] = {}
    precisions: dict[str, FloatArray] = {}
    recalls: dict[str, FloatArray] = {}
    scores: dict[str, FloatArray] = {}
    bounds = np.searchsorted(cat_s, np.arange(cat_ids.shape[0] + 1))
    for k, cid in enumerate(cat_ids.tolist()):
        name = str(data.categories[cid])
        idx = s[bounds[k] : bounds[k + 1]]
        idx = idx[~ignored[idx]]
        hits = tp[idx].astype(np.float64)
        ctp, cfp = np.cumsum(hits), np.cumsum(1.0 - hits)
        if npos[k] == 0:
            per[name] = {
                "AP": float("nan"),
                "num_gt": 0.0,
                "tp": float(ctp[-1:].sum()),
                "fp": float(cfp[-1:].sum()),
            }
            continue
        precision = ctp / (ctp + cfp)
        recall = ctp / npos[k]
        precisions[name], recalls[name], scores[name] = precision, recall, dt.scores[order][idx]
        ap = ap_fn(precision, recall)
        per[name] = {
            "AP": ap,
            "num_gt": float(npos[k]),
            "tp": float(ctp[-1:].sum()),
            "fp": float(cfp[-1:].sum()),
        }
    valid = [v["AP"] for v in per.values() if not np.isnan(v["AP"])]
    mean = float(np.mean(valid)) if valid else float("nan")
    return VocResult(method, float(iou), pixel_convention, mean, per, precisions, recalls, scores)


def ap_tie_range(result: VocResult) -> dict[str, tuple[float, float]]:
    """Per class with ground truth, the lowest and highest AP over every order of tied detections.

    The true positives of each run of equal scores go last (lowest) or first (highest); see the
    module docstring. The TF OD API's Pascal AP lies in this range, whatever order its sort chose.

    >>> from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
    >>> data = AnnotatedSet(
    ...     images=ImageTable.from_sizes([1], [100], [100]), categories={1: "a"},
    ...     ground_truth=GroundTruth.from_arrays([1, 1], [[0, 0, 10, 10], [50, 50, 60, 60]], [1, 1]),
    ...     detections=Detections.from_arrays([1, 1], [[20, 20, 30, 30], [0, 0, 10, 10]], [1, 1], [0.5, 0.5]))
    >>> res = evaluate_voc(data, method="voc")
    >>> res.mAP, ap_tie_range(res)  # the false positive comes first in the input
    (0.25, {'a': (0.25, 0.5)})
    """
    ap_fn = ap_11_point if result.method == "voc07" else ap_every_point
    out: dict[str, tuple[float, float]] = {}
    for name, recall in result.recall.items():
        npos = result.per_class[name]["num_gt"]
        hits = np.diff(np.concatenate([[0.0], np.rint(recall * npos)])) > 0
        scores = result.scores[name]
        group = np.cumsum(np.concatenate([[True], scores[1:] != scores[:-1]]))
        ends = []
        for first in (False, True):
            h = hits[np.lexsort((hits != first, group))].astype(np.float64)
            ctp, cfp = np.cumsum(h), np.cumsum(1.0 - h)
            ends.append(ap_fn(ctp / (ctp + cfp), ctp / npos))
        out[name] = (ends[0], ends[1])
    return out
