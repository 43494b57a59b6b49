"""Curves, counts, confusion matrix, error breakdown and image-level metrics: consistency checks."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from tfod_tools.metrics.coco import evaluate_coco
from tfod_tools.metrics.counts import confusion_matrix, per_image_counts
from tfod_tools.metrics.curves import pr_curves
from tfod_tools.metrics.errors import error_breakdown
from tfod_tools.metrics.image_level import auroc, image_level_metrics


@pytest.mark.parametrize("seed", range(3))
def test_counts_agree_with_curves_and_confusion(oracles: SimpleNamespace, seed: int) -> None:
    data = oracles.random_coco_set(seed)
    t = 0.5
    totals = per_image_counts(data, score_threshold=t, iou=0.5).totals()
    curves = pr_curves(data, 0.5, max_det=10**9)
    cm = confusion_matrix(data, score_threshold=t, iou=0.5)
    k = len(data.categories)
    for name, curve in curves.items():
        above = curve.scores >= t
        tp = int(curve.tp[above][-1]) if above.any() else 0
        fp = int(curve.fp[above][-1]) if above.any() else 0
        got = totals.get(name, {"tp": 0, "fp": 0, "fn": curve.num_gt})
        assert (got["tp"], got["fp"], got["fn"]) == (tp, fp, curve.num_gt - tp)
    # Every kept detection lands in exactly one cell; every non-ignored box in one row.
    dets = data.detections
    n_kept = int((dets.scores >= t).sum())
    crowd_hits = cm.matrix.sum() - cm.matrix[:, :k].sum()  # missed boxes only
    assert cm.matrix[:, :k].sum() <= n_kept
    assert cm.matrix[:k].sum() == int((~(data.ground_truth.iscrowd | data.ground_truth.ignore)).sum())
    assert crowd_hits == cm.matrix[:k, k].sum()


def test_pr_curve_matches_coco_ap50(oracles: SimpleNamespace) -> None:
    data = oracles.random_coco_set(3)
    res = evaluate_coco(data, iou_thresholds=[0.5], area_ranges={"all": (0, 1e10)}, max_dets=(100,))
    for k, (_name, curve) in enumerate(pr_curves(data, 0.5).items()):
        if not curve.num_gt:
            continue
        pr = curve.tp / (curve.tp + curve.fp + np.spacing(1))
        rc = curve.tp / curve.num_gt
        env = np.maximum.accumulate(pr[::-1])[::-1] if pr.size else pr
        idx = np.searchsorted(rc, res.recall_thresholds, side="left")
        q = np.array([env[i] if i < env.size else 0.0 for i in idx])
        np.testing.assert_allclose(q, res.precision[0, :, k, 0, 0], atol=1e-12)
        best = curve.best_f1()
        if best is not None:
            assert best.f1 == pytest.approx(max(op.f1 for op in curve.threshold_table()))


@pytest.mark.parametrize("seed", range(2))
def test_error_breakdown_is_consistent(oracles: SimpleNamespace, seed: int) -> None:
    data = oracles.random_coco_set(seed)
    br = error_breakdown(data)
    types = np.array(br.det_type)
    fp_types = {"Cls", "Loc", "Both", "Dupe", "Bkg"}
    n_fp = int(np.isin(types, list(fp_types)).sum())
    assert sum(br.counts[t] for t in fp_types) == n_fp
    assert sum(br.fp_share.values()) == pytest.approx(1.0 if n_fp else 0.0)
    assert br.dap["Bkg"] >= -1e-12 and br.dap["Dupe"] >= -1e-12 and br.dap["Miss"] >= -1e-12
    ap50 = evaluate_coco(data, iou_thresholds=[0.5], area_ranges={"all": (0, 1e10)}, max_dets=(100,)).stats[
        "AP"
    ]
    assert br.ap == pytest.approx(max(ap50, 0.0), abs=1e-12)


def test_removing_all_false_positives_gives_perfect_precision(oracles: SimpleNamespace) -> None:
    data = oracles.random_coco_set(4)
    br = error_breakdown(data)
    keep = np.array([t == "TP" for t in br.det_type])
    after = error_breakdown(replace(data, detections=data.detections.select(keep)))
    assert all(after.counts[t] == 0 for t in ("Cls", "Loc", "Both", "Dupe", "Bkg"))
    assert (
        after.ap >= br.ap - 1e-12
        and after.counts["Miss"] <= br.counts["Miss"] + br.counts["Cls"] + br.counts["Loc"]
    )


def test_auroc_equals_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(60), 1)
    truth = rng.random(60) < 0.4
    pos, neg = scores[truth], scores[~truth]
    pairwise = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (
        pos.size * neg.size
    )
    assert auroc(scores, truth) == pytest.approx(pairwise, abs=1e-12)


def test_image_level_counts_negative_images(oracles: SimpleNamespace) -> None:
    data = oracles.random_coco_set(5)
    res = image_level_metrics(data, threshold=0.5)
    for _name, r in res.items():
        s = r.at_threshold
        assert s.tp + s.fp + s.tn + s.fn == len(data.images)
        assert r.positives + r.negatives == len(data.images)
        assert np.isnan(r.best.f1) or r.best.f1 >= (0.0 if np.isnan(s.f1) else s.f1) - 1e-12
