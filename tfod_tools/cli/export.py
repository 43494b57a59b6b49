"""``tfod export``: one checkpoint (best, latest or a step) to a SavedModel and/or a TFLite model.

Bad input (an unknown step, ``best`` without a ledger, TFLite for a model the TFLite exporter
cannot take, ``int8`` without representative records, an output that already holds an export)
fails with exit 2 before TensorFlow starts and writes nothing. TensorFlow's own output goes to
``OUT/export.log`` (``--verbose``: to stderr). When TensorFlow fails mid-export, nothing is written
under ``OUT``, the log is kept as ``OUT.failed.log`` and one line names the stage and the log
(exit 1). This module does not import TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tfod_tools.cli.app import app
from tfod_tools.cli.options import JsonOption, QuietOption, choices_text, one_of
from tfod_tools.cli.output import Output


def _quantizations() -> tuple[str, ...]:
    from tfod_tools.odapi.export import QUANTIZATIONS

    return QUANTIZATIONS


@app.command("export")
def export_command(
    pipeline: Path = typer.Option(..., "--pipeline", help="pipeline.config of the model."),
    model_dir: Path = typer.Option(..., "--model-dir", help="Training model_dir (read only)."),
    out: Path = typer.Option(..., "--out", help="New export directory."),
    checkpoint: str = typer.Option(
        "best", "--checkpoint", metavar="WHICH", help="best (the ledger's), latest or a global step."
    ),
    formats: str = typer.Option(
        "saved_model", "--format", metavar="LIST", help="saved_model, tflite or saved_model,tflite."
    ),
    quantize: Annotated[
        one_of(_quantizations),  # type: ignore[valid-type]
        typer.Option(
            "--tflite-quantize",
            metavar="MODE",
            help=f"TFLite weights: {choices_text(_quantizations())}.",
        ),
    ] = "none",
    representative: Path | None = typer.Option(
        None, "--representative-records", metavar="R", help="Records calibrating int8 (train)."
    ),
    score_threshold: float | None = typer.Option(
        None,
        "--score-threshold",
        metavar="S",
        help="Post-processing score threshold (default: the pipeline's).",
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing export in --out."),
    json_mode: JsonOption = False,
    quiet: QuietOption = False,
    verbose: bool = typer.Option(False, "--verbose", help="TensorFlow's own output on stderr."),
) -> None:
    """Export a checkpoint with the API's exporters: SavedModel, TFLite (float, float16, int8).

    Writes OUT atomically: saved_model/, model.tflite, pipeline.config, label_map.pbtxt, export.json.
    """
    from tfod_tools.export.run import ExportFailed, plan_export, run_export

    output = Output(json_mode=json_mode, quiet=quiet)
    plan = plan_export(
        pipeline,
        model_dir,
        out,
        checkpoint=checkpoint,
        formats=formats,
        quantize=str(quantize),
        representative_records=representative,
        score_threshold=score_threshold,
        force=force,
    )
    chosen = plan.chosen
    output.info(f"exporting {chosen.checkpoint.prefix} (step {chosen.step}) to {out}")
    try:
        result = run_export(
            plan,
            on_stage=output.info,
            library_output=lambda log: output.library_output_to(None if verbose else log),
        )
    except ExportFailed as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None

    def human(console: Console) -> None:
        manifest = result.manifest
        threshold = (manifest["post_processing"] or {}).get("score_threshold")
        metrics = manifest["metrics"] or {}
        value = metrics.get(chosen.metric or "DetectionBoxes_Precision/mAP")
        shown = "" if value is None else f", {(chosen.metric or 'mAP').split('/')[-1]} {value:.4f}"
        console.print(
            f"exported step {chosen.step} ({chosen.checkpoint.name}{shown}) to {result.out}: "
            + ", ".join(f"{name} {s:.1f} s" for name, s in result.seconds.items()),
            highlight=False,
        )
        console.print(f"post-processing score threshold: {threshold}", highlight=False)

    output.result(result.to_dict(), human=human)
