"""``tfod doctor [--json]``: check that the TF Object Detection API can train and evaluate here.

Exit 0 when it can (under the compatibility layer), 1 otherwise. Imports TensorFlow (to try the
API's imports and list GPUs), but only when the command runs; what TensorFlow itself prints goes
to :func:`doctor_log_path` unless ``--verbose``.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tfod_tools.cli.app import app
from tfod_tools.cli.options import JsonOption
from tfod_tools.cli.output import Output

_STYLE = {"ok": "green", "warn": "yellow", "fail": "red"}


def doctor_log_path() -> Path:
    """Where ``tfod doctor`` puts TensorFlow's own output: ``$XDG_CACHE_HOME/tfod_tools/doctor.log``.

    >>> doctor_log_path().name
    'doctor.log'
    """
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "tfod_tools" / "doctor.log"


@app.command("doctor")
def doctor_command(
    json_mode: JsonOption = False,
    verbose: bool = typer.Option(
        False, "--verbose", help="Let TensorFlow's own output through (default: into the doctor's log)."
    ),
) -> None:
    """Check Python, TensorFlow, Keras, protobuf, the Object Detection API and its dependencies."""
    from tfod_tools.odapi.doctor import FIX_HEADER, run_doctor

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    out = Output(json_mode=json_mode)
    log = doctor_log_path()
    with out.library_output_to(log, verbose=verbose):
        report = run_doctor(progress=out.info)
    if not verbose:
        out.info(f"TensorFlow's own output: {log}")

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
        fixes = report.fixes()
        if fixes:
            console.print(FIX_HEADER[report.ok])
        for fix in fixes:  # whole lines, never wrapped: they are meant to be pasted
            console.print(f"  {escape(fix)}", soft_wrap=True, highlight=False)

    out.result(report.to_dict(), human=human)
    if not report.ok:
        raise typer.Exit(1)
