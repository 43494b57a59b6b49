"""``tfod curves``: every scalar of every run as CSV / JSON / Markdown, and a plot.

Never imports TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tfod_tools.cli.app import app
from tfod_tools.cli.options import JsonOption, one_of
from tfod_tools.cli.output import Output


def _formats() -> tuple[str, ...]:
    from tfod_tools.curves import FORMATS

    return FORMATS


@app.command("curves")
def curves_command(
    model_dir: Path = typer.Option(..., "--model-dir", help="Model directory (holds train/ and eval/)."),
    fmt: Annotated[
        one_of(_formats),  # type: ignore[valid-type]
        typer.Option("--format", help="Table format."),
    ] = "csv",
    out_file: Path | None = typer.Option(None, "--out", help="Write the table to FILE (atomically)."),
    plot: Path | None = typer.Option(None, "--plot", help="Also draw mAP, AR and total loss to FILE.png."),
    json_mode: JsonOption = False,
) -> None:
    """Export the scalars TensorBoard shows (run, tag, step, value, wall_time); optionally plot them."""
    from tfod_tools.curves import collect_points, curves_document, plot_curves, render_points
    from tfod_tools.tensorboard.reader import ReadStats

    out = Output(json_mode=json_mode)
    stats = ReadStats()
    points = collect_points(model_dir, stats)
    for path in stats.ended_early:
        out.warn(
            f"{path}: ends in a partial or damaged record (still being written, or truncated); "
            "its points before that record are included"
        )
    runs = sorted({p.run for p in points})
    tags = {(p.run, p.tag) for p in points}
    out.info(f"{len(points)} points, {len(tags)} series in runs: {', '.join(runs) or '(none)'}")
    text = render_points(points, fmt)
    result: dict[str, Any] = curves_document(points)
    messages: list[str] = []
    if out_file is not None:
        from tfod_tools.fsutil import write_text_atomic

        write_text_atomic(out_file, text)
        result["out"] = str(out_file)
        messages.append(f"wrote {len(points)} points ({fmt}) to {out_file}")
    if plot is not None:
        panels = plot_curves(points, plot)
        if not panels:
            out.warn("no mAP, AR or Loss/total_loss scalars to plot")
        result["plot"] = {"path": str(plot), "panels": panels}
        messages.append(f"plotted {', '.join(panels) or 'nothing'} to {plot}")

    def human(console: Console) -> None:
        if out_file is None:  # the table is the output; the notes go to stderr
            typer.echo(text, nl=False)
            for message in messages:
                out.info(message)
        else:
            for message in messages:
                console.print(message, highlight=False, markup=False)

    out.result(result, human=human)
