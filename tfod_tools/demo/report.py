"""The demo's comparison report: per-class AP before and after balancing, as Markdown and HTML.

Everything here is pure: it takes the metrics the evaluator recorded (``{tag: value}`` per run, the
stock TF OD API tags) and the balance manifest's counts, and renders text. COCO's ``-1`` ("no ground
truth of this class in the eval set") and NaN (the ledger's "undefined") both render as ``-1``: they
are never mistaken for a score of 0.

>>> before = {"DetectionBoxes_Precision/mAP": 0.2, "DetectionBoxes_PerformanceByCategory/mAP/cat": 0.3,
...           "DetectionBoxes_PerformanceByCategory/mAP/dog": 0.1}
>>> after = {"DetectionBoxes_Precision/mAP": 0.25, "DetectionBoxes_PerformanceByCategory/mAP/cat": 0.3,
...          "DetectionBoxes_PerformanceByCategory/mAP/dog": 0.2}
>>> rows = comparison_rows(before, after, ["cat", "dog"])
>>> [(r.name, r.before, r.after, r.delta) for r in rows]
[('cat', 0.3, 0.3, 0.0), ('dog', 0.1, 0.2, 0.1), ('mAP (all classes)', 0.2, 0.25, 0.05)]
>>> print(markdown_table(rows, minority="dog"))
| class | AP before | AP after | change |
|---|---:|---:|---:|
| cat | 0.300 | 0.300 | +0.000 |
| **dog** (minority) | 0.100 | 0.200 | +0.100 |
| mAP (all classes) | 0.200 | 0.250 | +0.050 |
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tfod_tools.demo.fine_tune import fine_tune_html, fine_tune_markdown
from tfod_tools.demo.report_export import export_html, export_markdown, parity_lines, verdict_text
from tfod_tools.demo.report_operating import (
    UNDEFINED,
    OperatingRow,
    format_precision,
    operating_html,
    operating_intro,
    operating_markdown,
    operating_point,
    operating_rows,
    operating_table,
)
from tfod_tools.demo.report_operating import change_text as _delta
from tfod_tools.demo.report_operating import class_label as _label
from tfod_tools.demo.report_operating import score_text as _fmt
from tfod_tools.diagnostics.noise import chance_band
from tfod_tools.metrics.coco import CATEGORY_AP50, CATEGORY_MAP, COCO_TAGS

__all__ = [
    "CATEGORY_AP",
    "CATEGORY_AP50",
    "MAP",
    "MAP50",
    "ComparisonRow",
    "OperatingRow",
    "chance_band",
    "comparison_rows",
    "counts_table",
    "format_precision",
    "markdown_table",
    "noise_note",
    "operating_intro",
    "operating_point",
    "operating_rows",
    "operating_table",
    "parity_lines",
    "per_class",
    "render_html",
    "render_markdown",
    "verdict_text",
]

MAP = COCO_TAGS["AP"]
MAP50 = COCO_TAGS["AP50"]
CATEGORY_AP = CATEGORY_MAP


def _metric(metrics: Mapping[str, float], tag: str) -> float:
    """A metric value; missing, NaN or negative (COCO's "no ground truth") -> ``-1``.

    >>> _metric({"a": float("nan"), "b": 0.5}, "a"), _metric({"b": 0.5}, "b"), _metric({}, "c")
    (-1.0, 0.5, -1.0)
    """
    value = metrics.get(tag)
    if value is None or not math.isfinite(float(value)) or float(value) < 0:
        return UNDEFINED
    return float(value)


def per_class(
    metrics: Mapping[str, float], classes: Sequence[str], prefix: str = CATEGORY_AP
) -> dict[str, float]:
    """``{class: AP}`` from a run's metric tags (``-1`` where undefined).

    >>> per_class({"DetectionBoxes_PerformanceByCategory/mAP/cat": 0.5}, ["cat", "dog"])
    {'cat': 0.5, 'dog': -1.0}
    """
    return {name: _metric(metrics, prefix + name) for name in classes}


@dataclass(frozen=True)
class ComparisonRow:
    """One line of the before/after table (``delta`` is None when either side is undefined)."""

    name: str
    before: float
    after: float
    before_ap50: float
    after_ap50: float

    @property
    def delta(self) -> float | None:
        """``after - before`` rounded to 6 digits, or None when either is ``-1``."""
        if self.before == UNDEFINED or self.after == UNDEFINED:
            return None
        return round(self.after - self.before, 6)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "class": self.name,
            "ap_before": self.before,
            "ap_after": self.after,
            "change": self.delta,
            "ap50_before": self.before_ap50,
            "ap50_after": self.after_ap50,
        }


ALL_CLASSES = "mAP (all classes)"


def comparison_rows(
    before: Mapping[str, float], after: Mapping[str, float], classes: Sequence[str]
) -> list[ComparisonRow]:
    """One row per class (COCO AP@[.5:.95] and AP@.5), then the mAP row."""
    rows = [
        ComparisonRow(
            name,
            _metric(before, CATEGORY_AP + name),
            _metric(after, CATEGORY_AP + name),
            _metric(before, CATEGORY_AP50 + name),
            _metric(after, CATEGORY_AP50 + name),
        )
        for name in classes
    ]
    rows.append(
        ComparisonRow(
            ALL_CLASSES,
            _metric(before, MAP),
            _metric(after, MAP),
            _metric(before, MAP50),
            _metric(after, MAP50),
        )
    )
    return rows


def noise_note(eval_boxes: Mapping[str, int]) -> str:
    """One sentence on how large a change must be to mean anything, per class.

    >>> noise_note({"opacity": 25, "nodule": 16})
    'Eval boxes per class: opacity 25 (chance alone moves its AP by about ±0.100), nodule 16 (±0.125). \
Smaller changes than that are not evidence either way.'
    """
    if not eval_boxes:
        return ""
    parts = []
    for index, (name, n) in enumerate(eval_boxes.items()):
        band = f"{chance_band(n):.3f}"
        parts.append(
            f"{name} {n} (chance alone moves its AP by about ±{band})"
            if index == 0
            else f"{name} {n} (±{band})"
        )
    return f"Eval boxes per class: {', '.join(parts)}. Smaller changes than that are not evidence either way."


def markdown_table(rows: Sequence[ComparisonRow], minority: str | None = None, *, ap50: bool = False) -> str:
    """The rows as a Markdown table (COCO AP@[.5:.95], or AP@.5 with ``ap50=True``)."""
    name = "AP@.5" if ap50 else "AP"
    lines = [f"| class | {name} before | {name} after | change |", "|---|---:|---:|---:|"]
    for row in rows:
        b, a = (row.before_ap50, row.after_ap50) if ap50 else (row.before, row.after)
        change = None if UNDEFINED in (a, b) else round(a - b, 6)
        lines.append(f"| {_label(row.name, minority)} | {_fmt(b)} | {_fmt(a)} | {_delta(change)} |")
    return "\n".join(lines)


def counts_table(
    before: Mapping[str, Mapping[str, int]], after: Mapping[str, Mapping[str, int]]
) -> list[list[Any]]:
    """Rows ``[class, images before, images after, boxes before, boxes after]`` from balance counts.

    >>> counts_table({"cat": {"images": 3, "boxes": 4}, "negative": {"images": 1}},
    ...              {"cat": {"images": 6, "boxes": 8}, "negative": {"images": 1}})
    [['cat', 3, 6, 4, 8], ['negative', 1, 1, '', '']]
    """
    rows: list[list[Any]] = []
    for name, b in before.items():
        a = after.get(name, {})
        rows.append([name, b.get("images", 0), a.get("images", 0), b.get("boxes", ""), a.get("boxes", "")])
    return rows


_COUNT_COLUMNS = ("class", "images before", "images after", "boxes before", "boxes after")


def render_markdown(report: Mapping[str, Any]) -> str:
    """The whole report (the document :func:`tfod_tools.demo.run.build_report` makes) as Markdown."""
    minority = report.get("minority_class")
    rows = [
        ComparisonRow(r["class"], r["ap_before"], r["ap_after"], r["ap50_before"], r["ap50_after"])
        for r in report["comparison"]
    ]
    runs = report["runs"]
    s = report["settings"]
    lines = [
        "# tfod demo: per-class AP before and after balancing",
        "",
        f"Synthetic `xray-like` data (seed {s['seed']}, {s['train_images']} train / {s['eval_images']} eval "
        f"images), `{s.get('template', 'tiny-ssd')}` model, {s['steps']} steps per run ({s['mode']} mode). "
        f"Metrics of the checkpoint at step {runs['before']['step']} (before) and {runs['after']['step']} "
        "(after), evaluated on the same eval set. `-1` means no ground truth (never a score).",
        "",
        noise_note(report.get("eval_boxes") or {}),
        "",
        "## COCO AP@[.5:.95]",
        "",
        markdown_table(rows, minority),
        "",
        "## AP@.5",
        "",
        markdown_table(rows, minority, ap50=True),
        "",
        *operating_markdown(report),
        *export_markdown(report),
        *fine_tune_markdown(report),
        f"## Training images per class (balance: recipe `{report['balance']['recipe']}`, "
        f"strategy `{report['balance']['strategy']}`)",
        "",
        "| " + " | ".join(_COUNT_COLUMNS) + " |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in counts_table(report["balance"]["counts_before"], report["balance"]["counts_after"]):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    lines += ["", "## Runs", ""]
    for key, title in (("before", "Before balancing"), ("after", "After balancing")):
        run = runs[key]
        best = run.get("best_step")
        lines += [
            f"### {title}",
            "",
            f"- evaluated steps: {', '.join(str(s) for s in run['evaluated_steps'])}"
            + ("" if best is None else f" (best mAP at step {best})"),
            f"- diagnosis: [{run['diagnose_html']}]({run['diagnose_html']}); findings: "
            + (", ".join(f"`{f}`" for f in run["findings"]) or "none"),
            f"- curves: [{run['curves_png']}]({run['curves_png']})",
            "",
        ]
    lines += ["TensorBoard (both runs side by side):", "", "```", report["tensorboard"], "```", ""]
    return "\n".join(lines)


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:900px;margin:0 auto;padding:1rem 2rem;color:#1f2937}"
    "table{border-collapse:collapse;margin:.5rem 0 1rem}th,td{border:1px solid #d1d5db;padding:.25rem .6rem}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}.up{color:#047857}.down{color:#b91c1c}"
    "tr.minority{background:#fef3c7}code{background:#f3f4f6;padding:0 .2rem}"
    ".predictions{display:flex;flex-wrap:wrap;gap:.5rem}figure{margin:0}figcaption{font-size:.75rem}"
)


def _html_rows(rows: Sequence[ComparisonRow], minority: str | None, ap50: bool) -> str:
    out = []
    for row in rows:
        b, a = (row.before_ap50, row.after_ap50) if ap50 else (row.before, row.after)
        change = None if UNDEFINED in (a, b) else round(a - b, 6)
        css = ' class="n"'
        if change is not None and change != 0:
            css = ' class="n up"' if change > 0 else ' class="n down"'
        name = html.escape(row.name) + (" (minority)" if row.name == minority else "")
        tr = ' class="minority"' if row.name == minority else ""
        out.append(
            f'<tr{tr}><td>{name}</td><td class="n">{_fmt(b)}</td><td class="n">{_fmt(a)}</td>'
            f"<td{css}>{_delta(change)}</td></tr>"
        )
    return "".join(out)


def render_html(report: Mapping[str, Any]) -> str:
    """The whole report as one small self-contained HTML page (links to the diagnose reports).

    >>> doc = {"minority_class": "dog", "settings": {"seed": 0, "train_images": 4, "eval_images": 2,
    ...        "steps": 100, "mode": "quick"}, "comparison": [{"class": "dog", "ap_before": 0.1,
    ...        "ap_after": 0.2, "ap50_before": 0.3, "ap50_after": 0.4}], "balance": {"recipe": "r",
    ...        "strategy": "s", "counts_before": {}, "counts_after": {}},
    ...        "tensorboard": "tensorboard --logdir x",
    ...        "runs": {k: {"step": 100, "evaluated_steps": [0, 100], "best_step": 100, "findings": ["a"],
    ...        "diagnose_html": f"{k}/d.html", "curves_png": f"{k}/c.png"} for k in ("before", "after")}}
    >>> page = render_html(doc)
    >>> 'href="before/d.html"' in page, "+0.100" in page, page.count("<tr") > 2
    (True, True, True)
    """
    minority = report.get("minority_class")
    rows = [
        ComparisonRow(r["class"], r["ap_before"], r["ap_after"], r["ap50_before"], r["ap50_after"])
        for r in report["comparison"]
    ]
    s = report["settings"]
    esc = html.escape
    head = "<tr><th>class</th><th>before</th><th>after</th><th>change</th></tr>"
    counts = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{esc(str(v))}</td>' if i else f"<td>{esc(str(v))}</td>" for i, v in enumerate(r)
        )
        + "</tr>"
        for r in counts_table(report["balance"]["counts_before"], report["balance"]["counts_after"])
    )
    runs_html = []
    for key, title in (("before", "Before balancing"), ("after", "After balancing")):
        run = report["runs"][key]
        findings = ", ".join(f"<code>{esc(f)}</code>" for f in run["findings"]) or "none"
        best = "" if run.get("best_step") is None else f" (best mAP at step {run['best_step']})"
        steps = esc(", ".join(str(x) for x in run["evaluated_steps"]))
        diag, png = esc(run["diagnose_html"]), esc(run["curves_png"])
        runs_html.append(
            f"<h3>{title}</h3><ul><li>evaluated steps: {steps}{best}</li>"
            f'<li>diagnosis: <a href="{diag}">{diag}</a>; findings: {findings}</li>'
            f'<li>curves: <a href="{png}">{png}</a></li></ul>'
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>tfod demo report</title>'
        f"<style>{_CSS}</style></head><body><h1>tfod demo: per-class AP before and after balancing</h1>"
        f"<p>Synthetic <code>xray-like</code> data (seed {s['seed']}, {s['train_images']} train / "
        f"{s['eval_images']} eval images), <code>{esc(str(s.get('template', 'tiny-ssd')))}</code> model, "
        f"{s['steps']} steps per run "
        f"({esc(str(s['mode']))} mode). Checkpoint at step {report['runs']['before']['step']} (before) and "
        f"{report['runs']['after']['step']} "
        "(after), same eval set. <code>-1</code> means no ground truth (never a score).</p>"
        f"<p>{esc(noise_note(report.get('eval_boxes') or {}))}</p>"
        f"<h2>COCO AP@[.5:.95]</h2><table>{head}{_html_rows(rows, minority, False)}</table>"
        f"<h2>AP@.5</h2><table>{head}{_html_rows(rows, minority, True)}</table>"
        + operating_html(report)
        + export_html(report)
        + fine_tune_html(report)
        + f"<h2>Training images per class (recipe <code>{esc(report['balance']['recipe'])}</code>, strategy "
        f"<code>{esc(report['balance']['strategy'])}</code>)</h2><table><tr>"
        + "".join(f"<th>{c}</th>" for c in _COUNT_COLUMNS)
        + f"</tr>{counts}</table><h2>Runs</h2>{''.join(runs_html)}"
        f"<p>TensorBoard, both runs side by side: <code>{esc(report['tensorboard'])}</code></p></body></html>"
    )
