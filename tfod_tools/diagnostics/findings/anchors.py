"""``anchor_coverage``: ground-truth boxes no anchor overlaps well enough for the matcher.

During training the SSD matcher (``argmax_matcher``) makes an anchor a positive for a box only when
their IoU reaches ``matched_threshold`` (0.5 by default); a box whose best anchor stays below it gets
at most one forced match (``force_match_for_each_row``) or none, and the model hardly learns it. Tiny
objects (smaller than the smallest anchor, or between anchor centres) and very thin objects (more
elongated than any anchor aspect ratio) are the usual victims. Each what-if re-computes the coverage
with one change to the pipeline, so the fix names a change that is measured to help.

>>> import numpy as np
>>> from tfod_tools.data.model import AnnotatedSet, GroundTruth, ImageTable
>>> from tfod_tools.diagnostics.anchors import AnchorModel, SsdAnchorSpec
>>> from tfod_tools.odapi.resizer import ImageResizer
>>> resizer = ImageResizer("fixed_shape_resizer", height=128, width=128)
>>> model = AnchorModel(SsdAnchorSpec(aspect_ratios=(1.0, 2.0, 0.5)), resizer)
>>> boxes = [[10, 10, 14, 14], [40, 40, 44, 44], [0, 50, 120, 54]]   # two 4 px squares and a 120x4 line
>>> data = AnnotatedSet(ImageTable.from_sizes([1], [128], [128]), {1: "dot", 2: "line"},
...                     GroundTruth.from_arrays([1, 1, 1], boxes, [1, 1, 2]))
>>> f = anchor_coverage(model, data)
>>> f.id, f.evidence["share_below"], f.evidence["tiny"], f.evidence["thin"]
('anchor_coverage', 1.0, 2, 1)
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import numpy as np

from tfod_tools.data.model import AnnotatedSet
from tfod_tools.diagnostics.anchors import AnchorModel, Coverage, MultiscaleAnchorSpec, SsdAnchorSpec
from tfod_tools.diagnostics.anchors import anchor_coverage as compute_coverage
from tfod_tools.diagnostics.model import Finding, Severity, table

__all__ = ["anchor_coverage", "coverage_of"]

_SIDE_EDGES = (0.0, 8.0, 16.0, 32.0, 64.0, 128.0, np.inf)
_ELONGATION_EDGES = (1.0, 2.0, 3.0, 5.0, np.inf)
_MAX_BOXES = 20000
_MAX_WHATIF_BOXES = 4000


def coverage_of(model: AnchorModel, data: AnnotatedSet, max_boxes: int = _MAX_BOXES) -> Coverage:
    """:func:`~tfod_tools.diagnostics.anchors.anchor_coverage` of a data set's counted boxes
    (an even, deterministic sample of ``max_boxes`` when there are more)."""
    gt = data.ground_truth
    keep = np.flatnonzero(~(gt.iscrowd | gt.ignore))
    if keep.shape[0] > max_boxes:
        keep = keep[np.linspace(0, keep.shape[0] - 1, max_boxes).astype(np.int64)]
    index = data.images.index_of()
    rows = np.array([index[int(i)] for i in gt.image_ids[keep]], dtype=np.int64)
    return compute_coverage(
        model, gt.boxes[keep], gt.classes[keep], data.images.heights[rows], data.images.widths[rows]
    )


def _bucket_label(lo: float, hi: float, unit: str = "") -> str:
    return f">= {lo:g}{unit}" if not np.isfinite(hi) else f"{lo:g}-{hi:g}{unit}"


_COMMON_RATIOS = np.array([3.0, 4.0, 5.0, 6.0, 8.0, 10.0])


def _ratio_choices(ratios: np.ndarray, existing: tuple[float, ...]) -> list[float]:
    """Aspect ratios (width / height, rounded to common values) that the uncovered thin boxes need:
    one for the wide ones, one for the tall ones, leaving out those already configured.

    >>> _ratio_choices(np.array([4.2, 3.9, 0.2]), (1.0, 2.0, 0.5))
    [4.0, 0.2]
    """
    out: list[float] = []
    wide, tall = ratios[ratios > 1], 1.0 / ratios[ratios < 1]
    for values, invert in ((wide, False), (tall, True)):
        if values.shape[0]:
            pick = float(_COMMON_RATIOS[np.argmin(np.abs(np.log(_COMMON_RATIOS / np.median(values))))])
            out.append(round(1.0 / pick, 4) if invert else pick)
    return [r for r in out if all(abs(np.log(r / e)) > 0.05 for e in existing)]


def _whatifs(
    model: AnchorModel, cov: Coverage, tiny: np.ndarray, thin: np.ndarray
) -> list[tuple[str, AnchorModel]]:
    out: list[tuple[str, AnchorModel]] = []
    spec = model.spec
    ratios = (
        _ratio_choices((cov.width / np.maximum(cov.height, 1e-9))[thin], model.aspect_ratios())
        if thin.any()
        else []
    )
    if isinstance(spec, SsdAnchorSpec):
        if tiny.any():
            rel = np.sqrt(cov.width[tiny] * cov.height[tiny]) / cov.input_short_side[tiny]
            current = spec.scales[0] if spec.scales else spec.min_scale
            target = float(np.clip(np.round(np.percentile(rel, 25), 2), 0.02, current * 0.9))
            if spec.scales:
                changed = replace(spec, scales=(target, *spec.scales[1:]), reduce_boxes_in_lowest_layer=False)
                out.append(
                    (f"scales[0]: {target:g}, reduce_boxes_in_lowest_layer: false", model.with_spec(changed))
                )
            else:
                changed = replace(spec, min_scale=target, reduce_boxes_in_lowest_layer=False)
                out.append(
                    (f"min_scale: {target:g}, reduce_boxes_in_lowest_layer: false", model.with_spec(changed))
                )
        if ratios:
            changed_ar = replace(
                spec, aspect_ratios=(*spec.aspect_ratios, *ratios), reduce_boxes_in_lowest_layer=False
            )
            out.append(
                (
                    "aspect_ratios += "
                    + ", ".join(f"{r:g}" for r in ratios)
                    + ", reduce_boxes_in_lowest_layer: false",
                    model.with_spec(changed_ar),
                )
            )
    elif isinstance(spec, MultiscaleAnchorSpec):
        if tiny.any():
            out.append(
                (
                    "anchor_scale: " + f"{spec.anchor_scale / 2:g}",
                    model.with_spec(replace(spec, anchor_scale=spec.anchor_scale / 2)),
                )
            )
        if ratios:
            out.append(
                (
                    "aspect_ratios += " + ", ".join(f"{r:g}" for r in ratios),
                    model.with_spec(replace(spec, aspect_ratios=(*spec.aspect_ratios, *ratios))),
                )
            )
    if tiny.any() and model.resizer.kind in ("fixed_shape_resizer", "keep_aspect_ratio_resizer"):
        out.append(
            (
                f"image_resizer x2 ({model.resizer.scaled(2).describe()})",
                model.with_resizer(model.resizer.scaled(2)),
            )
        )
    if len(out) > 1:
        combined = out[0][1]
        for _, m in out[1:]:
            combined = combined.with_spec(_merge(combined.spec, m.spec, model.spec)).with_resizer(
                m.resizer if m.resizer != model.resizer else combined.resizer
            )
        out.append(("all of the above", combined))
    return out


def _merge(
    a: SsdAnchorSpec | MultiscaleAnchorSpec,
    b: SsdAnchorSpec | MultiscaleAnchorSpec,
    base: SsdAnchorSpec | MultiscaleAnchorSpec,
) -> SsdAnchorSpec | MultiscaleAnchorSpec:
    """Fields that ``b`` changed from ``base``, applied on top of ``a``."""
    changes = {k: getattr(b, k) for k in base.__dataclass_fields__ if getattr(b, k) != getattr(base, k)}
    return replace(a, **changes)


def anchor_coverage(model: AnchorModel, data: AnnotatedSet, *, source: str = "train") -> Finding | None:
    """The share of boxes whose best anchor IoU is under the matcher's ``matched_threshold``, per class,
    size and elongation, with measured what-ifs. None when (almost) every box is covered."""
    cov = coverage_of(model, data)
    n = int(cov.iou.shape[0])
    if n == 0:
        return None
    thr = model.matched_threshold
    below = cov.below(thr)
    share = float(below.mean())
    if share < 0.02:
        return None
    side = np.sqrt(cov.width * cov.height)
    elong = np.maximum(cov.width, cov.height) / np.maximum(np.minimum(cov.width, cov.height), 1e-9)
    max_ar = max(max(a, 1 / a) for a in model.aspect_ratios())
    smallest = min(model.smallest_anchor_side(int(s), int(s)) for s in np.unique(cov.input_short_side)[:1])
    tiny = below & (side < 0.8 * smallest)
    thin = below & (elong > 1.5 * max_ar)
    per_class: list[list[Any]] = []
    for cid in sorted(set(cov.classes.tolist())):
        sel = cov.classes == cid
        per_class.append(
            [
                str(data.categories.get(cid, cid)),
                int(sel.sum()),
                int((below & sel).sum()),
                round(float((below & sel).sum() / sel.sum()), 3),
                round(float(np.median(cov.iou[sel])), 3),
            ]
        )
    per_size = []
    for lo, hi in itertools.pairwise(_SIDE_EDGES):
        sel = (side >= lo) & (side < hi)
        if sel.any():
            per_size.append(
                [
                    _bucket_label(lo, hi, " px"),
                    int(sel.sum()),
                    int((below & sel).sum()),
                    round(float((below & sel).sum() / sel.sum()), 3),
                ]
            )
    per_shape = []
    for lo, hi in itertools.pairwise(_ELONGATION_EDGES):
        sel = (elong >= lo) & (elong < hi)
        if sel.any():
            per_shape.append(
                [
                    _bucket_label(lo, hi, ":1"),
                    int(sel.sum()),
                    int((below & sel).sum()),
                    round(float((below & sel).sum() / sel.sum()), 3),
                ]
            )
    sample = np.linspace(0, n - 1, min(n, _MAX_WHATIF_BOXES)).astype(np.int64)
    whatif_rows = [["as configured", model.describe(), round(share, 3)]]
    best_change: tuple[str, float] | None = None
    for label, changed in _whatifs(model, cov, tiny, thin):
        c = coverage_of(changed, _subset(data, cov, sample))
        s = c.share_below(thr)
        whatif_rows.append(
            [
                label,
                changed.spec.describe() if label != "all of the above" else changed.describe(),
                round(s, 3),
            ]
        )
        if best_change is None or s < best_change[1]:
            best_change = (label, s)
    worst = sorted(per_class, key=lambda row: -float(row[3]))
    worst_txt = ", ".join(f"{row[0]} {float(row[3]) * 100:.0f}%" for row in worst[:3])
    message = (
        f"{share * 100:.0f}% of the {source} boxes ({int(below.sum())} of {n}) have no anchor with IoU >= "
        f"{thr:g} (the matcher's matched_threshold) in the model's input space ({model.resizer.describe()}); "
        f"by class: {worst_txt}. {int(tiny.sum())} of them are smaller than the smallest anchor "
        f"({smallest:.0f} px), {int(thin.sum())} are more elongated than any anchor aspect ratio "
        f"(> {max_ar * 1.5:g}:1)"
    )
    if model.force_match_for_each_row:
        message += "; force_match_for_each_row gives each such box one weak positive anchor, no more"
    else:
        message += "; without force_match_for_each_row such boxes get no positive anchor at all"
    if best_change is not None and best_change[1] < share:
        fix = (
            f"Measured on these boxes: {best_change[0]} leaves {best_change[1] * 100:.0f}% under {thr:g} "
            f"(now {share * 100:.0f}%). Change the pipeline's anchor_generator / image_resizer accordingly "
            "(see the what-if table), or crop/tile images so objects are larger in the model input."
        )
    else:
        fix = (
            "Lower the smallest anchor scale, add aspect ratios matching the elongated objects, or raise the "
            "input resolution (image_resizer); crop/tile images so objects are larger in the model input."
        )
    evidence: dict[str, object] = {
        "source": source,
        "boxes": n,
        "matched_threshold": thr,
        "share_below": round(share, 3),
        "tiny": int(tiny.sum()),
        "thin": int(thin.sum()),
        "anchors": model.describe(),
        "per_class": table(["class", "boxes", "below threshold", "share", "median best IoU"], per_class),
        "per_size": table(["side sqrt(w*h) in input", "boxes", "below threshold", "share"], per_size),
        "per_elongation": table(["elongation", "boxes", "below threshold", "share"], per_shape),
        "what_if": table(["change", "anchors", "share below threshold"], whatif_rows),
    }
    severity: Severity = "warning" if share >= 0.10 else "info"
    return Finding("anchor_coverage", severity, message, evidence, fix)


def _subset(data: AnnotatedSet, cov: Coverage, sample: np.ndarray) -> AnnotatedSet:
    """The boxes :func:`coverage_of` used, restricted to ``sample`` (for what-ifs)."""
    gt = data.ground_truth
    keep = np.flatnonzero(~(gt.iscrowd | gt.ignore))
    if keep.shape[0] > _MAX_BOXES:
        keep = keep[np.linspace(0, keep.shape[0] - 1, _MAX_BOXES).astype(np.int64)]
    return AnnotatedSet(data.images, data.categories, gt.select(keep[sample]))
