"""Findings from one step's stored detections: the weakest classes and image-level statistics.

>>> from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
>>> from tfod_tools.diagnostics.analysis import analyse_detections
>>> data = AnnotatedSet(
...     images=ImageTable.from_sizes([1, 2, 3], [100] * 3, [100] * 3), categories={1: "opacity", 2: "nodule"},
...     ground_truth=GroundTruth.from_arrays([1, 2], [[0, 0, 50, 50], [10, 10, 40, 40]], [1, 2]),
...     detections=Detections.from_arrays([1, 2], [[0, 0, 50, 50], [60, 60, 90, 90]], [1, 2], [0.9, 0.8]))
>>> a = analyse_detections(data, step=4000)
>>> f = low_class_ap(a)
>>> f.id, f.evidence["classes"]["rows"][0][:2]
('low_class_ap', ['nodule', 0.0])
>>> g = image_level(a)
>>> g.evidence["per_class"]["columns"][:4]
['class', 'AP', 'AP50', 'threshold (best F1)']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfod_tools.diagnostics.analysis import DetectionAnalysis
from tfod_tools.diagnostics.findings import finding_rule
from tfod_tools.diagnostics.model import Finding, table

__all__ = ["image_level", "low_class_ap"]

_ERROR_WORDS = {
    "Cls": "right place, wrong class",
    "Loc": "right class, poorly localised",
    "Both": "wrong class and poorly localised",
    "Dupe": "duplicate detection",
    "Bkg": "detection on background",
    "Miss": "box never detected",
}
_ERROR_FIX = {
    "Cls": "classes are confused: check the label map/annotations of similar classes, add examples that tell "
    "them apart, or merge them",
    "Loc": "boxes are found but misplaced: check box annotation consistency (tight boxes), anchor coverage, "
    "and train longer / at a higher input resolution",
    "Both": "detections are misplaced and misclassified: more and more varied training data for this class",
    "Dupe": "several detections per object: lower the NMS iou_threshold in post_processing",
    "Bkg": "false alarms on background: add negative images (no boxes) and hard negatives to training",
    "Miss": "objects are never detected: check anchor coverage for their size/shape, raise the input "
    "resolution, add training examples of this class",
}


def _fmt(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 3)


@finding_rule(160, needs=("analysis",), call=lambda fn, d: fn(d.analysis))
def low_class_ap(analysis: DetectionAnalysis, *, worst: int = 3, gap: float = 0.1) -> Finding | None:
    """The weakest classes (AP@[.5:.95] at least ``gap`` below the mean over classes, at most ``worst``)
    with their error breakdown; None when all classes are within ``gap`` of the mean."""
    per_class = {
        name: stats
        for name, stats in analysis.coco.per_class.items()
        if stats.get("AP", -1.0) > -1.0  # classes without ground truth have no AP
    }
    if len(per_class) < 1:
        return None
    mean = float(np.mean([s["AP"] for s in per_class.values()]))
    weak = sorted((s["AP"], name) for name, s in per_class.items() if s["AP"] < mean - gap or s["AP"] < 0.05)
    if not weak:
        return None
    errors = analysis.per_class_errors()
    rows = []
    advice = []
    for ap, name in weak[:worst]:
        e = errors.get(name, {})
        dominant = max(_ERROR_WORDS, key=lambda k: e.get(k, 0)) if e else "Miss"
        stats = per_class[name]
        rows.append(
            [
                name,
                _fmt(ap),
                _fmt(stats.get("AP50", float("nan"))),
                int(analysis.coco.num_gt[analysis.coco.category_names.index(name), 0]),
                *[e.get(k, 0) for k in _ERROR_WORDS],
                dominant,
            ]
        )
        advice.append(f"{name}: mostly '{_ERROR_WORDS[dominant]}' ({dominant}) - {_ERROR_FIX[dominant]}")
    names = ", ".join(f"{name} AP {ap:.3f}" for ap, name in weak[:worst])
    message = (
        f"weakest classes at step {analysis.step}: {names} (mean over classes {mean:.3f}). "
        "Error types per class: Cls/Loc/Both/Dupe/Bkg are false positives by cause, "
        "Miss the boxes never found"
    )
    dap = {k: round(v, 4) for k, v in analysis.breakdown.dap.items()}
    evidence: dict[str, Any] = {
        "step": analysis.step,
        "mean_ap": round(mean, 4),
        "classes": table(["class", "AP", "AP50", "boxes", *_ERROR_WORDS, "main error"], rows),
        "ap50_gain_if_fixed": dap,
    }
    return Finding("low_class_ap", "warning", message, evidence, "; ".join(advice))


def _percent_range(values: list[float]) -> str:
    """``"96%"``, or ``"88-95%"`` over classes; undefined (NaN) values left out.

    >>> _percent_range([0.955, float("nan")]), _percent_range([0.95, 0.881]), _percent_range([])
    ('96%', '88-95%', 'undefined')
    """
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        return "undefined"
    low, high = f"{min(finite) * 100:.0f}", f"{max(finite) * 100:.0f}"
    return f"{low}%" if low == high else f"{low}-{high}%"


@finding_rule(170, needs=("analysis",), call=lambda fn, d: fn(d.analysis))
def image_level(analysis: DetectionAnalysis) -> Finding | None:
    """Per class sensitivity, specificity and accuracy at the best-F1 threshold, next to AP.

    The message contrasts the run's own mAP with its own image-level accuracy and sensitivity at the
    analysis' operating threshold (:attr:`~tfod_tools.diagnostics.analysis.DetectionAnalysis.threshold`,
    computed by :func:`tfod_tools.metrics.image_level.image_level_metrics`).
    """
    if not analysis.image_level:
        return None
    rows = []
    for name, r in analysis.image_level.items():
        b = r.best
        ap = analysis.coco.per_class.get(name, {})
        rows.append(
            [
                name,
                _fmt(ap.get("AP", float("nan"))),
                _fmt(ap.get("AP50", float("nan"))),
                _fmt(b.threshold),
                _fmt(b.sensitivity),
                _fmt(b.specificity),
                _fmt(b.accuracy),
                _fmt(r.auroc),
                r.positives,
                r.negatives,
            ]
        )
    m_ap = analysis.coco.stats.get("AP", float("nan"))
    accs = [row[6] for row in rows if row[6] is not None]
    acc_txt = (
        f"image-level accuracy {min(accs) * 100:.0f}-{max(accs) * 100:.0f}%"
        if accs
        else "image-level accuracy"
    )
    t = analysis.threshold
    at = {name: r.at_threshold for name, r in analysis.image_level.items()}
    at_acc = _percent_range([b.accuracy for b in at.values()])
    at_sens = _percent_range([b.sensitivity for b in at.values()])
    message = (
        'image-level ("does this image contain class X?") statistics at each class\'s best-F1 threshold, '
        f"step {analysis.step}: {acc_txt} next to COCO mAP {m_ap:.3f}. They answer different questions - "
        f"this run's mAP {m_ap:.3f} goes with {at_acc} image-level accuracy and {at_sens} sensitivity "
        f"(recall) at its operating threshold {t:g} - and accuracy also depends on the share of negative "
        "images and on the threshold, so never compare a paper's accuracy with your mAP"
    )
    fix = (
        "Report image-level sensitivity/specificity (with the threshold and the number of positive and "
        "negative images) next to mAP, not instead of it; compare models on the same metric and the same "
        "eval set."
    )
    evidence: dict[str, Any] = {
        "step": analysis.step,
        "mAP": _fmt(m_ap),
        "operating_threshold": t,
        "at_operating_threshold": table(
            ["class", "accuracy", "sensitivity", "specificity", "TP", "FP", "TN", "FN"],
            [
                [name, _fmt(b.accuracy), _fmt(b.sensitivity), _fmt(b.specificity), b.tp, b.fp, b.tn, b.fn]
                for name, b in at.items()
            ],
        ),
        "per_class": table(
            [
                "class",
                "AP",
                "AP50",
                "threshold (best F1)",
                "sensitivity",
                "specificity",
                "accuracy",
                "AUROC",
                "positive images",
                "negative images",
            ],
            rows,
        ),
    }
    return Finding("image_level", "info", message, evidence, fix)
