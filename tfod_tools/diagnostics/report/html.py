"""``tfod diagnose --html``: one self-contained HTML file (figures embedded as base64 PNG).

Sections, each with a stable ``id``: ``summary``, ``findings``, ``curves``, ``per-class-ap``,
``pr-curves``, ``confusion-matrix``, ``error-breakdown``, ``area-buckets``, ``gallery`` and
``notes``. A section without data says what is missing and how to get it, instead of vanishing.
A finding's evidence table named ``*_curve`` or ``*_curves`` whose first column is ``step`` (the
loss and learning-rate curves of the training-health findings) is drawn as a plot, its values
folded away under it.
The file is written atomically.

>>> import tempfile, pathlib
>>> from tfod_tools.diagnostics.model import Diagnosis, Finding
>>> d = Diagnosis(findings=[Finding("x", "warning", "a <b> thing", {}, "fix it")])
>>> page = render_report(d)
>>> all(f'id="{s}"' in page for s in SECTIONS), "a &lt;b&gt; thing" in page
(True, True)
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
from pathlib import Path
from typing import Any

from tfod_tools.diagnostics.datasets import area_bucket_counts
from tfod_tools.diagnostics.model import SEVERITIES, Diagnosis, Finding, is_table
from tfod_tools.fsutil import write_text_atomic

__all__ = ["SECTIONS", "render_report", "write_report"]

SECTIONS: tuple[str, ...] = (
    "summary",
    "findings",
    "curves",
    "per-class-ap",
    "pr-curves",
    "confusion-matrix",
    "error-breakdown",
    "area-buckets",
    "gallery",
    "notes",
)
_TITLES = {
    "summary": "Summary",
    "findings": "Findings and fixes",
    "curves": "Training and evaluation curves",
    "per-class-ap": "Per-class AP",
    "pr-curves": "Precision-recall curves",
    "confusion-matrix": "Confusion matrix",
    "error-breakdown": "Error breakdown",
    "area-buckets": "COCO area buckets",
    "gallery": "Worst eval images",
    "notes": "Notes",
}
_NO_DETECTIONS = (
    "No stored detections: run <code>tfod evaluate --pipeline P --model-dir M --checkpoints all</code> "
    "(it stores each checkpoint's detections under MODEL_DIR/eval/detections)."
)
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1100px;
padding:1rem 2rem;color:#1f2937;line-height:1.45}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #e5e7eb;padding-bottom:.2rem;margin-top:2rem}
nav a{margin-right:.8rem}table{border-collapse:collapse;margin:.4rem 0 .8rem;font-size:.88rem}
td,th{border:1px solid #d1d5db;padding:.2rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f4f6}.finding{border-left:6px solid #9ca3af;padding:.3rem .8rem;margin:.8rem 0;
background:#fafafa}.error{border-color:#dc2626}.warning{border-color:#f59e0b}.info{border-color:#0ea5e9}
.badge{font-weight:600;text-transform:uppercase;font-size:.75rem;margin-right:.4rem}
.fix{background:#ecfdf5;padding:.3rem .5rem}.missing{color:#6b7280;font-style:italic}
img{max-width:100%}.gallery{display:flex;flex-wrap:wrap;gap:.8rem}.gallery figure{margin:0;width:360px}
.leak img{width:170px;margin-right:6px}
.legend span{display:inline-block;padding:0 .4rem;margin-right:.5rem;color:#fff;border-radius:3px}
"""


def _esc(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.3g}"  # a learning rate, not 0.000
        return f"{value:.3f}" if abs(value) < 1e4 else f"{value:.0f}"
    return html.escape(str(value))


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(columns: list[Any], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_esc(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _missing(text: str) -> str:
    return f'<p class="missing">{text}</p>'


def _section(section_id: str, body: str) -> str:
    return f'<section id="{section_id}"><h2>{_TITLES[section_id]}</h2>{body}</section>'


_MARKS = {"step": "problem", "num_steps": "num_steps", "stopped_from_step": "rate ~0 from here"}
"""Evidence keys drawn as vertical lines on a finding's curves, with their labels."""


def _is_curve(name: str, value: dict[str, Any]) -> bool:
    """A ``*_curve`` / ``*_curves`` evidence table by step: drawn, its values folded away."""
    columns = value["columns"]
    return (
        name.endswith(("_curve", "_curves"))
        and bool(columns)
        and columns[0] == "step"
        and len(value["rows"]) > 1
    )


def _curve_img(f: Finding, name: str, value: dict[str, Any]) -> str:
    from tfod_tools.diagnostics.report.plots import step_table_png

    marks = [
        (v, label)
        for key, label in _MARKS.items()
        if isinstance(v := f.evidence.get(key), int) and not isinstance(v, bool)
    ]
    return _img(step_table_png(value["columns"], value["rows"], marks), f"{f.id} {name}")


def _finding(f: Finding) -> str:
    parts = [
        f'<div class="finding {f.severity}" id="finding-{html.escape(f.id)}">',
        f'<p><span class="badge">{f.severity}</span><code>{html.escape(f.id)}</code>: {_esc(f.message)}</p>',
    ]
    plain = {k: v for k, v in f.evidence.items() if not is_table(v)}
    if plain:
        parts.append(_table(list(plain), [list(plain.values())]))
    for name, value in f.evidence.items():
        if not is_table(value):
            continue
        title = f"<p><b>{_esc(name.replace('_', ' '))}</b></p>"
        if _is_curve(name, value):
            parts.append(title + _curve_img(f, name, value))
            parts.append(
                f"<details><summary>values</summary>{_table(value['columns'], value['rows'])}</details>"
            )
        else:
            parts.append(title + _table(value["columns"], value["rows"]))
    if f.id == "train_eval_leak":
        parts.append(_leak_thumbnails(f.evidence["pairs"]))
    if f.id == "annotation_outliers":
        from tfod_tools.diagnostics.report.outliers import outlier_thumbnails

        parts.append(outlier_thumbnails(f.evidence["outliers"]))
    if f.id == "likely_label_errors":
        from tfod_tools.diagnostics.report.label_errors import label_error_crops

        parts.append(label_error_crops(f.evidence))
    parts.append(f'<p class="fix"><b>Fix:</b> {_esc(f.fix)}</p></div>')
    return "".join(parts)


def _leak_thumbnails(pairs: dict[str, Any], count: int = 8) -> str:
    """The first ``count`` train/eval pairs of a ``train_eval_leak`` finding, side by side."""
    from tfod_tools.data.dedup import encoded_at, thumbnail_png

    col = {c: k for k, c in enumerate(pairs["columns"])}
    rows = pairs["rows"][:count]
    sides = [(r[col[f"{s} file"]], int(r[col[f"{s} index"]])) for r in rows for s in ("train", "eval")]
    try:
        encoded = encoded_at(sides)
    except Exception as exc:  # a damaged record must not cost the rest of the report
        return _missing(f"Leaked images could not be read: {html.escape(str(exc))}")
    figures = []
    for r in rows:
        pictures = []
        for side in ("train", "eval"):
            key = (r[col[f"{side} file"]], int(r[col[f"{side} index"]]))
            name = f"{side} {Path(key[0]).name}#{key[1]} {r[col[f'{side} source_id']]}"
            pictures.append(_img(thumbnail_png(encoded[key]), name) if key in encoded else _missing(name))
        caption = f"{_esc(r[col['kind']])}, distance {_esc(r[col['distance']])}"
        figures.append(f"<figure>{''.join(pictures)}<figcaption>{caption}</figcaption></figure>")
    return f'<div class="gallery leak">{"".join(figures)}</div>'


def _summary(d: Diagnosis) -> str:
    inputs = d.inputs
    counts = d.counts()
    best = d.best_checkpoint
    rows = [["findings", ", ".join(f"{counts[s]} {s}" for s in SEVERITIES)]]
    if inputs is not None:
        rows.append(["model directory", str(inputs.model_dir)])
        rows.append(["pipeline", inputs.pipeline_path or "-"])
        rows.append(["eval records", ", ".join(inputs.eval_records) or "-"])
        rows.append(["detections analysed (step)", inputs.detections_step])
    if best.step is not None:
        state = "exists" if best.exists else "deleted"
        rows.append(["best checkpoint", f"step {best.step}: {best.metric} = {_esc(best.value)} ({state})"])
    ids = "".join(
        f'<li><a href="#finding-{html.escape(f.id)}">{html.escape(f.id)}</a></li>'
        for f in d.sorted_findings()
    )
    return _table(["", "value"], rows) + (f"<ul>{ids}</ul>" if ids else "")


def _curves(d: Diagnosis) -> str:
    inputs = d.inputs
    if inputs is None or not inputs.scalars.by_key:
        return _missing("No event files with scalars were found under the model directory.")
    from tfod_tools.diagnostics.report.plots import curves_png
    from tfod_tools.tensorboard.reader import ScalarPoint

    points = [
        ScalarPoint(run, tag, step, value, 0.0)
        for (run, tag), series in inputs.scalars.by_key.items()
        for step, value in series
    ]
    return _img(curves_png(points), "curves")


def _per_class(d: Diagnosis) -> str:
    a = None if d.inputs is None else d.inputs.analysis
    if a is None:
        return _missing(_NO_DETECTIONS)
    from tfod_tools.diagnostics.report.plots import per_class_ap_png

    names = list(a.coco.per_class)
    rows = [
        [n, a.coco.per_class[n].get("AP"), a.coco.per_class[n].get("AP50"), int(a.coco.num_gt[k, 0])]
        for k, n in enumerate(names)
    ]
    return (
        f"<p>Step {a.step}; COCO mAP {_esc(a.coco.stats.get('AP'))}, "
        f"AP50 {_esc(a.coco.stats.get('AP50'))}.</p>"
        + _img(per_class_ap_png(a.coco.per_class), "per-class AP")
        + _table(["class", "AP@[.5:.95]", "AP50", "eval boxes"], rows)
    )


def _pr(d: Diagnosis) -> str:
    a = None if d.inputs is None else d.inputs.analysis
    if a is None:
        return _missing(_NO_DETECTIONS)
    from tfod_tools.diagnostics.report.plots import pr_curves_png

    rows = [
        [n, op.threshold, op.precision, op.recall, op.f1] if op else [n, None, None, None, None]
        for n, op in a.best_f1.items()
    ]
    return _img(pr_curves_png(a.curves), "PR curves") + _table(
        ["class", "best-F1 threshold", "precision", "recall", "F1"], rows
    )


def _confusion(d: Diagnosis) -> str:
    a = None if d.inputs is None else d.inputs.analysis
    if a is None:
        return _missing(_NO_DETECTIONS)
    from tfod_tools.diagnostics.report.plots import confusion_png

    return (
        f"<p>Detections scoring &ge; {a.threshold:g} (the mean best-F1 threshold), matched "
        "class-agnostically at IoU 0.5; rows are the true class, columns the predicted one.</p>"
        + _img(confusion_png(a.confusion), "confusion")
    )


def _errors(d: Diagnosis) -> str:
    a = None if d.inputs is None else d.inputs.analysis
    if a is None:
        return _missing(_NO_DETECTIONS)
    from tfod_tools.diagnostics.report.plots import errors_png

    per_class = a.per_class_errors()
    types = ["Cls", "Loc", "Both", "Dupe", "Bkg", "Miss"]
    rows = [[n, *[e[t] for t in types]] for n, e in per_class.items()]
    return (
        "<p>Cls: right place, wrong class; Loc: right class, poor box; Both; Dupe: duplicate; "
        "Bkg: on background; Miss: box never detected. The gain is AP50 after fixing only that type.</p>"
        + _img(errors_png(a.breakdown), "error breakdown")
        + _table(["class", *types], rows)
    )


def _areas(d: Diagnosis) -> str:
    inputs = d.inputs
    gt_set = None if inputs is None else inputs.ground_truth_set
    if inputs is None or gt_set is None:
        return _missing("Needs the eval ground truth: pass --eval-records and --label-map, or --pipeline.")
    counts = area_bucket_counts(gt_set.ground_truth)
    run = inputs.scalars.eval_run
    rows = []
    for bucket, rule in (
        ("small", "area &le; 32²"),
        ("medium", "32² &le; area &le; 96²"),
        ("large", "area &ge; 96²"),
    ):
        ap = inputs.scalars.series(run, f"DetectionBoxes_Precision/mAP ({bucket})")
        ar = inputs.scalars.series(run, f"DetectionBoxes_Recall/AR@100 ({bucket})")
        rows.append([bucket, rule, counts[bucket], ap[-1][1] if ap else None, ar[-1][1] if ar else None])
    body = _table(["bucket", "original pixels", "eval boxes", "mAP (latest)", "AR@100 (latest)"], rows)
    report = inputs.inspections.get("eval")
    if report is not None and report.model_area_buckets is not None:
        model_rows = [[k, report.area_buckets.get(k), report.model_area_buckets.get(k)] for k in counts]
        body += "<p>The same boxes at the model input size (from <code>tfod inspect</code>; COCO still uses "
        body += "the original pixels):</p>" + _table(["bucket", "original", "model input"], model_rows)
    return body.replace("&amp;le;", "&le;").replace("&amp;ge;", "&ge;") + (
        "<p>-1 means no ground-truth box in that bucket: it is not a score and is left out of every "
        "average.</p>"
    )


def _gallery(d: Diagnosis, count: int = 8) -> str:
    inputs = d.inputs
    a = None if inputs is None else inputs.analysis
    if inputs is None or a is None:
        return _missing(_NO_DETECTIONS)
    if not inputs.eval_records:
        return _missing("Needs the eval records to draw images: pass --eval-records or --pipeline.")
    from tfod_tools.diagnostics.report.gallery import classify_boxes, encoded_images
    from tfod_tools.diagnostics.report.plots import COLORS, draw_boxes_png

    worst = a.worst_images(count)
    if not worst:
        return _missing("No eval image has a false positive or a missed box at this threshold.")
    index = a.data.images.index_of()
    names = {i: a.data.images.file_names[index[i]] for i in worst}
    try:
        encoded = encoded_images(inputs.eval_records, names.values())
    except Exception as exc:  # a damaged record must not cost the rest of the report
        return _missing(f"Eval images could not be read: {html.escape(str(exc))}")
    legend = "".join(
        f'<span style="background:rgb{COLORS[k]}">{label}</span>'
        for k, label in (("tp", "true positive"), ("fp", "false positive"), ("missed", "missed box"))
    )
    figures = []
    for image_id in worst:
        name = names[image_id]
        boxes = classify_boxes(a.data, image_id, a.threshold)
        tp, fp, missed = len(boxes["tp"]), len(boxes["fp"]), len(boxes["missed"])
        caption = f"{html.escape(name)}: {tp} TP, {fp} FP, {missed} missed"
        if name in encoded:
            picture = _img(draw_boxes_png(encoded[name], boxes), name)
        else:
            picture = _missing("image not found in the eval records")
        figures.append(f"<figure>{picture}<figcaption>{caption}</figcaption></figure>")
    return (
        f'<p class="legend">{legend} detections scoring &ge; {a.threshold:g}, step {a.step}; images '
        f'ranked by false positives + missed boxes.</p><div class="gallery">{"".join(figures)}</div>'
    )


def render_report(diagnosis: Diagnosis) -> str:
    """The whole report as one HTML string."""
    findings = "".join(_finding(f) for f in diagnosis.sorted_findings()) or _missing("No findings.")
    notes = "".join(f"<li>{_esc(n)}</li>" for n in diagnosis.notes)
    bodies = {
        "summary": _summary(diagnosis),
        "findings": findings,
        "curves": _curves(diagnosis),
        "per-class-ap": _per_class(diagnosis),
        "pr-curves": _pr(diagnosis),
        "confusion-matrix": _confusion(diagnosis),
        "error-breakdown": _errors(diagnosis),
        "area-buckets": _areas(diagnosis),
        "gallery": _gallery(diagnosis),
        "notes": f"<ul>{notes}</ul>" if notes else _missing("Every input was read."),
    }
    nav = "".join(f'<a href="#{s}">{_TITLES[s]}</a>' for s in SECTIONS)
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    model = "" if diagnosis.inputs is None else html.escape(str(diagnosis.inputs.model_dir))
    sections = "".join(_section(s, bodies[s]) for s in SECTIONS)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>tfod diagnose {model}</title><style>{_CSS}</style></head><body>"
        f"<h1>tfod diagnose</h1><p>{model} &middot; {when}</p><nav>{nav}</nav>{sections}</body></html>"
    )


def write_report(diagnosis: Diagnosis, path: str | Path) -> Path:
    """Render and write the report atomically; returns the path."""
    return write_text_atomic(path, render_report(diagnosis))
