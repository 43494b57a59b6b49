"""``tfod doctor [--json]``: check that the TF Object Detection API can train and evaluate here.

Exit 0 when it can (under the compatibility layer), 1 otherwise. Imports TensorFlow (to try the
API's imports and list GPUs), but only when the command runs.
"""

from __future__ import annotations

import os

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tfod_tools.cli.app import app
from tfod_tools.cli.output import Output

_STYLE = {"ok": "green", "warn": "yellow", "fail": "red"}


@app.command("doctor")
def doctor_command(json_mode: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """Check Python, TensorFlow, Keras, protobuf, the Object Detection API and its dependencies."""
    from tfod_tools.odapi.doctor import run_doctor

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    out = Output(json_mode=json_mode)
    report = run_doctor(progress=out.info)

    def human(console: Console) -> None:
        table = Table("check", "status", "detail", "fix", show_lines=False)
        for check in report.checks:
            style = _STYLE[check.status]
            table.add_row(
                escape(check.name),
                f"[{style}]{check.status}[/{style}]",
                escape(check.detail),
                escape(check.fix),
            )
        console.print(table)
        verdict = (
            "[green]ok[/green]: the API can train and evaluate here" if report.ok else "[red]not ok[/red]"
        )
        console.print(verdict)

    out.result(report.to_dict(), human=human)
    if not report.ok:
        raise typer.Exit(1)
