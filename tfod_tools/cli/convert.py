"""``tfod convert``: COCO JSON, Pascal VOC folders or CSV -> TF OD API TFRecords + label map.

Never imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tfod_tools.cli.app import app
from tfod_tools.cli.options import (
    BEAM_CONTEXT,
    BeamOption,
    JsonOption,
    QuietOption,
    beam_args,
    beam_run,
    one_of,
)
from tfod_tools.cli.output import Output
from tfod_tools.data.convert import (
    ON_BAD_IMAGE,
    SIXTEEN_BIT_MODES,
    ConversionSummary,
    convert,
    converter_names,
)


def _human(summary: ConversionSummary) -> Callable[[Console], None]:
    def show(console: Console) -> None:
        console.print(
            f"[bold]{summary.images}[/bold] images, [bold]{summary.boxes}[/bold] boxes, "
            f"{summary.negative_images} without boxes (from {summary.format})"
        )
        table = Table("class", "images", "boxes")
        for name, counts in summary.per_class.items():
            table.add_row(name, str(counts["images"]), str(counts["boxes"]))
        console.print(table)
        for path in summary.outputs:
            console.print(f"records:   {path}")
        if summary.label_map is not None:
            console.print(f"label map: {summary.label_map}")
        if summary.boxes_clipped:
            console.print(f"{summary.boxes_clipped} boxes clipped to their image")
        for note, count in summary.image_notes.items():
            console.print(f"{count} images: {note}")
        if summary.skipped:
            console.print(
                f"[yellow]skipped {summary.skipped_images} images and {summary.skipped_boxes} boxes:[/yellow]"
            )
            for item in summary.skipped[:20]:
                console.print(f"  {item['item']}: {item['reason']}", highlight=False)
            if len(summary.skipped) > 20:
                console.print(f"  ... {len(summary.skipped) - 20} more (see --json)")

    return show


@app.command("convert", context_settings=BEAM_CONTEXT)
def convert_command(
    ctx: typer.Context,
    fmt: Annotated[
        one_of(converter_names),  # type: ignore[valid-type]
        typer.Option("--from", help="Annotation format."),
    ],
    annotations: Path = typer.Option(
        ...,
        "--annotations",
        "-a",
        help="coco: the JSON file; voc: the VOC root (or its Annotations folder); csv: the CSV file "
        "(header filename,width,height,class,xmin,ymin,xmax,ymax or RSNA patientId,x,y,width,height,Target).",
    ),
    images: Path | None = typer.Option(
        None,
        "--images",
        "-i",
        help="Folder of the image files (default: coco, csv: the annotation file's folder; "
        "voc: ROOT/JPEGImages).",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output record path; with --shards N: PREFIX-00000-of-0000N, ..."
    ),
    shards: int = typer.Option(1, "--shards", min=1, help="Number of output files (round robin)."),
    label_map: Path | None = typer.Option(
        None,
        "--label-map",
        help="Where to write the label map (default: label_map.pbtxt beside --out; none with --classes).",
    ),
    classes: Path | None = typer.Option(
        None,
        "--classes",
        help="Existing label map whose ids to use (e.g. the training split's); every class must be in it.",
    ),
    on_bad_image: Annotated[
        one_of(lambda: ON_BAD_IMAGE),  # type: ignore[valid-type]
        typer.Option(
            "--on-bad-image",
            help="A missing or undecodable image, or one whose size differs from the annotation: "
            "fail, or skip it (listed in the summary).",
        ),
    ] = "fail",
    sixteen_bit: Annotated[
        one_of(lambda: SIXTEEN_BIT_MODES),  # type: ignore[valid-type]
        typer.Option(
            "--sixteen-bit",
            help="16-bit PNG: scale (stretch min..max to 8-bit) or keep (the API's decoder keeps the "
            "high byte).",
        ),
    ] = "scale",
    image_list: Path | None = typer.Option(
        None, "--image-list", help="voc only: ImageSets/Main/<split>.txt, the image ids to convert."
    ),
    class_name: str = typer.Option(
        "opacity", "--class-name", help="RSNA CSV only: the class name of every box."
    ),
    beam: BeamOption = False,
    json_mode: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Convert COCO / Pascal VOC / CSV annotations and their images to TF OD API TFRecords and a label map.

    With --beam the images are converted on Apache Beam (pipeline options after --, DirectRunner by
    default): the same checks, summary and byte-identical shards as the local run.
    """
    output = Output(json_mode=json_mode, quiet=quiet)
    extra = beam_args(ctx, beam)
    if beam:
        with beam_run(output, "convert"):
            from tfod_tools.beam.convert import convert_beam

            summary = convert_beam(
                fmt,
                annotations,
                out,
                images=images,
                num_shards=shards,
                label_map_out=label_map,
                classes=classes,
                on_bad_image=on_bad_image,
                sixteen_bit=sixteen_bit,
                image_list=image_list,
                class_name=class_name,
                beam_args=extra,
            )
    else:
        with output.progress("converting images") as advance:
            summary = convert(
                fmt,
                annotations,
                out,
                images=images,
                num_shards=shards,
                label_map_out=label_map,
                classes=classes,
                on_bad_image=on_bad_image,
                sixteen_bit=sixteen_bit,
                image_list=image_list,
                class_name=class_name,
                progress=advance,
            )
    if summary.stale_outputs:
        output.warn(
            f"{len(summary.stale_outputs)} other shard files with this prefix exist "
            f"(e.g. {summary.stale_outputs[0]}); a glob would read them too"
        )
    output.result(summary.to_dict(), human=_human(summary))
