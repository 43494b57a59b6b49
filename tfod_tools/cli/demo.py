"""``tfod demo``: the whole loop on the embedded synthetic ``xray-like`` data set.

inspect -> train a tiny SSD MobileNet V2 FPNLite with the continuous evaluator -> curves -> diagnose ->
balance (``chest-xray`` recipe) -> train again -> export (-> ``--fine-tune``) -> a report comparing,
per class, AP and recall / precision at the operating threshold before and after. One line
per step on stderr with the elapsed time; the report paths and the ``tensorboard`` command on
stdout (``--json``: a machine-readable summary). Re-running into the same workdir resumes (completed
steps are kept); ``--force`` starts over. See :mod:`tfod_tools.demo.run`. This module does not import
TensorFlow (the evaluator does, when a checkpoint is evaluated).
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console

from tfod_tools.cli.app import app
from tfod_tools.cli.options import JsonOption, QuietOption
from tfod_tools.cli.output import Output, format_metric


@app.command("demo")
def demo_command(
    workdir: Path = typer.Option(
        Path("workspace/demo"),
        "--workdir",
        help="Where the data, runs and reports go (resumed if it exists).",
    ),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="Smaller and shorter: fewer images and steps, no TFLite export.",
    ),
    force: bool = typer.Option(False, "--force", help="Delete an earlier demo in --workdir and start over."),
    fine_tune: bool = typer.Option(
        False,
        "--fine-tune",
        help="Also fine-tune the best checkpoint on a second synthetic set with 3 classes "
        "(fine_tune_checkpoint_type detection) and report how many backbone variables were restored.",
    ),
    json_mode: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Run the whole loop on synthetic chest-X-ray-like data: train with live evaluation, diagnose,
    rebalance, train again, compare per-class AP and recall, then export the best checkpoint and prove
    the export scores what the checkpoint scored (README: what each step does)."""
    from tfod_tools.demo.report import format_precision
    from tfod_tools.demo.run import DemoEvents, run_demo, steps_for

    out = Output(json_mode=json_mode, quiet=quiet)
    started = time.monotonic()
    steps = steps_for(fine_tune)

    def on_step(index: int, name: str, seconds: float, summary: str, skipped: bool) -> None:
        total = time.monotonic() - started
        took = "skipped" if skipped else f"{seconds:.1f} s"
        out.info(f"[{total:6.1f}s] {index}/{len(steps)} {name} ({took}): {summary}")

    mode = "quick" if quick else "full"
    out.info(f"tfod demo ({mode}) in {workdir}")
    events = DemoEvents(on_step=on_step, on_note=out.info)
    result = run_demo(workdir, quick=quick, force=force, fine_tune=fine_tune, events=events)
    summary = result.summary

    def human(console: Console) -> None:
        minority = summary["minority_class"]
        console.print(
            f"per-class COCO AP@[.5:.95] before -> after balancing ({minority} is the minority class):"
        )
        for row in summary["comparison"]:
            change = row["change"]
            shown = "n/a" if change is None else f"{change:+.3f}"
            before, after = format_metric(row["ap_before"]), format_metric(row["ap_after"])
            console.print(f"  {row['class']:<18} {before} -> {after}  ({shown})", highlight=False)
        op = summary["operating_point"]
        console.print(f"recall / precision at score >= {op['threshold']:g} before -> after:")
        for name, b in op["before"].items():
            a = op["after"][name]
            console.print(
                f"  {name:<18} recall {format_metric(b['recall'])} -> {format_metric(a['recall'])}, "
                f"precision {format_precision(b['precision'])} -> {format_precision(a['precision'])}",
                highlight=False,
            )
        fine = summary.get("fine_tune")
        if fine:
            console.print(
                f"fine-tuning ({fine['kind']}, {fine['num_classes']} classes, {fine['steps']} steps): "
                f"{fine['restored_exactly']}/{fine['variables']} feature-extractor variables restored "
                "exactly",
                highlight=False,
            )
        console.print(f"report: {summary['report_html']} (also {summary['report_md']})", highlight=False)
        for run, path in summary["diagnose_html"].items():
            console.print(f"diagnosis ({run}): {path}", highlight=False)
        console.print(f"TensorBoard: {summary['tensorboard']}", highlight=False)

    out.result(summary, human=human)
