"""``tfod synth``: write a small synthetic TF OD API data set (train/eval records + label map).

Never imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from tfod_tools.cli.app import app
from tfod_tools.cli.options import JsonOption, QuietOption
from tfod_tools.cli.output import Output
from tfod_tools.data.synthetic import Kind, SyntheticDataset, write_synthetic_dataset


def _human(ds: SyntheticDataset) -> Callable[[Console], None]:
    def show(console: Console) -> None:
        console.print(f"[bold]{ds.kind}[/bold] data set (seed {ds.seed}, {ds.image_size}px images)")
        table = Table("split", "images", "negatives", *ds.class_counts["train"], "small", "medium", "large")
        for split in ("train", "eval"):
            buckets = ds.area_buckets[split]
            table.add_row(
                split,
                str(ds.images[split]),
                str(ds.negative_images[split]),
                *(str(v) for v in ds.class_counts[split].values()),
                str(buckets["small"]),
                str(buckets["medium"]),
                str(buckets["large"]),
            )
        console.print(table)
        console.print(f"train records: {ds.train_record}")
        console.print(f"eval records:  {ds.eval_record}")
        console.print(f"label map:     {ds.label_map}")

    return show


ImageFormat = Literal["jpeg", "png"]
"""The encodings ``tfod synth --format`` writes."""


@app.command("synth")
def synth(
    kind: Annotated[Kind, typer.Option("--kind", help="Data set kind.")] = "shapes",
    out: Path = typer.Option(
        ..., "--out", help="Output directory (train.record, eval.record, label_map.pbtxt)."
    ),
    train_images: int = typer.Option(64, "--train-images", min=0, help="Number of training images."),
    eval_images: int = typer.Option(16, "--eval-images", min=0, help="Number of evaluation images."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives byte-identical files."),
    image_size: int | None = typer.Option(
        None, "--image-size", help="Image side in pixels [default: 128 shapes, 256 xray-like]."
    ),
    negative_share: float | None = typer.Option(
        None, "--negative-share", help="Share of images without boxes [default: 0 shapes, 0.25 xray-like]."
    ),
    class_ratio: str | None = typer.Option(
        None,
        "--class-ratio",
        help="Class weights in label map order, e.g. 3:1 [default: 1:1 shapes, 3:1 xray-like].",
    ),
    min_size: int | None = typer.Option(None, "--min-size", help="Smallest box side in pixels."),
    max_size: int | None = typer.Option(
        None, "--max-size", help="Largest box side in pixels (95 or less: no COCO-large boxes)."
    ),
    image_format: Annotated[ImageFormat, typer.Option("--format", help="Encoded image format.")] = "jpeg",
    json_mode: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Write a deterministic synthetic data set: DIR/train.record, DIR/eval.record, DIR/label_map.pbtxt."""
    output = Output(json_mode=json_mode, quiet=quiet)
    output.info(f"writing {train_images} + {eval_images} {kind} images to {out}")
    ds = write_synthetic_dataset(
        out,
        kind,
        train_images=train_images,
        eval_images=eval_images,
        seed=seed,
        image_size=image_size,
        negative_share=negative_share,
        class_ratio=class_ratio,
        min_size=min_size,
        max_size=max_size,
        image_format=image_format,
    )
    output.result(ds.to_dict(), human=_human(ds))
