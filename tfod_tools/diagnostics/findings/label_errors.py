"""Likely label errors in the eval annotations, from the stored detections of the analysed step.

:func:`tfod_tools.diagnostics.label_errors.find_label_errors` ranks possibly missing boxes, possibly
wrong labels and possibly loose boxes; a detection is confident from
:data:`~tfod_tools.diagnostics.label_errors.DEFAULT_MIN_SCORE` (the same candidates as a direct call
with the defaults). The HTML report draws a crop of each listed candidate from the eval records
(``eval_records`` in the evidence).

>>> from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
>>> from tfod_tools.diagnostics.analysis import analyse_detections
>>> data = AnnotatedSet(
...     images=ImageTable.from_sizes([1, 2], [100, 100], [100, 100], ["a.jpg", "b.jpg"]),
...     categories={1: "cat", 2: "dog"},
...     ground_truth=GroundTruth.from_arrays([1, 2], [[10, 10, 40, 40], [10, 10, 40, 40]], [1, 1]),
...     detections=Detections.from_arrays([1, 1, 2], [[10, 10, 40, 40], [60, 60, 90, 90], [10, 10, 40, 40]],
...                                       [1, 2, 2], [0.9, 0.8, 0.95]))
>>> f = likely_label_errors(analyse_detections(data, step=300))
>>> f.id, f.severity, f.evidence["counts"]
('likely_label_errors', 'info', {'missing': 1, 'wrong_label': 1, 'loose_box': 0})
>>> f.evidence["wrong_label"]["rows"][0][:5]
[1, 'wrong_label', 'b.jpg', 'cat', 'dog']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tfod_tools.diagnostics.analysis import DetectionAnalysis
from tfod_tools.diagnostics.findings import finding_rule
from tfod_tools.diagnostics.label_errors import (
    DEFAULT_MIN_SCORE,
    KINDS,
    LabelErrorCandidate,
    LabelErrorKind,
    find_label_errors,
)
from tfod_tools.diagnostics.model import Finding, Severity, table

__all__ = ["COLUMNS", "HIGH_CONFIDENCE", "MAX_ROWS", "likely_label_errors"]

MAX_ROWS = 20
"""Candidates listed per kind (all are counted)."""
HIGH_CONFIDENCE = 0.8
"""A candidate this confident counts towards the warning."""
WARN_SHARE = 0.01
"""Warning when the high-confidence candidates are this share of the eval boxes (and at least 3)."""
COLUMNS = [
    "rank",
    "kind",
    "image",
    "class",
    "suggested class",
    "confidence",
    "box",
    "model box",
    "evidence",
]
"""Columns of each kind's table; ``box`` is the annotation (``missing``: the detection), ``model box``
the detection or the detections' consensus (the HTML report draws both on a crop)."""
_TITLES: dict[LabelErrorKind, str] = {
    "missing": "possibly missing box(es)",
    "wrong_label": "possibly wrong label(s)",
    "loose_box": "possibly loose box(es)",
}


def _summary(c: LabelErrorCandidate, names: Mapping[int, str]) -> str:
    e = c.evidence
    if c.kind == "missing":
        also = ", ".join(names.get(k, str(k)) for k in e["also_detected_as"])
        merged = (
            f"; {e['overlapping_detections']} overlapping detection(s) merged"
            if e["overlapping_detections"]
            else ""
        )
        return (
            f"score {e['score']:.2f}, IoU with any annotation {e['max_iou_with_ground_truth']:.2f}{merged}"
            + (f" (also as {also})" if also else "")
        )
    if c.kind == "wrong_label":
        said = names.get(c.suggested_class_id or 0, "?")
        own = names.get(c.class_id, str(c.class_id))
        return (
            f"{e['detections']} detection(s) of {said}, best {e['score']:.2f} at IoU {e['iou']:.2f}; "
            f"best {own} score there {e['same_class_score']:.2f}"
        )
    scores = ", ".join(f"{s:.2f}" for s in e["scores"])
    if e["detections"] == 1:
        return f"1 detection scoring {scores}, IoU with the box {e['iou_consensus_box']:.2f}"
    return (
        f"{e['detections']} detections scoring {scores} (agreeing at IoU >= {e['agreement_iou']:.2f}); "
        f"their consensus box has IoU {e['iou_consensus_box']:.2f} with the box"
    )


def _short(box: Sequence[float]) -> list[float]:
    """A box for the table: one decimal (the candidate keeps two)."""
    return [round(float(v), 1) for v in box]


def _model_box(c: LabelErrorCandidate) -> list[float] | None:
    if c.suggested_box is not None:
        return _short(c.suggested_box)
    box = c.evidence.get("detection_box")
    return None if box is None else _short(box)


def _rows(
    found: list[LabelErrorCandidate], file_names: Mapping[int, str], names: Mapping[int, str]
) -> list[list[Any]]:
    return [
        [
            rank,
            c.kind,
            file_names.get(c.image_id, str(c.image_id)),
            names.get(c.class_id, str(c.class_id)),
            None
            if c.suggested_class_id is None
            else names.get(c.suggested_class_id, str(c.suggested_class_id)),
            c.confidence,
            _short(c.box),
            _model_box(c),
            _summary(c, names),
        ]
        for rank, c in enumerate(found[:MAX_ROWS], start=1)
    ]


@finding_rule(175, needs=("analysis",), call=lambda fn, d: fn(d.analysis, eval_records=d.eval_records))
def likely_label_errors(
    analysis: DetectionAnalysis,
    *,
    eval_records: Sequence[str] = (),
    min_score: float = DEFAULT_MIN_SCORE,
) -> Finding | None:
    """Eval annotations the model's confident detections disagree with - possibly missing boxes,
    wrong labels and loose boxes - ranked for review (candidates, not verdicts; nothing is modified)."""
    data = analysis.data
    found = find_label_errors(data, min_score=min_score)
    counts = {kind: len(found[kind]) for kind in KINDS}
    total = sum(counts.values())
    if not total:
        return None
    names = {int(k): str(v) for k, v in data.categories.items()}
    file_names = {int(i): n for i, n in zip(data.images.ids.tolist(), data.images.file_names, strict=True)}
    strong = sum(c.confidence >= HIGH_CONFIDENCE for kind in KINDS for c in found[kind])
    boxes = int((~data.ground_truth.iscrowd).sum())
    severity: Severity = "warning" if strong >= max(3, WARN_SHARE * boxes) else "info"
    parts = ", ".join(f"{counts[k]} {_TITLES[k]}" for k in KINDS)
    message = (
        f"{total} possible label error(s) in the eval annotations at step {analysis.step}, from the "
        f"model's confident detections: {parts}; {strong} with confidence >= {HIGH_CONFIDENCE}. "
        "These are candidates for review, not verdicts (the data was not modified)"
    )
    fix = (
        "Review the listed annotations (the report's crops show the annotation and the model's box), correct "
        "the real errors in the source annotations and convert the records again (`tfod convert`); a "
        "model trained on noisy labels learns them, and eval metrics count them against it."
    )
    evidence: dict[str, Any] = {
        "step": analysis.step,
        "counts": counts,
        "high_confidence": strong,
        "min_score": min_score,
        "eval_records": list(eval_records),
    }
    for kind in KINDS:
        if found[kind]:
            evidence[kind] = table(COLUMNS, _rows(found[kind], file_names, names))
    return Finding("likely_label_errors", severity, message, evidence, fix)
