"""The one greedy matching engine of tfod_tools: every protocol and diagnostic matches through it.

Detections and ground-truth boxes are split into *groups* (usually an image and a category). Within
a group, detections are visited in the order given (highest score first) and each one is matched
to at most one ground-truth box; all groups advance together, one detection per group per step, so
the Python loop runs as many times as the largest number of contending detections in one group,
not once per image and category.

Two rules:

- ``"coco"`` (pycocotools' ``COCOeval.evaluateImg``): a detection takes the free ground truth with
  the highest IoU >= threshold, preferring boxes that are not ignored; ties go to the later box; a
  crowd box is never used up. Thresholds are capped at ``1 - 1e-10`` as pycocotools does.
- ``"voc"`` (Pascal VOC devkit, TF OD API ``PerImageEvaluation``): a detection looks at the box with
  the highest IoU (first on ties); if that IoU >= threshold and the box is free it is a true positive,
  if the box is already taken it is a duplicate (false positive), and if the box is ignored
  (``difficult``) the detection is ignored and the box stays free.

Every array is computed for ``A`` ignore masks (one per area range) and ``T`` IoU thresholds at once.

>>> import numpy as np
>>> dt_group = np.array([0, 0, 1])            # two detections in group 0, one in group 1
>>> gt_group = np.array([0, 1])
>>> pd, pg = candidate_pairs(dt_group, gt_group)
>>> pd.tolist(), pg.tolist()
([0, 1, 2], [0, 0, 1])
>>> res = greedy_match(pd, pg, np.array([0.9, 0.8, 0.3]), dt_group, np.array([0.5]),
...                    np.zeros((1, 2), dtype=bool), np.zeros(2, dtype=bool))
>>> res.dense_gt(3).tolist()                   # the second detection is a duplicate, the third misses
[[[0, -1, -1]]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
Rule = Literal["coco", "voc"]


def candidate_pairs(dt_group: IntArray, gt_group: IntArray) -> tuple[IntArray, IntArray]:
    """Every (detection, ground truth) pair that shares a group.

    Pairs come sorted by detection index, and within a detection by ground-truth index.
    """
    dt_group = np.asarray(dt_group, dtype=np.int64)
    gt_group = np.asarray(gt_group, dtype=np.int64)
    gorder = np.argsort(gt_group, kind="stable")
    gsorted = gt_group[gorder]
    start = np.searchsorted(gsorted, dt_group, side="left")
    count = np.searchsorted(gsorted, dt_group, side="right") - start
    total = int(count.sum())
    pair_dt = np.repeat(np.arange(dt_group.shape[0], dtype=np.int64), count)
    first = np.cumsum(count) - count
    offsets = np.repeat(start - first, count) + np.arange(total, dtype=np.int64)
    return pair_dt, gorder[offsets].astype(np.int64)


@dataclass(frozen=True)
class MatchResult:
    """Sparse result of :func:`greedy_match`.

    ``active`` lists the detections that had at least one candidate; ``gt[a, t, i]`` is the ground
    truth matched by ``active[i]`` (``-1``: none) and ``ignored[a, t, i]`` says the match was to an
    ignored box (neither TP nor FP). Detections not in ``active`` are unmatched everywhere.
    """

    active: IntArray
    gt: npt.NDArray[np.int32]
    ignored: BoolArray

    def dense_gt(self, n_dt: int) -> npt.NDArray[np.int32]:
        """``(A, T, n_dt)`` matched ground-truth index, ``-1`` for none."""
        out = np.full((*self.gt.shape[:2], n_dt), -1, dtype=np.int32)
        out[:, :, self.active] = self.gt
        return out

    def dense_matched(self, n_dt: int) -> BoolArray:
        """``(A, T, n_dt)``: matched to a box that is not ignored (a true positive)."""
        out = np.zeros((*self.gt.shape[:2], n_dt), dtype=bool)
        out[:, :, self.active] = (self.gt >= 0) & ~self.ignored
        return out

    def dense_ignored(self, n_dt: int) -> BoolArray:
        """``(A, T, n_dt)``: matched to an ignored box."""
        out = np.zeros((*self.gt.shape[:2], n_dt), dtype=bool)
        out[:, :, self.active] = self.ignored
        return out


def greedy_match(
    pair_dt: IntArray,
    pair_gt: IntArray,
    pair_iou: FloatArray,
    dt_group: IntArray,
    thresholds: FloatArray,
    gt_ignore: BoolArray,
    gt_crowd: BoolArray,
    rule: Rule = "coco",
) -> MatchResult:
    """Match detections to ground truth greedily, group by group, for every threshold and ignore mask.

    ``pair_*`` come from :func:`candidate_pairs` (sorted by detection, then ground truth); within a
    group, detections with a lower index are visited first. ``gt_ignore`` is ``(A, n_gt)``.
    """
    thr: FloatArray = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if rule == "coco":
        thr = np.minimum(thr, 1 - 1e-10).astype(np.float64)
    gt_ignore = np.asarray(gt_ignore, dtype=bool)
    n_area, n_thr = gt_ignore.shape[0], thr.shape[0]
    keep = pair_iou >= thr.min() if thr.shape[0] else np.zeros(pair_iou.shape[0], dtype=bool)
    p_dt, p_gt, p_iou = pair_dt[keep], pair_gt[keep], pair_iou[keep]
    active, pstart, pcount = np.unique(p_dt, return_index=True, return_counts=True)
    n_act = active.shape[0]
    res_gt = np.full((n_area, n_thr, n_act), -1, dtype=np.int32)
    res_ig = np.zeros((n_area, n_thr, n_act), dtype=bool)
    if not n_act:
        return MatchResult(active.astype(np.int64), res_gt, res_ig)
    # Rank of each active detection among the active detections of its group.
    groups = np.asarray(dt_group, dtype=np.int64)[active]
    by_group = np.argsort(groups, kind="stable")
    sorted_groups = groups[by_group]
    first_of_group = np.searchsorted(sorted_groups, sorted_groups, side="left")
    rank = np.empty(n_act, dtype=np.int64)
    rank[by_group] = np.arange(n_act) - first_of_group
    step_order = np.argsort(rank, kind="stable")
    step_bounds = np.searchsorted(rank[step_order], np.arange(int(rank.max()) + 2))

    taken = np.zeros((n_area, n_thr, gt_ignore.shape[1]), dtype=bool)
    crowd = np.asarray(gt_crowd, dtype=bool)
    a_idx = np.arange(n_area)[:, None, None]
    t_idx = np.arange(n_thr)[None, :, None]
    for s in range(step_bounds.shape[0] - 1):
        sel = step_order[step_bounds[s] : step_bounds[s + 1]]
        counts = pcount[sel]
        seg = np.cumsum(counts) - counts
        local = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(seg, counts)
        pidx = np.repeat(pstart[sel], counts) + local
        g = p_gt[pidx]
        iou = p_iou[pidx]
        ok = iou[None, :] >= thr[:, None]  # (T, P)
        ign = gt_ignore[:, g]  # (A, P)
        if rule == "coco":
            elig = ok[None] & (~taken[:, :, g] | crowd[g][None, None, :])
            prio = (~ign).astype(np.int8)[:, None, :]
            best = np.maximum.reduceat(np.where(elig, prio, np.int8(-1)), seg, axis=-1)
            cand = elig & (prio == np.repeat(best, counts, axis=-1))
        else:
            cand = np.broadcast_to(ok[None], (n_area, n_thr, ok.shape[1]))
            best = np.maximum.reduceat(cand.astype(np.int8), seg, axis=-1) - 1
        best_iou = np.maximum.reduceat(np.where(cand, iou, -1.0), seg, axis=-1)
        cand = cand & (iou == np.repeat(best_iou, counts, axis=-1))
        key = local if rule == "coco" else -local
        best_local = np.maximum.reduceat(np.where(cand, key, np.iinfo(np.int64).min), seg, axis=-1)
        if rule == "voc":
            best_local = -best_local
        found = best >= 0
        chosen = np.where(found, g[seg + np.where(found, best_local, 0)], -1)  # (A, T, D)
        chosen_ig = found & gt_ignore[a_idx, np.maximum(chosen, 0)]
        if rule == "voc":
            dup = found & ~chosen_ig & taken[a_idx, t_idx, np.maximum(chosen, 0)]
            chosen = np.where(dup, -1, chosen)
            mark = found & ~chosen_ig & ~dup
        else:
            mark = found
        aa, tt, dd = np.nonzero(mark)
        taken[aa, tt, chosen[aa, tt, dd]] = True
        res_gt[:, :, sel] = chosen
        res_ig[:, :, sel] = chosen_ig
    return MatchResult(active.astype(np.int64), res_gt, res_ig)
