"""Figures of the diagnosis report, each rendered to PNG bytes (matplotlib's Agg canvas, no display).

>>> from tfod_tools.metrics.counts import ConfusionMatrix
>>> import numpy as np
>>> png = confusion_png(ConfusionMatrix(("a", "background"), np.array([[3, 1], [2, 0]])))
>>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
"""

from __future__ import annotations

import io
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfod_tools.metrics.counts import ConfusionMatrix
from tfod_tools.metrics.curves import ClassPRCurve
from tfod_tools.metrics.errors import ERROR_TYPES, ErrorBreakdown
from tfod_tools.tensorboard.reader import ScalarPoint

__all__ = [
    "confusion_png",
    "curves_png",
    "draw_boxes_png",
    "errors_png",
    "per_class_ap_png",
    "pr_curves_png",
    "step_table_png",
]

COLORS = {"tp": (46, 160, 67), "fp": (220, 38, 38), "missed": (245, 158, 11)}
"""Box colours of the gallery: true positives green, false positives red, missed boxes amber."""


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=90, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def curves_png(points: Sequence[ScalarPoint]) -> bytes:
    """mAP / AR and train-vs-eval loss against step (the panels of ``tfod curves --plot``)."""
    from tfod_tools.curves import plot_curves

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "curves.png"
        plot_curves(points, path, dpi=80)
        return path.read_bytes()


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def step_table_png(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], marks: Sequence[tuple[int, str]] = ()
) -> bytes:
    """An evidence table whose first column is ``step`` drawn as lines, one per other column
    (columns named ``%...`` left out). Values ``"nan"`` / ``"inf"`` (a non-finite loss) are marked
    with a red cross at the top; positive values spanning over two decades are drawn on a log
    scale; ``marks`` are ``(step, label)`` vertical lines.

    >>> png = step_table_png(["step", "loss"], [[100, 1.0], [200, "nan"]], marks=[(200, "NaN")])
    >>> png[:4] == b"\\x89PNG"
    True
    """
    figure = _figure(7.6, 2.7)
    axes = figure.add_subplot(1, 1, 1)
    steps = np.array([_number(r[0]) for r in rows])
    finite_values: list[float] = []
    bad_steps: set[float] = set()
    drawn: list[str] = []
    for k, name in enumerate(columns[1:], start=1):
        if str(name).startswith("%"):
            continue
        values = np.array([_number(r[k]) if k < len(r) else math.nan for r in rows])
        ok = np.isfinite(values)
        raw = [str(r[k]).lower() if k < len(r) else "" for r in rows]
        bad_steps |= {float(s) for s, text in zip(steps, raw, strict=False) if text in ("nan", "inf", "-inf")}
        if ok.any():
            axes.plot(steps[ok], values[ok], marker="o", markersize=3, label=str(name))
            finite_values += values[ok].tolist()
            drawn.append(str(name))
    if bad_steps:
        where = sorted(bad_steps)
        axes.plot(where, [0.96] * len(where), "X", color="#dc2626", markersize=9,
                  transform=axes.get_xaxis_transform(), label="NaN / Inf", clip_on=False)  # fmt: skip
    for step, label in marks:
        axes.axvline(step, color="#6b7280", linestyle="--", linewidth=1)
        axes.annotate(label, (step, 0.02), xycoords=axes.get_xaxis_transform(), fontsize=8, rotation=90,
                      ha="right", va="bottom", color="#374151")  # fmt: skip
    if finite_values and min(finite_values) > 0 and max(finite_values) / min(finite_values) > 100:
        axes.set_yscale("log")
    elif finite_values and min(finite_values) >= 0:
        axes.set_ylim(bottom=0)  # a flat rate or loss looks flat, not like a slope
    axes.set_xlabel("step")
    axes.grid(True, alpha=0.3)
    if len(drawn) > 1 or bad_steps:
        axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    elif drawn:
        axes.set_ylabel(drawn[0])
    return _png(figure)


def per_class_ap_png(per_class: dict[str, dict[str, float]]) -> bytes:
    """Horizontal bars of AP@[.5:.95] and AP50 per class (classes without ground truth left out)."""
    names = [n for n, s in per_class.items() if s.get("AP", -1.0) > -1.0]
    figure = _figure(7.0, 0.45 * max(len(names), 2) + 1.2)
    axes = figure.add_subplot(1, 1, 1)
    y = np.arange(len(names))
    axes.barh(y - 0.2, [per_class[n]["AP"] for n in names], height=0.4, label="AP@[.5:.95]")
    axes.barh(y + 0.2, [per_class[n].get("AP50", math.nan) for n in names], height=0.4, label="AP50")
    axes.set_yticks(y, names)
    axes.set_xlim(0, 1)
    axes.invert_yaxis()
    axes.legend(fontsize="small")
    axes.grid(True, axis="x", alpha=0.3)
    return _png(figure)


def pr_curves_png(curves: dict[str, ClassPRCurve]) -> bytes:
    """Precision against recall (IoU 0.5) per class, with each class's best-F1 point marked."""
    figure = _figure(6.5, 4.5)
    axes = figure.add_subplot(1, 1, 1)
    for name, curve in curves.items():
        if not curve.num_gt or not curve.scores.shape[0]:
            continue
        line = axes.plot(curve.recall, curve.precision, label=f"{name} (n={curve.num_gt})")[0]
        best = curve.best_f1()
        if best is not None:
            axes.plot([best.recall], [best.precision], "o", color=line.get_color())
            axes.annotate(f"t={best.threshold:.2f}", (best.recall, best.precision), fontsize=8)
    axes.set_xlim(0, 1.02)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")
    return _png(figure)


def confusion_png(confusion: ConfusionMatrix) -> bytes:
    """The confusion matrix as a heat map with counts (rows: true class, columns: predicted)."""
    labels = list(confusion.labels)
    matrix = confusion.matrix
    size = 1.0 + 0.7 * len(labels)
    figure = _figure(max(size, 4.0), max(size * 0.85, 3.5))
    axes = figure.add_subplot(1, 1, 1)
    axes.imshow(np.log1p(matrix), cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        axes.text(j, i, str(value), ha="center", va="center", fontsize=9)
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    return _png(figure)


def errors_png(breakdown: ErrorBreakdown) -> bytes:
    """Counts of each error type and the AP50 each would add if fixed."""
    figure = _figure(8.0, 3.2)
    left = figure.add_subplot(1, 2, 1)
    right = figure.add_subplot(1, 2, 2)
    types = list(ERROR_TYPES)
    left.bar(types, [breakdown.counts.get(t, 0) for t in types], color="#64748b")
    left.set_title("count")
    right.bar(types, [breakdown.dap.get(t, 0.0) for t in types], color="#2563eb")
    right.set_title("AP50 gain if fixed")
    for axes in (left, right):
        axes.grid(True, axis="y", alpha=0.3)
    return _png(figure)


def draw_boxes_png(encoded: bytes, boxes: dict[str, np.ndarray], max_side: int = 360) -> bytes:
    """Decode an image (JPEG/PNG, TF-free) and draw ``{"tp"|"fp"|"missed": [x1, y1, x2, y2] rows}``.

    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("L", (40, 30)).save(buf, format="PNG")
    >>> png = draw_boxes_png(buf.getvalue(), {"tp": np.array([[1.0, 1.0, 20.0, 20.0]])})
    >>> Image.open(io.BytesIO(png)).size
    (360, 270)
    """
    from PIL import Image, ImageDraw

    with Image.open(io.BytesIO(encoded)) as raw:
        image = raw.convert("RGB")
    scale = max_side / max(image.width, image.height)
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    draw = ImageDraw.Draw(image)
    for kind in ("missed", "fp", "tp"):
        for x1, y1, x2, y2 in np.asarray(boxes.get(kind, np.zeros((0, 4)))).reshape(-1, 4).tolist():
            draw.rectangle(
                [x1 * scale, y1 * scale, x2 * scale, y2 * scale],
                outline=COLORS[kind],
                width=3 if kind == "missed" else 2,
            )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
