"""How sure a trend finding is: noise models for eval metrics across checkpoints and for loss curves.

Two questions, two tests:

- **Did the eval metric really fall from one checkpoint to another?** With the stored detections of
  both steps (``MODEL_DIR/eval/detections``, written by ``tfod evaluate``) this is a *paired
  bootstrap over eval images*: the images are drawn with replacement (the same draw for both
  checkpoints, ``resamples`` times, fixed seed) and the metric is recomputed on each draw. The
  detections are matched to the ground truth once per step (:func:`tfod_tools.metrics.protocol.match_coco`);
  matching is per image, so a draw only repeats each image's matched detections and ground truth
  and re-runs COCO's accumulation (:func:`tfod_tools.metrics.coco.accumulate`) - the exact COCO AP
  of the resampled set, not an approximation. The 95 % interval of the drop is the 2.5-97.5
  percentile of the resampled drops; "confidence" is the share of draws in which the earlier
  checkpoint is better. The earlier checkpoint is usually the *best* one, picked after looking at
  every evaluation, so when many checkpoints were compared the confidence is a little optimistic.
- Without stored detections (plain ``model_main_tf2`` runs have events only) the drop is compared
  with an **approximation**: the binomial standard error of a proportion measured on ``n``
  ground-truth boxes, ``sqrt(p (1 - p) / n)`` per checkpoint, combined as if the checkpoints were
  independent (the chance band of ``eval_too_small`` is the same error at ``p = 0.5``). It treats
  mAP as a proportion over boxes and ignores that both checkpoints see the same images; it is said
  to be an approximation wherever it is used. Without even the number of boxes, the drop is judged
  against the smallest eval set worth evaluating on (:data:`MIN_PLAUSIBLE_BOXES` boxes), and the
  message names how many boxes the drop would need to be real.
- **Is a loss curve really rising?** The Mann-Kendall trend test over the last points (exact
  null distribution for up to 40 points without ties, the normal approximation with the tie
  correction otherwise), one-sided, with the least-squares slope and its standard error reported
  next to it. It needs at least 4 points to ever reach p < 0.05 (4 rising points: p = 1/24).

>>> t = trend_test([1000, 2000, 3000, 4000, 5000], [0.30, 0.31, 0.33, 0.32, 0.40])
>>> t.s, round(t.p_rising, 4), t.significant("rising")
(8, 0.0417, True)
>>> trend_test([1000, 2000, 3000], [0.26, 0.27, 0.37]).significant("rising")  # 3 points: p >= 1/6
False
>>> c = binomial_change(0.405, 0.400, boxes=76)
>>> c.significant, c.describe().split(":")[-1].strip()
(False, 'within noise')
>>> binomial_change(0.80, 0.40, boxes=76).significant
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt

from tfod_tools.data.model import AnnotatedSet
from tfod_tools.metrics.coco import accumulate
from tfod_tools.metrics.protocol import (
    COCO_IOU_THRESHOLDS,
    COCO_RECALL_THRESHOLDS,
    CocoMatch,
    match_coco,
)

__all__ = [
    "ALPHA",
    "MIN_PLAUSIBLE_BOXES",
    "MetricChange",
    "Trend",
    "binomial_change",
    "bootstrap_change",
    "chance_band",
    "evaluated_boxes",
    "mann_kendall",
    "trend_test",
    "unknown_change",
]

ALPHA = 0.05
"""Significance level of every trend finding (two-sided 95 % intervals, one-sided p < 0.05)."""
MIN_PLAUSIBLE_BOXES = 100
"""Boxes assumed when the eval set's size is unknown: a smaller set cannot support any checkpoint choice."""
_Z = 1.959963984540054  # the 97.5 % point of the standard normal
_EXACT_MAX_N = 40

Method = Literal["bootstrap", "binomial", "unknown"]


def _normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


@lru_cache(maxsize=64)
def _inversion_counts(n: int) -> tuple[int, ...]:
    """Number of permutations of ``n`` items with ``k`` inversions, for every ``k`` (Mahonian numbers)."""
    counts = [1]
    for m in range(2, n + 1):
        new = [0] * (len(counts) + m - 1)
        running = 0
        for k in range(len(new)):
            running += counts[k] if k < len(counts) else 0
            if k - m >= 0:
                running -= counts[k - m]
            new[k] = running
        counts = new
    return tuple(counts)


def mann_kendall(values: Sequence[float] | npt.NDArray[np.float64]) -> tuple[int, float, float]:
    """``(S, p_rising, p_falling)``: the Mann-Kendall statistic and its one-sided p-values.

    ``S`` is the number of later-higher pairs minus later-lower pairs. Without ties and for at most
    40 points the p-values are exact (every order equally likely under "no trend"); otherwise they
    use the normal approximation with the tie-corrected variance and a continuity correction.

    >>> mann_kendall([1.0, 2.0, 3.0, 4.0])
    (6, 0.041666666666666664, 1.0)
    >>> s, up, down = mann_kendall([3.0, 1.0, 2.0, 2.0, 0.5])
    >>> s, round(up, 3), round(down, 3)
    (-5, 0.935, 0.156)
    """
    x = np.asarray(values, dtype=np.float64)
    n = int(x.shape[0])
    if n < 2:
        return 0, 1.0, 1.0
    diff = np.sign(x[None, :] - x[:, None])
    s = int(np.triu(diff, 1).sum())
    _, tie_sizes = np.unique(x, return_counts=True)
    ties = bool((tie_sizes > 1).any())
    if not ties and n <= _EXACT_MAX_N:
        counts = _inversion_counts(n)
        total = math.factorial(n)
        pairs = n * (n - 1) // 2
        inversions = (pairs - s) // 2  # S = pairs - 2 * inversions
        p_rising = sum(counts[: inversions + 1]) / total
        p_falling = sum(counts[inversions:]) / total
        return s, p_rising, p_falling
    t = tie_sizes.astype(np.float64)
    var = (n * (n - 1) * (2 * n + 5) - float(np.sum(t * (t - 1) * (2 * t + 5)))) / 18.0
    if var <= 0:
        return s, 1.0, 1.0
    sd = math.sqrt(var)
    return s, _normal_sf((s - 1) / sd), _normal_sf((-s - 1) / sd)


@dataclass(frozen=True)
class Trend:
    """A trend test over ``n`` points: Mann-Kendall ``s`` and p-values, least-squares slope per 1000 steps."""

    n: int
    first_step: int
    last_step: int
    s: int
    p_rising: float
    p_falling: float
    slope: float
    slope_se: float | None

    def significant(self, direction: Literal["rising", "falling"], alpha: float = ALPHA) -> bool:
        """Whether the trend in ``direction`` is significant at ``alpha`` (one-sided)."""
        return (self.p_rising if direction == "rising" else self.p_falling) < alpha

    def describe(self, direction: Literal["rising", "falling"] = "rising") -> str:
        """One clause: the test, its p-value and the slope.

        >>> trend_test([1000, 2000, 3000, 4000], [1.0, 2.0, 3.0, 4.0]).describe().split(": ")[1]
        'S = 6, one-sided p = 0.042; slope +1 ± 0 per 1000 steps'
        """
        p = self.p_rising if direction == "rising" else self.p_falling
        se = "" if self.slope_se is None else f" ± {self.slope_se:.2g}"
        return (
            f"Mann-Kendall over the last {self.n} points (steps {self.first_step}-{self.last_step}): "
            f"S = {self.s}, one-sided p = {p:.2g}; slope {self.slope:+.2g}{se} per 1000 steps"
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (rounded)."""
        return {
            "test": "Mann-Kendall",
            "points": self.n,
            "steps": f"{self.first_step}-{self.last_step}",
            "S": self.s,
            "p_rising": round(self.p_rising, 4),
            "p_falling": round(self.p_falling, 4),
            "slope_per_1000_steps": float(f"{self.slope:.3g}"),
            "slope_se": None if self.slope_se is None else float(f"{self.slope_se:.3g}"),
        }


def trend_test(steps: Sequence[int], values: Sequence[float]) -> Trend:
    """Mann-Kendall test and least-squares slope of ``values`` against ``steps`` (see the module docstring).

    >>> t = trend_test([0, 1000, 2000, 3000, 4000, 5000], [0.5, 0.4, 0.45, 0.35, 0.3, 0.31])
    >>> t.s, round(t.p_falling, 3), t.significant("falling"), t.significant("rising")
    (-11, 0.028, True, False)
    """
    x = np.asarray(steps, dtype=np.float64) / 1000.0
    y = np.asarray(values, dtype=np.float64)
    n = int(y.shape[0])
    s, up, down = mann_kendall(y)
    slope, se = 0.0, None
    if n >= 2 and float(np.ptp(x)) > 0:
        xc = x - x.mean()
        sxx = float(np.sum(xc * xc))
        slope = float(np.sum(xc * (y - y.mean())) / sxx)
        if n >= 3:
            resid = y - y.mean() - slope * xc
            se = math.sqrt(float(np.sum(resid * resid)) / (n - 2) / sxx)
    first = int(steps[0]) if n else 0
    last = int(steps[-1]) if n else 0
    return Trend(n, first, last, s, up, down, slope, se)


@dataclass(frozen=True)
class MetricChange:
    """How sure a fall of an eval metric from ``before`` (earlier step) to ``after`` is.

    ``drop = before - after`` as the test measured it (for a bootstrap: on the stored detections);
    ``low``-``high`` is its 95 % interval; ``confidence`` the probability that ``before`` is really
    higher (the share of bootstrap draws, or the normal approximation's); ``method`` says which noise
    model gave it and ``basis`` what it rests on (images, boxes, resamples).
    """

    method: Method
    before: float
    after: float
    low: float | None
    high: float | None
    confidence: float | None
    basis: str
    images: int | None = None
    boxes: int | None = None
    resamples: int | None = None
    seed: int | None = None
    boxes_needed: int | None = None

    @property
    def drop(self) -> float:
        """``before - after``."""
        return self.before - self.after

    @property
    def significant(self) -> bool:
        """The 95 % interval of the drop lies above 0."""
        return self.low is not None and self.low > 0

    @property
    def verdict(self) -> str:
        """``likely real`` or ``within noise``."""
        return "likely real" if self.significant else "within noise"

    def describe(self) -> str:
        """One clause: the interval, what it rests on, and the verdict.

        >>> binomial_change(0.8, 0.6, boxes=400).describe().split(" (")[0]
        '95% CI of the drop 0.138-0.262'
        """
        if self.low is None or self.high is None:
            return f"{self.basis}: {self.verdict}"
        conf = "" if self.confidence is None else f"; confidence {self.confidence * 100:.0f}%"
        return f"95% CI of the drop {self.low:.3f}-{self.high:.3f} ({self.basis}{conf}): {self.verdict}"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (rounded)."""

        def r(v: float | None) -> float | None:
            return None if v is None else round(float(v), 4)

        return {
            "method": self.method,
            "before": r(self.before),
            "after": r(self.after),
            "drop": r(self.drop),
            "ci95_low": r(self.low),
            "ci95_high": r(self.high),
            "confidence": r(self.confidence),
            "images": self.images,
            "boxes": self.boxes,
            "resamples": self.resamples,
            "seed": self.seed,
            "boxes_needed": self.boxes_needed,
            "verdict": self.verdict,
            "basis": self.basis,
        }


def _se_sum(before: float, after: float) -> float:
    """``sqrt(p1 q1 + p2 q2)``: the combined binomial spread of two proportions, per sqrt(box)."""
    p1 = min(max(before, 0.0), 1.0)
    p2 = min(max(after, 0.0), 1.0)
    return math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))


def binomial_change(before: float, after: float, *, boxes: int) -> MetricChange:
    """The drop against the binomial approximation on ``boxes`` ground-truth boxes (see the module docstring).

    >>> c = binomial_change(0.837, 0.81, boxes=5000)
    >>> round(c.low, 4), round(c.high, 4), c.significant
    (0.0121, 0.0419, True)
    """
    n = max(int(boxes), 1)
    se = _se_sum(before, after) / math.sqrt(n)
    drop = before - after
    confidence = 1.0 - _normal_sf(drop / se) if se > 0 else float(drop > 0)
    return MetricChange(
        method="binomial",
        before=before,
        after=after,
        low=drop - _Z * se,
        high=drop + _Z * se,
        confidence=confidence,
        basis=f"binomial approximation from {n} ground-truth boxes",
        boxes=n,
    )


def unknown_change(before: float, after: float) -> MetricChange:
    """The drop when neither detections nor the eval set's size are known: judged against
    :data:`MIN_PLAUSIBLE_BOXES` boxes, with the number of boxes it would need to be real.

    >>> c = unknown_change(0.837, 0.81)
    >>> c.significant, c.boxes_needed
    (False, 1530)
    >>> unknown_change(0.8, 0.3).significant
    True
    """
    drop = before - after
    spread = _se_sum(before, after)
    needed = math.ceil((_Z * spread / drop) ** 2) if drop > 0 else None
    assumed = binomial_change(before, after, boxes=MIN_PLAUSIBLE_BOXES)
    real = needed is not None and needed <= MIN_PLAUSIBLE_BOXES
    basis = (
        "the eval set's size is unknown (no stored detections, no eval records); by the binomial "
        f"approximation this drop is real only with more than {needed} ground-truth boxes"
        if needed is not None
        else "the eval set's size is unknown"
    )
    return MetricChange(
        method="unknown",
        before=before,
        after=after,
        low=assumed.low if real else None,
        high=assumed.high if real else None,
        confidence=None,
        basis=basis,
        boxes_needed=needed,
    )


def chance_band(boxes: int) -> float:
    """About how far a per-class AP or recall moves from chance alone on ``boxes`` eval boxes.

    The rule of thumb ``0.5 / sqrt(n)``: the binomial standard error of a proportion at ``p = 0.5``
    measured on ``n`` boxes (``eval_too_small``'s noise floor, the demo report's note). With no
    boxes it is 1.0, the whole range.

    >>> round(chance_band(25), 3), chance_band(16), chance_band(0)
    (0.1, 0.125, 1.0)
    """
    return 1.0 if boxes <= 0 else min(1.0, 0.5 / math.sqrt(boxes))


def evaluated_boxes(data: AnnotatedSet) -> int:
    """Ground-truth boxes that count in COCO AP (not crowd, not ignored).

    >>> from tfod_tools.data.model import GroundTruth, ImageTable
    >>> gt = GroundTruth.from_arrays([1, 1], [[0, 0, 5, 5], [1, 1, 9, 9]], [1, 1], iscrowd=[0, 1])
    >>> evaluated_boxes(AnnotatedSet(ImageTable.from_sizes([1], [10], [10]), {1: "a"}, gt))
    1
    """
    gt = data.ground_truth
    return int((~(gt.iscrowd.astype(bool) | gt.ignore.astype(bool))).sum())


def _iou_thresholds(metric: str) -> npt.NDArray[np.float64]:
    """The IoU thresholds a metric tag averages over: 0.5 / 0.75 when the tag names one, else COCO's ten."""
    compact = metric.replace(" ", "")
    if "@.50" in compact or "@0.5IOU" in compact:
        return np.array([0.5])
    if "@.75" in compact:
        return np.array([0.75])
    return COCO_IOU_THRESHOLDS


@dataclass(frozen=True)
class _Matched:
    """One step's detections matched once, area "all", at most 100 per image and class."""

    match: CocoMatch
    n_images: int

    @classmethod
    def of(cls, data: AnnotatedSet, thresholds: npt.NDArray[np.float64]) -> _Matched:
        m = match_coco(data, iou_thresholds=thresholds, area_ranges={"all": (0.0, 1e5**2)})
        # A detection scoring below every true positive of its class comes after the last true
        # positive in any resample, where precision only falls: it never changes AP, so drop it.
        hit = m.matched[0].any(axis=0)
        lowest = np.full(m.category_ids.shape[0], np.inf)
        np.minimum.at(lowest, m.det_cat[hit], m.det_score[hit])
        keep = m.det_score >= lowest[m.det_cat]
        m = replace(
            m,
            det_image=m.det_image[keep],
            det_score=m.det_score[keep],
            det_cat=m.det_cat[keep],
            det_rank=m.det_rank[keep],
            matched=m.matched[:, :, keep],
            ignored=m.ignored[:, :, keep],
        )
        return cls(m, int(m.image_ids.shape[0]))

    def ap(self, weights: npt.NDArray[np.int64]) -> float:
        """COCO AP with image ``i`` counted ``weights[i]`` times."""
        m = self.match
        det_rows = np.repeat(np.arange(m.det_image.shape[0]), weights[m.det_image])
        counted = ~m.gt_ignore[0]
        num_gt = np.bincount(
            m.gt_cat[counted],
            weights=weights[m.gt_image[counted]],
            minlength=m.category_ids.shape[0],
        )
        sub = replace(
            m,
            det_score=m.det_score[det_rows],
            det_cat=m.det_cat[det_rows],
            det_rank=m.det_rank[det_rows],
            matched=m.matched[:, :, det_rows],
            ignored=m.ignored[:, :, det_rows],
            num_gt=np.rint(num_gt).astype(np.int64)[:, None],
        )
        precision, _ = accumulate(sub, (100,), COCO_RECALL_THRESHOLDS)
        valid = precision[precision > -1]
        return float(valid.mean()) if valid.size else -1.0


def bootstrap_change(
    before: AnnotatedSet,
    after: AnnotatedSet,
    *,
    metric: str = "DetectionBoxes_Precision/mAP",
    resamples: int = 300,
    seed: int = 0,
) -> MetricChange | None:
    """Paired bootstrap over eval images of the fall of ``metric`` from ``before`` to ``after``
    (both the stored detections of one step on the same eval set); None when the sets differ.

    ``metric`` picks the IoU thresholds (``...mAP@.50IOU``: 0.5; otherwise COCO's 0.5:0.95); the
    statistic is COCO AP over every class with ground truth (see the module docstring).

    >>> from tfod_tools.data.model import Detections, GroundTruth, ImageTable
    >>> ids = list(range(1, 41))
    >>> gt = GroundTruth.from_arrays(ids, [[10, 10, 50, 50]] * 40, [1] * 40)
    >>> images = ImageTable.from_sizes(ids, [100] * 40, [100] * 40)
    >>> good = Detections.from_arrays(ids, [[10, 10, 50, 50]] * 40, [1] * 40, [0.9] * 40)
    >>> half = Detections.from_arrays(ids[:20], [[10, 10, 50, 50]] * 20, [1] * 20, [0.9] * 20)
    >>> c = bootstrap_change(AnnotatedSet(images, {1: "a"}, gt, good),
    ...                      AnnotatedSet(images, {1: "a"}, gt, half))
    >>> round(c.before, 3), round(c.after, 3), c.significant, c.images
    (1.0, 0.505, True, 40)
    """
    if not _same_eval_set(before, after):
        return None
    thresholds = _iou_thresholds(metric)
    a, b = _Matched.of(before, thresholds), _Matched.of(after, thresholds)
    n = a.n_images
    ones = np.ones(n, dtype=np.int64)
    observed_a, observed_b = a.ap(ones), b.ap(ones)
    rng = np.random.default_rng(seed)
    drops = np.empty(resamples)
    for r in range(resamples):
        weights = np.bincount(rng.integers(0, n, size=n), minlength=n).astype(np.int64)
        drops[r] = a.ap(weights) - b.ap(weights)
    low, high = (float(v) for v in np.percentile(drops, [2.5, 97.5]))
    ious = "IoU 0.5:0.95" if thresholds.shape[0] > 1 else f"IoU {thresholds[0]:g}"
    return MetricChange(
        method="bootstrap",
        before=observed_a,
        after=observed_b,
        low=low,
        high=high,
        confidence=float(np.mean(drops > 0)),
        basis=(
            f"paired bootstrap over {n} eval images of the stored detections, COCO AP at {ious}, "
            f"{resamples} resamples, seed {seed}"
        ),
        images=n,
        boxes=evaluated_boxes(before),
        resamples=resamples,
        seed=seed,
    )


def _same_eval_set(a: AnnotatedSet, b: AnnotatedSet) -> bool:
    ga, gb = a.ground_truth, b.ground_truth
    return (
        np.array_equal(np.sort(a.images.ids), np.sort(b.images.ids))
        and np.array_equal(ga.image_ids, gb.image_ids)
        and np.array_equal(ga.classes, gb.classes)
        and np.array_equal(ga.boxes, gb.boxes)
        and a.categories == b.categories
    )
