"""``tfod predict``: an exported model over images or records: COCO results, a CSV, annotated copies.

This module does not import TensorFlow (the library does, when the model loads). TensorFlow's own
output goes to ``OUT/predict.log`` (``--verbose``: to stderr).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tfod_tools.cli.app import app
from tfod_tools.cli.options import JsonOption, QuietOption, one_of
from tfod_tools.cli.output import Output
from tfod_tools.predict.run import ON_BAD_IMAGE


@app.command("predict")
def predict_command(
    model: Path = typer.Option(
        ..., "--model", help="Export directory (tfod export), SavedModel directory or .tflite file."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="New (or empty) output directory."),
    images: str | None = typer.Option(
        None, "--images", "-i", help="Folder of images (recursive) or a glob such as 'dir/*.jpg'."
    ),
    records: str | None = typer.Option(
        None,
        "--records",
        help="TFRecords (file, glob or PREFIX@N): their images (and groundtruth.json).",
    ),
    score_threshold: float = typer.Option(
        0.5, "--score-threshold", help="Keep detections with at least this score."
    ),
    label_map: Path | None = typer.Option(
        None, "--label-map", help="Class names [default: the export's label_map.pbtxt]."
    ),
    draw: bool = typer.Option(True, "--draw/--no-draw", help="Write annotated copies to OUT/images."),
    on_bad_image: Annotated[
        one_of(lambda: ON_BAD_IMAGE),  # type: ignore[valid-type]
        typer.Option("--on-bad-image", help="An image that does not decode: skip it (listed), or fail."),
    ] = "skip",
    json_mode: JsonOption = False,
    quiet: QuietOption = False,
    verbose: bool = typer.Option(False, "--verbose", help="TensorFlow's own output on stderr."),
) -> None:
    """Run an exported model: OUT/detections.json (COCO), detections.csv, annotated images."""
    from tfod_tools.predict.run import PredictOptions, predict

    output = Output(json_mode=json_mode, quiet=quiet)
    options = PredictOptions(
        model=model,
        out=out,
        images=images,
        records=records,
        score_threshold=score_threshold,
        label_map=label_map,
        draw=draw,
        on_bad_image=on_bad_image,
    )
    fd, log_name = tempfile.mkstemp(prefix="tfod-predict-", suffix=".log")
    os.close(fd)
    log = Path(log_name)
    state: dict[str, Any] = {"ctx": None, "bar": None}

    def on_start(total: int) -> None:
        ctx = output.progress("predict", total=total)
        state["bar"], state["ctx"] = ctx.__enter__(), ctx

    def on_image(n: int) -> None:
        if state["bar"] is not None:
            state["bar"](n)

    try:
        with output.library_output_to(None if verbose else log):
            try:
                result = predict(options, on_start=on_start, on_image=on_image, on_note=output.info)
            finally:
                if state["ctx"] is not None:
                    state["ctx"].__exit__(None, None, None)
        if not verbose and out.is_dir():
            shutil.move(str(log), out / "predict.log")
    finally:
        with contextlib.suppress(FileNotFoundError):
            log.unlink()

    def human(console: Console) -> None:
        console.print(
            f"{result.images} images, {result.detections} detections (score >= {score_threshold:g}) "
            f"in {result.seconds.get('loop', 0.0):.1f} s ({result.images_per_second:.1f} images/s)",
            highlight=False,
        )
        for item in result.skipped[:20]:
            console.print(f"[yellow]skipped[/yellow] {item['image']}: {item['reason']}", highlight=False)
        if len(result.skipped) > 20:
            console.print(f"... {len(result.skipped) - 20} more skipped (see --json)")
        console.print(f"written: {out}/ ({', '.join(result.files)})", highlight=False)

    output.result(result.to_dict(), human=human)
