"""``tfod curves``: every scalar of every run of a model directory, as a table or a plot.

Rows are ``run, tag, step, value, wall_time`` (one per run, tag and step; see
:mod:`tfod_tools.tensorboard.reader` for how duplicates resolve), in CSV, JSON
(``{"points": [...]}``) or Markdown. The plot shows COCO mAP and AR against step, and train
against eval total loss; a panel whose tags are absent is left out. Never imports TensorFlow;
matplotlib is imported only to plot.

>>> from tfod_tools.tensorboard.reader import ScalarPoint
>>> points = [ScalarPoint("eval", "DetectionBoxes_Precision/mAP", 100, 0.5, 1700000000.25)]
>>> print(render_points(points, "csv"), end="")
run,tag,step,value,wall_time
eval,DetectionBoxes_Precision/mAP,100,0.5,1700000000.25
>>> print(render_points(points, "md"), end="")
| run | tag | step | value | wall_time |
|---|---|---:|---:|---:|
| eval | DetectionBoxes_Precision/mAP | 100 | 0.5 | 1700000000.25 |
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfod_tools.errors import TfodError
from tfod_tools.fsutil import atomic_path, write_text_atomic
from tfod_tools.tensorboard.reader import (
    ReadStats,
    ScalarPoint,
    find_event_files,
    not_an_event_file,
    read_scalars,
    scalar_series,
)

__all__ = [
    "FORMATS",
    "PLOT_PANELS",
    "collect_points",
    "curves_document",
    "plot_curves",
    "render_points",
    "write_points",
]

FORMATS: tuple[str, ...] = ("csv", "json", "md")
COLUMNS: tuple[str, ...] = ("run", "tag", "step", "value", "wall_time")


@dataclass(frozen=True)
class Panel:
    """One plot panel: the tags it draws (by prefix or exact name) and its axis label."""

    title: str
    prefix: str
    exact: bool
    ylabel: str


PLOT_PANELS: tuple[Panel, ...] = (
    Panel("COCO mAP", "DetectionBoxes_Precision/", False, "mAP"),
    Panel("COCO AR", "DetectionBoxes_Recall/", False, "AR"),
    Panel("Total loss: train vs eval", "Loss/total_loss", True, "loss"),
)


def collect_points(model_dir: str | Path, stats: ReadStats | None = None) -> list[ScalarPoint]:
    """Every scalar under ``model_dir``.

    :class:`TfodError` when the directory is missing or has no event files, when a file named like
    an event file is not one, and when nothing could be read because the event files are
    truncated. A file that ends in a partial record but held points before it (a run still
    writing, or a copy cut short) is only listed in ``stats.ended_early``.

    >>> import tempfile, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp()) / "train"
    >>> run.mkdir()
    >>> _ = (run / "events.out.tfevents.1700000000.host").write_text("step,loss\\n100,0.5\\n")
    >>> collect_points(run.parent)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfod_tools.errors.TfodError: .../events.out.tfevents.1700000000.host: not a TensorBoard event file ...
    """
    base = Path(model_dir)
    fix = "pass the directory model_main_tf2 trains into (it holds train/ and eval/ event files)"
    if not base.is_dir():
        raise TfodError("model directory not found", path=base, fix=fix)
    if not find_event_files(base):
        raise TfodError("no TensorBoard event files (events.out.tfevents.*) found", path=base, fix=fix)
    seen = stats if stats is not None else ReadStats()
    points = read_scalars(base, stats=seen)
    if seen.not_event_files:
        raise not_an_event_file(seen.not_event_files[0])
    if not points and seen.ended_early:
        raise TfodError(
            "truncated event file: it ends in a partial or damaged record before any scalar",
            path=seen.ended_early[0],
            fix="if training is still writing it, run again later; else restore the file from a good copy",
        )
    return points


def _number(value: float) -> str:
    return repr(float(value)) if math.isfinite(value) else str(value)


def render_points(points: Sequence[ScalarPoint], fmt: str) -> str:
    """The points as ``csv``, ``json`` (``{"points": [...]}``) or ``md`` text."""
    if fmt == "json":
        return json.dumps(curves_document(points), indent=2) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for p in points:
            writer.writerow([p.run, p.tag, p.step, _number(p.value), _number(p.wall_time)])
        return buffer.getvalue()
    if fmt == "md":
        lines = ["| " + " | ".join(COLUMNS) + " |", "|---|---|---:|---:|---:|"]
        for p in points:
            cells = [p.run.replace("|", "\\|"), p.tag.replace("|", "\\|"), str(p.step)]
            cells += [_number(p.value), _number(p.wall_time)]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"
    raise TfodError(f"unknown format {fmt!r}", fix="use " + ", ".join(FORMATS))


def write_points(points: Sequence[ScalarPoint], fmt: str, out: str | Path) -> Path:
    """Write :func:`render_points` to ``out`` atomically."""
    return write_text_atomic(out, render_points(points, fmt))


def _panel_series(points: Sequence[ScalarPoint], panel: Panel) -> list[tuple[str, str]]:
    pairs = {
        (p.run, p.tag)
        for p in points
        if (p.tag == panel.prefix if panel.exact else p.tag.startswith(panel.prefix))
    }
    return sorted(pairs)


def plot_curves(points: Sequence[ScalarPoint], path: str | Path, *, dpi: int = 100) -> list[str]:
    """Draw the panels of :data:`PLOT_PANELS` that have data into a PNG at ``path`` (atomically).

    Returns the titles of the panels drawn. COCO's ``-1`` ("no ground truth") is not drawn. With
    no panel to draw, the image says so.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [(panel, _panel_series(points, panel)) for panel in PLOT_PANELS]
    panels = [(panel, series) for panel, series in panels if series]
    figure = Figure(figsize=(7.5, 3.2 * max(1, len(panels))), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    if not panels:
        axes = figure.add_subplot(1, 1, 1)
        axes.set_axis_off()
        axes.text(0.5, 0.5, "no mAP, AR or Loss/total_loss scalars found", ha="center", va="center")
    for index, (panel, series) in enumerate(panels):
        axes = figure.add_subplot(len(panels), 1, index + 1)
        runs = {run for run, _ in series}
        for run, tag in series:
            steps, values = scalar_series(points, run, tag)
            if not panel.exact:
                values = values.copy()
                values[values == -1.0] = math.nan
            label = tag if panel.exact else tag[len(panel.prefix) :]
            if panel.exact or len(runs) > 1:
                label = run if panel.exact else f"{label} ({run})"
            axes.plot(steps, values, marker="o", markersize=3, label=label)
        axes.set_title(panel.title)
        axes.set_xlabel("step")
        axes.set_ylabel(panel.ylabel)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small", ncols=2 if len(series) > 4 else 1)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return [panel.title for panel, _ in panels]


def curves_document(points: Sequence[ScalarPoint]) -> dict[str, Any]:
    """The JSON document of ``tfod curves --json``: ``{"points": [...]}`` (non-finite -> null)."""
    rows = []
    for p in points:
        row = p.to_dict()
        row["value"] = row["value"] if math.isfinite(row["value"]) else None
        rows.append(row)
    return {"points": rows}
