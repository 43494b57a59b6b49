"""The demo report's "The exported model" section: each export's parity table and the predictions.

Pure, like :mod:`tfod_tools.demo.report` (which renders the rest): it takes the ``export`` part of
the report document (:func:`tfod_tools.demo.ship.ship`'s summary) and renders text.

>>> export_markdown({}) == [] and export_html({}) == ""
True
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

__all__ = ["export_html", "export_markdown", "parity_lines", "verdict_text"]

_VERDICTS = {
    "ok": "ok: no COCO value dropped by more than the tolerance",
    "drop": "drop beyond the tolerance",
    "unknown": "not compared (no evaluation of the checkpoint)",
}


def _value(value: float | None, fmt: str = ".4f") -> str:
    return "-" if value is None else format(value, fmt)


def parity_lines(model: Mapping[str, Any]) -> list[list[str]]:
    """The parity table of one export as rows of text: value, checkpoint, export, delta; then the
    share of agreeing detections and the latency per image.

    >>> model = {"rows": [{"name": "AP", "checkpoint": 0.5, "export": 0.5, "delta": 0.0}],
    ...          "agreement": 1.0, "latency_ms": {"checkpoint": 40.0, "export": 12.5}}
    >>> for row in parity_lines(model):
    ...     print(row)
    ['AP', '0.5000', '0.5000', '+0.00e+00']
    ['detections agreeing', '', '100.0 %', '']
    ['ms per image', '40.0', '12.5', '']
    """
    rows = [
        [str(r["name"]), _value(r["checkpoint"]), _value(r["export"]), _value(r["delta"], "+.2e")]
        for r in model.get("rows", [])
    ]
    share = model.get("agreement")
    rows.append(["detections agreeing", "", "-" if share is None else f"{100 * share:.1f} %", ""])
    latency = model.get("latency_ms") or {}
    rows.append(
        ["ms per image", _value(latency.get("checkpoint"), ".1f"), _value(latency.get("export"), ".1f"), ""]
    )
    return rows


def verdict_text(model: Mapping[str, Any]) -> str:
    """One line: the verdict against the tolerance, with the findings.

    >>> verdict_text({"verdict": "ok", "tolerance": 1e-06, "findings": []})
    'ok: no COCO value dropped by more than the tolerance (1e-06)'
    """
    text = (
        f"{_VERDICTS.get(str(model.get('verdict')), str(model.get('verdict')))} ({model.get('tolerance'):g})"
    )
    findings = model.get("findings") or []
    return text + (": " + "; ".join(findings) if findings else "")


_PARITY_COLUMNS = ("value", "checkpoint", "export", "delta")


def _export_intro(export: Mapping[str, Any]) -> str:
    text = (
        f"The best checkpoint of the balanced run (step {export['step']}, `{export['checkpoint']}`) exported "
        f"with `tfod export` as {', '.join(export['formats'])} into `{export['dir']}`, each export scored on "
        "the same eval set by `tfod evaluate --model` and compared with the checkpoint (detections agree: "
        "same class, IoU >= 0.99, score within 1e-3; the checkpoint's time per image is its whole "
        "evaluation)."
    )
    return text + (f" {export['note']}." if export.get("note") else "")


def export_markdown(report: Mapping[str, Any]) -> list[str]:
    """The report's "The exported model" section as Markdown lines (none without an export step)."""
    export = report.get("export")
    if not export:
        return []
    lines = ["## The exported model", "", _export_intro(export), ""]
    for kind, model in export["models"].items():
        lines += [
            f"### {kind} (`{model['path']}`)",
            "",
            f"Parity: **{verdict_text(model)}**.",
            "",
            "| " + " | ".join(_PARITY_COLUMNS) + " |",
            "|---|---:|---:|---:|",
            *("| " + " | ".join(row) + " |" for row in parity_lines(model)),
            "",
        ]
    pred = export["predict"]
    lines += [
        f"### Predictions (`tfod predict`, SavedModel, score >= {pred['score_threshold']:g})",
        "",
        f"{pred['detections']} detection(s) on {len(pred['inputs'])} eval images; all in "
        f"[{pred['detections_json']}]({pred['detections_json']}).",
        "",
        *(f"![{p}]({p})" for p in pred["images"]),
        "",
    ]
    return lines


def export_html(report: Mapping[str, Any]) -> str:
    """The report's "The exported model" section as HTML ("" without an export step)."""
    export = report.get("export")
    if not export:
        return ""
    esc = html.escape
    intro = esc(_export_intro(export)).replace("`", "")
    parts = [f"<h2>The exported model</h2><p>{intro}</p>"]
    head = "<tr>" + "".join(f"<th>{c}</th>" for c in _PARITY_COLUMNS) + "</tr>"
    for kind, model in export["models"].items():
        body = "".join(
            "<tr>"
            + "".join(
                f'<td class="n">{esc(v)}</td>' if i else f"<td>{esc(v)}</td>" for i, v in enumerate(row)
            )
            + "</tr>"
            for row in parity_lines(model)
        )
        css = "up" if model.get("verdict") == "ok" else "down"
        parts.append(
            f"<h3>{esc(kind)} (<code>{esc(model['path'])}</code>)</h3>"
            f'<p>Parity: <strong class="{css}">{esc(verdict_text(model))}</strong></p>'
            f'<table class="parity">{head}{body}</table>'
        )
    pred = export["predict"]
    figures = "".join(
        f'<figure><img src="{esc(p)}" alt="{esc(p)}" width="256"><figcaption>{esc(p)}</figcaption></figure>'
        for p in pred["images"]
    )
    parts.append(
        "<h3>Predictions (<code>tfod predict</code>, SavedModel, "
        f"score &gt;= {pred['score_threshold']:g})</h3>"
        f"<p>{pred['detections']} detection(s) on {len(pred['inputs'])} eval images; all in "
        f'<a href="{esc(pred["detections_json"])}">{esc(pred["detections_json"])}</a>.</p>'
        f'<div class="predictions">{figures}</div>'
    )
    return "".join(parts)
