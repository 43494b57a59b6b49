"""``tfod diagnose``: what went wrong in a training run, with evidence and the fix.

Without ``--pipeline`` this command never imports TensorFlow; with it, the config is parsed with
the API's protos (protobuf only).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from tfod_tools.cli.app import app
from tfod_tools.cli.options import JsonOption, QuietOption
from tfod_tools.cli.output import Output
from tfod_tools.diagnostics.model import SEVERITIES, Diagnosis, is_table

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def _human(diagnosis: Diagnosis) -> Callable[[Console], None]:
    def show(console: Console) -> None:
        counts = diagnosis.counts()
        console.print(
            f"[bold]{len(diagnosis.findings)}[/bold] findings: "
            + ", ".join(f"[{_STYLE[s]}]{counts[s]} {s}[/{_STYLE[s]}]" for s in SEVERITIES)
        )
        best = diagnosis.best_checkpoint
        if best.step is not None:
            state = "exists" if best.exists else "[red]deleted[/red]"
            console.print(f"best checkpoint: step {best.step} ({best.metric} = {_cell(best.value)}), {state}")
        for severity in SEVERITIES:
            group = [f for f in diagnosis.findings if f.severity == severity]
            if not group:
                continue
            console.rule(f"[{_STYLE[severity]}]{severity}[/{_STYLE[severity]}]")
            for finding in group:
                console.print(f"[{_STYLE[severity]}]{finding.id}[/{_STYLE[severity]}]: {finding.message}")
                scalars = {k: v for k, v in finding.evidence.items() if not is_table(v)}
                if scalars:
                    console.print(
                        "  " + ", ".join(f"{k}: {_cell(v)}" for k, v in scalars.items()), highlight=False
                    )
                for name, value in finding.evidence.items():
                    if is_table(value) and value["rows"]:
                        table = Table(*value["columns"], title=name.replace("_", " "), title_justify="left")
                        for row in value["rows"][:20]:
                            table.add_row(*(_cell(v) for v in row))
                        console.print(table)
                console.print(f"  [bold]fix:[/bold] {finding.fix}\n", highlight=False)
        for note in diagnosis.notes:
            console.print(f"[dim]note: {note}[/dim]", highlight=False)

    return show


@app.command("diagnose")
def diagnose_command(
    model_dir: Path = typer.Option(
        ..., "--model-dir", "-m", help="The model directory (train/ and eval/ runs)."
    ),
    pipeline: Path | None = typer.Option(
        None,
        "--pipeline",
        "-p",
        help="pipeline.config: post-processing, anchors, resizer, records, label map.",
    ),
    eval_records: list[str] | None = typer.Option(
        None, "--eval-records", help="Eval TFRecords (files, globs, PREFIX@N); default: the pipeline's."
    ),
    train_records: list[str] | None = typer.Option(
        None, "--train-records", help="Train TFRecords; default: the pipeline's."
    ),
    label_map: Path | None = typer.Option(
        None, "--label-map", "-l", help="label_map.pbtxt; default: the pipeline's label_map_path."
    ),
    step: int | None = typer.Option(
        None, "--step", help="Which stored detections to analyse (default: the best step's, else the newest)."
    ),
    html: Path | None = typer.Option(None, "--html", help="Also write a self-contained HTML report here."),
    json_mode: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Diagnose a training run: -1 metrics, single eval points, overfitting, the best checkpoint,
    thresholds, data problems, anchor coverage and per-class errors - each with evidence and a fix."""
    from tfod_tools.diagnostics.engine import diagnose

    output = Output(json_mode=json_mode, quiet=quiet)
    output.info(f"diagnosing {model_dir}")
    diagnosis = diagnose(
        model_dir,
        pipeline=pipeline,
        eval_records=eval_records or None,
        train_records=train_records or None,
        label_map=label_map,
        step=step,
    )
    if html is not None:
        from tfod_tools.diagnostics.report.html import write_report

        write_report(diagnosis, html)
        output.info(f"report written to {html}")
    output.result(diagnosis.to_dict(), human=_human(diagnosis))
