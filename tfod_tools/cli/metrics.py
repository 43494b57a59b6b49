"""``tfod metrics``: COCO or Pascal VOC metrics of a COCO results file. Never imports TensorFlow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tfod_tools.cli.app import app
from tfod_tools.cli.options import JsonOption, one_of
from tfod_tools.cli.output import Output
from tfod_tools.errors import TfodError
from tfod_tools.evaluation.protocols import MetricOptions, get_protocol, protocol_names, protocols
from tfod_tools.metrics.boxes import PixelConvention
from tfod_tools.metrics.protocol import IouType


def _protocol_help() -> str:
    """The ``--protocol`` help: every registered protocol and what it computes."""
    return "; ".join(f"{p.name}: {p.description}" for p in protocols()) + "."


@app.command("metrics")
def metrics_command(
    gt: Path = typer.Option(..., "--gt", help="COCO ground-truth JSON."),
    dt: Path = typer.Option(..., "--dt", help="COCO results JSON (a list of detections)."),
    iou_type: Annotated[IouType, typer.Option("--iou-type", help="COCO protocol: box or mask IoU.")] = "bbox",
    protocol: Annotated[
        one_of(protocol_names),  # type: ignore[valid-type]
        typer.Option("--protocol", help=_protocol_help()),
    ] = "coco",
    iou: float = typer.Option(0.5, "--iou", help="IoU threshold of the VOC protocols."),
    pixel_convention: Annotated[
        PixelConvention,
        typer.Option("--pixel-convention", help="continuous (TF OD API) or inclusive (VOC devkit +1)."),
    ] = "continuous",
    score_threshold: float | None = typer.Option(
        None, "--score-threshold", help="Also report TP/FP/FN and image-level metrics at this score."
    ),
    json_mode: JsonOption = False,
) -> None:
    """Exact COCO (pycocotools-equal) or Pascal VOC mAP, overall and per class."""
    from tfod_tools.data.coco import load_coco

    out = Output(json_mode=json_mode)
    if not 0.0 <= iou <= 1.0:
        raise TfodError(f"--iou must be in [0, 1], got {iou}")
    chosen = get_protocol(protocol)
    data = load_coco(gt, dt, masks=iou_type == "segm" and chosen.masks)
    out.info(
        f"{len(data.images)} images, {len(data.ground_truth)} boxes, {len(data.detections or ())} detections"
    )
    scored = chosen.evaluate(
        data, MetricOptions(iou_type=iou_type, iou=iou, pixel_convention=pixel_convention)
    )
    result: dict[str, Any] = scored.document
    human_parts: list[Any] = list(scored.human)
    if score_threshold is not None:
        from tfod_tools.metrics.counts import per_image_counts
        from tfod_tools.metrics.image_level import image_level_metrics

        totals = per_image_counts(data, score_threshold, iou).totals()
        image_level = {k: v.to_dict() for k, v in image_level_metrics(data, score_threshold).items()}
        result["score_threshold"] = score_threshold
        result["counts"] = totals
        result["image_level"] = image_level
        lines = [f"At score >= {score_threshold:g}, IoU >= {iou:g}:"]
        for name, c in totals.items():
            il = image_level[name]["at_threshold"]
            lines.append(
                f"  {name}: TP {c['tp']} FP {c['fp']} FN {c['fn']} | images: sensitivity "
                f"{_fmt(il['sensitivity'])} specificity {_fmt(il['specificity'])} AUROC "
                f"{_fmt(image_level[name]['auroc'])}"
            )
        human_parts.append("\n".join(lines))

    def human(console: Console) -> None:
        for part in human_parts:
            console.print(part, highlight=False)

    out.result(result, human=human)


def _fmt(value: float) -> str:
    return "n/a" if value != value else f"{value:.3f}"
