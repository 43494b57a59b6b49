"""Findings about the train and eval records: size, absent classes, imbalance, train/eval mismatch,
and the validation findings of ``tfod inspect``.

>>> from tfod_tools.data.model import AnnotatedSet, GroundTruth, ImageTable
>>> def data(classes, n_images=4):
...     boxes = [[0, 0, 10, 10]] * len(classes)
...     images = ImageTable.from_sizes(range(1, n_images + 1), [64] * n_images, [64] * n_images)
...     ids = [1 + k % n_images for k in range(len(classes))]
...     return AnnotatedSet(images, {1: "opacity", 2: "nodule"}, GroundTruth.from_arrays(ids, boxes, classes))
>>> absent = class_absent_in_eval(data([1, 1, 1]))
>>> absent.id, absent.evidence["absent"]
('class_absent_in_eval', ['nodule'])
>>> eval_too_small(data([1, 2])).evidence["images"]
4
>>> class_imbalance(data([1] * 30 + [2] * 3, 40), None).evidence["ratio"]
10.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfod_tools.data.model import AnnotatedSet
from tfod_tools.diagnostics.datasets import area_bucket_counts, class_counts, negative_images
from tfod_tools.diagnostics.findings import finding_rule
from tfod_tools.diagnostics.model import Finding, Severity, table
from tfod_tools.diagnostics.noise import chance_band

__all__ = [
    "annotation_issue",
    "class_absent_in_eval",
    "class_imbalance",
    "eval_too_small",
    "train_eval_mismatch",
]

MIN_EVAL_IMAGES = 100
MIN_EVAL_BOXES_PER_CLASS = 30
IMBALANCE_RATIO = 5.0
MISMATCH_TVD = 0.15


def _shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: (v / total if total else 0.0) for k, v in counts.items()}


def _tvd(a: dict[str, float], b: dict[str, float]) -> float:
    """Total variation distance between two distributions over the same keys."""
    keys = set(a) | set(b)
    return 0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in keys)


@finding_rule(
    100, needs=("eval_set",), call=lambda fn, d: fn(d.eval_set, source=d.eval_source or "eval records")
)
def eval_too_small(eval_set: AnnotatedSet, *, source: str = "eval records") -> Finding | None:
    """Fewer than 100 eval images, or a class with fewer than 30 eval boxes: metrics move by chance."""
    counts = class_counts(eval_set)
    images = len(eval_set.images)
    thin = {k: v for k, v in counts.items() if 0 < v < MIN_EVAL_BOXES_PER_CLASS}
    if images >= MIN_EVAL_IMAGES and not thin:
        return None
    rows = []
    for name, n in counts.items():
        noise = round(chance_band(n), 3) if n else None  # the noise floor
        rows.append([name, n, noise])
    parts = []
    if images < MIN_EVAL_IMAGES:
        parts.append(f"{images} eval images (< {MIN_EVAL_IMAGES})")
    if thin:
        parts.append("classes with few eval boxes: " + ", ".join(f"{k} {v}" for k, v in thin.items()))
    message = (
        "the eval set is too small for stable metrics: "
        + "; ".join(parts)
        + ". With n boxes, a per-class AP or recall moves by about ±0.5/sqrt(n) from chance alone, so "
        "differences between checkpoints smaller than that are noise"
    )
    fix = (
        f"Add eval images until each class has at least {MIN_EVAL_BOXES_PER_CLASS} boxes (better 100+) and "
        f"the set has {MIN_EVAL_IMAGES}+ images; move images from train to eval if needed (keep patients / "
        "scenes on one side only)."
    )
    evidence: dict[str, Any] = {
        "source": source,
        "images": images,
        "negative_images": negative_images(eval_set),
        "per_class": table(["class", "eval boxes", "noise ±(0.5/sqrt n)"], rows),
    }
    return Finding("eval_too_small", "warning", message, evidence, fix)


@finding_rule(
    110, needs=("eval_set",), call=lambda fn, d: fn(d.eval_set, source=d.eval_source or "eval records")
)
def class_absent_in_eval(eval_set: AnnotatedSet, *, source: str = "eval records") -> Finding | None:
    """Label-map classes with no box in the eval set: their AP is undefined and they are left out of mAP."""
    counts = class_counts(eval_set)
    absent = [k for k, v in counts.items() if v == 0]
    if not absent:
        return None
    message = (
        f"{len(absent)} of {len(counts)} classes have no ground-truth box in the eval set "
        f"({', '.join(absent)}): "
        "their AP is -1 (undefined), they are left out of mAP, and the model is never checked on them"
    )
    fix = (
        "Add eval images containing these classes, or remove the classes from the label map (and set the "
        "pipeline's num_classes) if they are not meant to be detected."
    )
    evidence: dict[str, Any] = {
        "source": source,
        "absent": absent,
        "per_class": table(["class", "eval boxes"], list(counts.items())),
    }
    return Finding("class_absent_in_eval", "warning", message, evidence, fix)


@finding_rule(120, call=lambda fn, d: fn(d.train_set, d.eval_set))
def class_imbalance(train_set: AnnotatedSet | None, eval_set: AnnotatedSet | None) -> Finding | None:
    """The most frequent class has at least 5x the boxes of the rarest (present) one, in train or eval."""
    sets = [(name, s) for name, s in (("train", train_set), ("eval", eval_set)) if s is not None]
    if not sets:
        return None
    counts = {name: class_counts(s) for name, s in sets}
    ratios: dict[str, float] = {}
    for name, c in counts.items():
        present = [v for v in c.values() if v > 0]
        if len(present) >= 2:
            ratios[name] = max(present) / min(present)
    if not ratios or max(ratios.values()) < IMBALANCE_RATIO:
        return None
    names = list(next(iter(counts.values())))
    columns = ["class"]
    for split in counts:
        columns += [f"{split} boxes", f"{split} share"]
    rows = []
    for cls in names:
        row: list[Any] = [cls]
        for c in counts.values():
            shares = _shares(c)
            row += [c.get(cls, 0), round(shares.get(cls, 0.0), 3)]
        rows.append(row)
    worst = max(ratios, key=lambda k: ratios[k])
    c = counts[worst]
    big = max(c, key=lambda k: c[k])
    small = min((k for k in c if c[k] > 0), key=lambda k: c[k])
    message = (
        f"class imbalance: in {worst}, {big} has {c[big]} boxes and {small} {c[small]} "
        f"({ratios[worst]:.1f}x). The rare class gets few positive anchors, its AP is usually the lowest, "
        "and mAP (a mean over classes) hides it"
    )
    fix = (
        f"Collect more {small} examples, or balance the training data: `tfod balance` (oversampling with "
        "augmentation) or weight the loss; compare per-class AP, not only mAP."
    )
    evidence: dict[str, Any] = {"ratio": round(max(ratios.values()), 2), "classes": table(columns, rows)}
    return Finding("class_imbalance", "warning", message, evidence, fix)


def _median_side(data: AnnotatedSet) -> float:
    gt = data.ground_truth
    if not len(gt):
        return float("nan")
    return float(np.median(np.sqrt(np.maximum(gt.area, 0.0))))


@finding_rule(130, needs=("train_set", "eval_set"), call=lambda fn, d: fn(d.train_set, d.eval_set))
def train_eval_mismatch(train_set: AnnotatedSet, eval_set: AnnotatedSet) -> Finding | None:
    """Train and eval differ in class shares, COCO area-bucket shares, box sizes or negative-image share."""
    rows: list[list[Any]] = []
    problems: list[str] = []
    tc, ec = _shares(class_counts(train_set)), _shares(class_counts(eval_set))
    tvd_cls = _tvd(tc, ec)
    for cls in tc:
        rows.append([f"class share: {cls}", round(tc[cls], 3), round(ec.get(cls, 0.0), 3)])
    if tvd_cls > MISMATCH_TVD:
        problems.append(f"class shares differ (total variation {tvd_cls:.2f})")
    ta, ea = (
        _shares(area_bucket_counts(train_set.ground_truth)),
        _shares(area_bucket_counts(eval_set.ground_truth)),
    )
    tvd_area = _tvd(ta, ea)
    for bucket in ta:
        rows.append([f"area share: {bucket}", round(ta[bucket], 3), round(ea.get(bucket, 0.0), 3)])
    if tvd_area > MISMATCH_TVD:
        problems.append(f"object sizes differ (area-bucket total variation {tvd_area:.2f})")
    ts, es = _median_side(train_set), _median_side(eval_set)
    rows.append(["median box side (px)", round(ts, 1), round(es, 1)])
    if np.isfinite(ts) and np.isfinite(es) and max(ts, es) > 1.5 * min(ts, es):
        problems.append(f"median box side {ts:.0f} px in train vs {es:.0f} px in eval")
    tn = negative_images(train_set) / max(len(train_set.images), 1)
    en = negative_images(eval_set) / max(len(eval_set.images), 1)
    rows.append(["share of images without boxes", round(tn, 3), round(en, 3)])
    if abs(tn - en) > 0.2:
        problems.append(f"negative images {tn * 100:.0f}% in train vs {en * 100:.0f}% in eval")
    tw, ew = float(np.median(train_set.images.widths)), float(np.median(eval_set.images.widths))
    th, eh = float(np.median(train_set.images.heights)), float(np.median(eval_set.images.heights))
    rows.append(["median image size (w x h)", f"{tw:.0f}x{th:.0f}", f"{ew:.0f}x{eh:.0f}"])
    if max(tw * th, ew * eh) > 2.0 * max(min(tw * th, ew * eh), 1.0):
        problems.append(f"image sizes {tw:.0f}x{th:.0f} in train vs {ew:.0f}x{eh:.0f} in eval")
    if not problems:
        return None
    message = (
        "train and eval data differ: "
        + "; ".join(problems)
        + ". Metrics then measure the shift as much as the model"
    )
    fix = (
        "Split train and eval from the same pool, stratified by class and grouped by source / patient / site "
        "(tfod split -i ALL.record --label-map L --out PREFIX --group-by ...), or check that both record "
        "sets were made by the same conversion (same label map, same image sizes)."
    )
    severity: Severity = "warning"
    evidence: dict[str, Any] = {
        "class_tvd": round(tvd_cls, 3),
        "area_tvd": round(tvd_area, 3),
        "comparison": table(["statistic", "train", "eval"], rows),
    }
    return Finding("train_eval_mismatch", severity, message, evidence, fix)


@finding_rule(
    140,
    call=lambda fn, d: [
        fn(r.issues, role=k, files=[str(p) for p in r.files]) for k, r in d.inspections.items()
    ],
)
def annotation_issue(issues: list[Any], *, role: str, files: list[str]) -> Finding | None:
    """The validation findings of ``tfod inspect`` (:class:`tfod_tools.data.validate.Issue`) for one
    record set, as one finding with a table of issue ids, counts, examples and fixes."""
    if not issues:
        return None
    rows = []
    for issue in issues:
        example = ""
        if issue.examples:
            e = issue.examples[0].to_dict()
            example = ", ".join(f"{k}={v}" for k, v in e.items() if v not in ("", None, -1))
        rows.append([issue.id, issue.count, issue.message, example, issue.fix])
    total = sum(int(i.count) for i in issues)
    message = f"the {role} records have {total} annotation problem(s) of {len(issues)} kind(s): " + ", ".join(
        f"{i.id} x{i.count}" for i in issues
    )
    fix = "Fix the records (see each issue's fix), then re-run `tfod inspect " + " ".join(files) + "`."
    evidence: dict[str, Any] = {
        "role": role,
        "files": files,
        "issues": table(["id", "count", "meaning", "example", "fix"], rows),
    }
    return Finding("annotation_issue", "warning", message, evidence, fix)
