"""``tfod pipeline``: render a pipeline.config from a shipped template. Never imports TensorFlow."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tfod_tools.cli.app import app
from tfod_tools.cli.options import JsonOption, choices_text, one_of
from tfod_tools.cli.output import Output


def _templates() -> tuple[str, ...]:
    from tfod_tools.odapi.pipeline import TEMPLATES

    return tuple(TEMPLATES)


def _fine_tune_types() -> tuple[str, ...]:
    from tfod_tools.odapi.fine_tune import FINE_TUNE_TYPES

    return FINE_TUNE_TYPES


@app.command("pipeline")
def pipeline_command(
    template: Annotated[
        one_of(_templates),  # type: ignore[valid-type]
        typer.Option(
            "--template", metavar="TEMPLATE", help=f"The pipeline template: {choices_text(_templates())}."
        ),
    ],
    label_map: Path = typer.Option(..., "--label-map", help="label_map.pbtxt (sets num_classes)."),
    train_records: str = typer.Option(..., "--train-records", help="Training TFRecord path or glob."),
    eval_records: str = typer.Option(..., "--eval-records", help="Evaluation TFRecord path or glob."),
    out_path: Path = typer.Option(..., "--out", help="pipeline.config to write."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Training batch size."),
    num_steps: int | None = typer.Option(
        None, "--num-steps", help="Training steps (train_config.num_steps)."
    ),
    fine_tune_checkpoint: str | None = typer.Option(
        None, "--fine-tune-checkpoint", help="Checkpoint prefix to start from (e.g. .../checkpoint/ckpt-0)."
    ),
    fine_tune_type: Annotated[
        one_of(_fine_tune_types) | None,  # type: ignore[valid-type]
        typer.Option(
            "--fine-tune-type",
            metavar="TYPE",
            help="What to restore from --fine-tune-checkpoint: "
            f"{choices_text(_fine_tune_types())} (default: what the checkpoint holds, detection for "
            "a detection checkpoint: feature extractor restored, box predictor new).",
        ),
    ] = None,
    json_mode: JsonOption = False,
) -> None:
    """Render a pipeline template with your label map and records."""
    from tfod_tools.odapi import fine_tune
    from tfod_tools.odapi import pipeline as pipeline_lib

    out = Output(json_mode=json_mode)
    if fine_tune_checkpoint and not fine_tune_type:
        fine_tune_type = fine_tune.fitting_type(fine_tune_checkpoint)
    config = pipeline_lib.render_template(
        template,
        label_map=label_map,
        train_records=train_records,
        eval_records=eval_records,
        batch_size=batch_size,
        num_steps=num_steps,
        fine_tune_checkpoint=fine_tune_checkpoint,
        fine_tune_type=fine_tune_type,
    )
    fine_tune.check_fine_tune(config, out_path)
    written = pipeline_lib.save_pipeline(config, out_path)
    for role, pattern in (("train", train_records), ("eval", eval_records)):
        if not glob.glob(str(Path(pattern).expanduser())):
            out.warn(
                f"{role} records {pattern!r} match no file yet; `tfod train` checks again before starting"
            )
    if not template.startswith("tiny-") and not fine_tune_checkpoint:
        out.warn("no --fine-tune-checkpoint: the model trains from scratch (slow to converge)")
    result = {
        "pipeline": str(written),
        "template": template,
        "num_classes": pipeline_lib.num_classes(config),
        "batch_size": config.train_config.batch_size,
        "num_steps": config.train_config.num_steps,
        "fine_tune_checkpoint": config.train_config.fine_tune_checkpoint or None,
        "fine_tune_checkpoint_type": config.train_config.fine_tune_checkpoint_type or None,
    }

    def human(console: Console) -> None:
        console.print(
            f"wrote {written} ({template}, {result['num_classes']} classes, "
            f"batch {result['batch_size']}, {result['num_steps']} steps)"
        )
        if result["fine_tune_checkpoint"]:
            console.print(
                f"fine-tunes from {result['fine_tune_checkpoint']} "
                f"(fine_tune_checkpoint_type {result['fine_tune_checkpoint_type']})"
            )

    out.result(result, human=human)
