"""Annotation outliers: boxes whose size, aspect ratio or position is inconsistent with their class.

Built from ``tfod inspect``'s pass over the train and eval records (:attr:`DiagnosisInputs.inspections`,
each with :attr:`~tfod_tools.data.inspect.InspectionReport.outliers`; features, score and threshold in
:mod:`tfod_tools.data.outliers`). Info; a warning when at least :data:`WARN_SHARE` of the scored boxes
(and :data:`WARN_MIN` or more) are outliers: then it is no longer a few slips.

>>> import numpy as np
>>> from tfod_tools.data.outliers import OutlierCollector
>>> c = OutlierCollector({1: "square"})
>>> for k in range(12):
...     c.add("t.record", k, f"id{k}", "", np.array([[10.0 + k, 10, 30 + k, 30]]), np.array([1]), (100, 100))
>>> c.add("t.record", 12, "wide", "", np.array([[10.0, 10, 90, 20]]), np.array([1]), (100, 100))
>>> f = annotation_outliers({"train": c.report()})
>>> f.id, f.severity, f.evidence["outlier_boxes"], f.evidence["outliers"]["rows"][0][:5]
('annotation_outliers', 'info', 1, ['train', 't.record', 12, 'wide', 'square'])
>>> annotation_outliers({"train": OutlierCollector({1: "square"}).report()}) is None
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tfod_tools.data.outliers import FEATURES, Outlier, OutlierReport
from tfod_tools.diagnostics.findings import finding_rule
from tfod_tools.diagnostics.model import Finding, Severity, table

__all__ = ["OUTLIER_COLUMNS", "WARN_MIN", "WARN_SHARE", "annotation_outliers"]

MAX_ROWS = 20
"""Outliers listed in the evidence, strongest first over both splits (all are counted)."""
WARN_SHARE = 0.02
"""Share of scored boxes beyond the threshold from which the finding is a warning."""
WARN_MIN = 5
"""... and at least this many outlying boxes."""
OUTLIER_COLUMNS = ["split", "file", "index", "source_id", "class", "reason", "score", "box", "feature"]
"""Columns of the ``outliers`` evidence table (the HTML report draws each box from them)."""


def _reports(inspections: Mapping[str, Any]) -> dict[str, OutlierReport]:
    return {
        role: found
        for role, report in inspections.items()
        if (found := getattr(report, "outliers", None)) is not None
    }


@finding_rule(143, call=lambda fn, d: fn(_reports(d.inspections)))
def annotation_outliers(reports: Mapping[str, OutlierReport]) -> Finding | None:
    """Boxes whose size, aspect ratio, position or size relative to the other boxes in their image is far
    from their class's (robust per-class z-score, ``tfod inspect``'s ``outliers``): often a wrong class,
    a box drawn around a group, a slipped drag, or a coordinate mix-up."""
    if not reports:
        return None
    total = sum(r.total for r in reports.values())
    scored = sum(r.boxes_scored for r in reports.values())
    if not total:
        return None
    listed: list[tuple[str, Outlier]] = [(role, o) for role, r in reports.items() for o in r.top]
    listed.sort(
        key=lambda item: (-abs(item[1].score), item[0], item[1].file, item[1].index, item[1].box_index)
    )
    rows = [
        [
            role,
            o.file,
            o.index,
            o.source_id,
            o.class_name,
            o.reason,
            round(o.score, 1),
            [round(v, 1) for v in o.box],
            o.feature,
        ]
        for role, o in listed[:MAX_ROWS]
    ]
    counts = [
        [role, name, c["boxes"], c["outliers"], *(c["per_feature"].get(f, "-") for f in FEATURES)]
        for role, r in reports.items()
        for name, c in r.per_class.items()
        if c["boxes"]
    ]
    skipped = sorted(
        {
            f"{name} {feature}"
            for r in reports.values()
            for name, c in r.per_class.items()
            for feature in c["skipped"]
        }
    )
    threshold = next(iter(reports.values())).threshold
    share = total / max(scored, 1)
    splits = ", ".join(f"{r.total} in {role}" for role, r in reports.items())
    message = (
        f"{total} of {scored} boxes ({share:.1%}; {splits}) are far from the rest of their class in size, "
        f"aspect ratio, position or size relative to the other boxes in their image (|modified z| > "
        f"{threshold:g}): often a wrong class, a box around a group, or a slipped or mis-scaled box"
    )
    fix = (
        "Check those annotations (listed strongest first, drawn in the HTML report): fix the box or its "
        "class, or keep it if the object really is unusual. All outliers per split: `tfod inspect RECORDS "
        "--label-map L --json` (key outliers)."
    )
    severity: Severity = "warning" if share >= WARN_SHARE and total >= WARN_MIN else "info"
    evidence: dict[str, Any] = {
        "boxes_scored": scored,
        "outlier_boxes": total,
        "threshold": threshold,
        "not_scored": ", ".join(skipped) or "-",
        "outliers": table(OUTLIER_COLUMNS, rows),
        "counts": table(["split", "class", "boxes", "outliers", *FEATURES], counts),
    }
    return Finding("annotation_outliers", severity, message, evidence, fix)
