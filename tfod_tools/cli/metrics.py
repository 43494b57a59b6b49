"""``tfod metrics``: COCO or Pascal VOC metrics of a COCO results file. Never imports TensorFlow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from tfod_tools.cli.app import app
from tfod_tools.cli.output import Output
from tfod_tools.errors import TfodError


@app.command("metrics")
def metrics_command(
    gt: Path = typer.Option(..., "--gt", help="COCO ground-truth JSON."),
    dt: Path = typer.Option(..., "--dt", help="COCO results JSON (a list of detections)."),
    iou_type: str = typer.Option("bbox", "--iou-type", help="bbox | segm (COCO protocol)."),
    protocol: str = typer.Option("coco", "--protocol", help="coco | voc07 (11-point) | voc (every point)."),
    iou: float = typer.Option(0.5, "--iou", help="IoU threshold of the VOC protocols."),
    pixel_convention: str = typer.Option(
        "continuous", "--pixel-convention", help="continuous (TF OD API) | inclusive (VOC devkit +1)."
    ),
    score_threshold: float | None = typer.Option(
        None, "--score-threshold", help="Also report TP/FP/FN and image-level metrics at this score."
    ),
    json_mode: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Exact COCO (pycocotools-equal) or Pascal VOC mAP, overall and per class."""
    from tfod_tools.data.coco import load_coco

    out = Output(json_mode=json_mode)
    if protocol not in ("coco", "voc07", "voc"):
        raise TfodError(f"unknown protocol {protocol!r}", fix="use coco, voc07 or voc")
    if iou_type not in ("bbox", "segm"):
        raise TfodError(f"unknown IoU type {iou_type!r}", fix="use bbox or segm")
    if pixel_convention not in ("continuous", "inclusive"):
        raise TfodError(f"unknown pixel convention {pixel_convention!r}", fix="use continuous or inclusive")
    if not 0.0 <= iou <= 1.0:
        raise TfodError(f"--iou must be in [0, 1], got {iou}")
    data = load_coco(gt, dt, masks=iou_type == "segm" and protocol == "coco")
    out.info(
        f"{len(data.images)} images, {len(data.ground_truth)} boxes, {len(data.detections or ())} detections"
    )
    result: dict[str, Any]
    human_parts: list[Any] = []
    if protocol == "coco":
        from tfod_tools.metrics.coco import evaluate_coco
        from tfod_tools.metrics.summary import coco_class_table, coco_summary_lines

        res = evaluate_coco(data, iou_type)  # type: ignore[arg-type]
        result = res.to_dict()
        human_parts.append("\n".join(coco_summary_lines(res)))
        human_parts.append(coco_class_table(res))
    else:
        from tfod_tools.metrics.summary import voc_class_table
        from tfod_tools.metrics.voc import evaluate_voc

        vres = evaluate_voc(data, iou=iou, method=protocol, pixel_convention=pixel_convention)  # type: ignore[arg-type]
        result = vres.to_dict()
        human_parts.append(voc_class_table(vres))
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
