"""The demo report's operating point: recall and precision per class at the score a deployment keeps.

Pure, like :mod:`tfod_tools.demo.report` (which renders the rest and re-exports these names): the
``train`` step counts TP/FP/FN per class at the operating threshold (:func:`operating_point`), the
report renders them before and after balancing (:func:`operating_markdown`, :func:`operating_html`).
The value formatting the whole report shares lives here too: ``-1`` (undefined) is never a score.

>>> score_text(-1.0), score_text(0.25), change_text(None), class_label("dog", "dog")
('-1', '0.250', 'n/a', '**dog** (minority)')
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "UNDEFINED",
    "OperatingRow",
    "change_text",
    "class_label",
    "format_precision",
    "operating_html",
    "operating_intro",
    "operating_markdown",
    "operating_point",
    "operating_rows",
    "operating_table",
    "score_text",
]

UNDEFINED = -1.0
"""COCO's "no ground truth" and the ledger's NaN, as the report shows them."""


def score_text(value: float) -> str:
    """A score with three digits, ``-1`` where undefined."""
    return "-1" if value == UNDEFINED else f"{value:.3f}"


def format_precision(value: float) -> str:
    """Precision with no detection kept is not a score: ``n/a``.

    >>> format_precision(-1.0), format_precision(0.5)
    ('n/a', '0.500')
    """
    return "n/a" if value == UNDEFINED else f"{value:.3f}"


def change_text(value: float | None) -> str:
    """A change with its sign and three digits, ``n/a`` when undefined."""
    return "n/a" if value is None else f"{value:+.3f}"


def class_label(name: str, minority: str | None) -> str:
    """The class name, in bold and marked when it is the minority class."""
    return f"**{name}** (minority)" if name == minority else name


def _ratio(num: int, den: int) -> float:
    return UNDEFINED if den <= 0 else num / den


def operating_point(totals: Mapping[str, Mapping[str, int]], classes: Sequence[str]) -> dict[str, Any]:
    """Per class TP/FP/FN at the operating threshold, with recall and precision (``-1`` if undefined).

    ``totals`` is :meth:`tfod_tools.metrics.counts.CountTable.totals`; a class with no ground truth
    has recall ``-1``, one with no detections above the threshold has precision ``-1``.

    >>> operating_point({"dog": {"tp": 3, "fp": 1, "fn": 1}}, ["dog", "cat"])
    {'dog': {'tp': 3, 'fp': 1, 'fn': 1, 'recall': 0.75, 'precision': 0.75}, \
'cat': {'tp': 0, 'fp': 0, 'fn': 0, 'recall': -1.0, 'precision': -1.0}}
    """
    out: dict[str, Any] = {}
    for name in classes:
        c = totals.get(name, {})
        tp, fp, fn = int(c.get("tp", 0)), int(c.get("fp", 0)), int(c.get("fn", 0))
        out[name] = {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "recall": _ratio(tp, tp + fn),
            "precision": _ratio(tp, tp + fp),
        }
    return out


@dataclass(frozen=True)
class OperatingRow:
    """Recall and precision of one class at the operating threshold, before and after."""

    name: str
    recall_before: float
    recall_after: float
    precision_before: float
    precision_after: float

    @property
    def recall_delta(self) -> float | None:
        """``after - before`` recall (None when either is undefined)."""
        if UNDEFINED in (self.recall_before, self.recall_after):
            return None
        return round(self.recall_after - self.recall_before, 6)


def operating_rows(
    before: Mapping[str, Mapping[str, float]],
    after: Mapping[str, Mapping[str, float]],
    classes: Sequence[str],
) -> list[OperatingRow]:
    """One row per class from two :func:`operating_point` results.

    >>> b = operating_point({"dog": {"tp": 1, "fp": 0, "fn": 3}}, ["dog"])
    >>> a = operating_point({"dog": {"tp": 3, "fp": 1, "fn": 1}}, ["dog"])
    >>> row = operating_rows(b, a, ["dog"])[0]
    >>> row.recall_before, row.recall_after, row.recall_delta, row.precision_before
    (0.25, 0.75, 0.5, 1.0)
    """
    rows = []
    for name in classes:
        b, a = before.get(name, {}), after.get(name, {})
        rows.append(
            OperatingRow(
                name,
                float(b.get("recall", UNDEFINED)),
                float(a.get("recall", UNDEFINED)),
                float(b.get("precision", UNDEFINED)),
                float(a.get("precision", UNDEFINED)),
            )
        )
    return rows


def operating_table(rows: Sequence[OperatingRow], minority: str | None = None) -> str:
    """The rows as a Markdown table.

    >>> b = operating_point({"dog": {"tp": 1, "fp": 0, "fn": 3}}, ["dog"])
    >>> a = operating_point({"dog": {"tp": 3, "fp": 1, "fn": 1}}, ["dog"])
    >>> print(operating_table(operating_rows(b, a, ["dog"]), minority="dog"))
    | class | recall before | recall after | change | precision before | precision after |
    |---|---:|---:|---:|---:|---:|
    | **dog** (minority) | 0.250 | 0.750 | +0.500 | 1.000 | 0.750 |
    """
    lines = [
        "| class | recall before | recall after | change | precision before | precision after |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {class_label(r.name, minority)} | {score_text(r.recall_before)} | "
            f"{score_text(r.recall_after)} | "
            f"{change_text(r.recall_delta)} | {format_precision(r.precision_before)} | "
            f"{format_precision(r.precision_after)} |"
        )
    return "\n".join(lines)


def operating_intro(threshold: float) -> str:
    """Why the report also counts recall at a score threshold (one paragraph).

    >>> operating_intro(0.5).startswith("AP ranks")
    True
    """
    return (
        "AP ranks each class's detections against each other, so it hardly depends on how confident "
        "the model is in a rare class. A deployment keeps only the detections scoring at least "
        f"{threshold:g}: an under-trained minority class loses its boxes there first. Recall = found / "
        f"ground-truth boxes, precision = correct / kept detections (IoU >= 0.5, score >= {threshold:g}; n/a "
        "when no detection is kept)."
    )


def _operating(report: Mapping[str, Any]) -> tuple[float, list[OperatingRow]] | None:
    op = report.get("operating_point")
    if not op:
        return None
    return float(op["threshold"]), operating_rows(op["before"], op["after"], list(op["before"]))


def operating_markdown(report: Mapping[str, Any]) -> list[str]:
    """The report's operating-point section as Markdown lines (none without ``operating_point``)."""
    parsed = _operating(report)
    if parsed is None:
        return []
    threshold, rows = parsed
    return [
        f"## At the operating threshold (score >= {threshold:g})",
        "",
        operating_intro(threshold),
        "",
        operating_table(rows, report.get("minority_class")),
        "",
    ]


def operating_html(report: Mapping[str, Any]) -> str:
    """The report's operating-point section as HTML (empty without ``operating_point``)."""
    parsed = _operating(report)
    if parsed is None:
        return ""
    threshold, rows = parsed
    minority = report.get("minority_class")
    body = []
    for r in rows:
        change = r.recall_delta
        css = ' class="n"'
        if change:
            css = ' class="n up"' if change > 0 else ' class="n down"'
        tr = ' class="minority"' if r.name == minority else ""
        name = html.escape(r.name) + (" (minority)" if r.name == minority else "")
        body.append(
            f'<tr{tr}><td>{name}</td><td class="n">{score_text(r.recall_before)}</td>'
            f'<td class="n">{score_text(r.recall_after)}</td><td{css}>{change_text(change)}</td>'
            f'<td class="n">{format_precision(r.precision_before)}</td>'
            f'<td class="n">{format_precision(r.precision_after)}</td></tr>'
        )
    head = (
        "<tr><th>class</th><th>recall before</th><th>recall after</th><th>change</th>"
        "<th>precision before</th><th>precision after</th></tr>"
    )
    return (
        f"<h2>At the operating threshold (score &gt;= {threshold:g})</h2>"
        f"<p>{html.escape(operating_intro(threshold))}</p><table>{head}{''.join(body)}</table>"
    )
