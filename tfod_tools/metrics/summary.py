"""Human-readable tables of metric results: the familiar 12-line COCO summary, per-class tables.

Every ``-1`` is printed with its reason, so "APl = -1" reads "no ground truth in area large".

>>> from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
>>> from tfod_tools.metrics.coco import evaluate_coco
>>> data = AnnotatedSet(
...     images=ImageTable.from_sizes([1], [100], [100]), categories={1: "a"},
...     ground_truth=GroundTruth.from_arrays([1], [[0, 0, 10, 10]], [1]),
...     detections=Detections.from_arrays([1], [[0, 0, 10, 10]], [1], [0.9]))
>>> lines = coco_summary_lines(evaluate_coco(data))
>>> print(lines[0])
 Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000
>>> print(lines[5][-55:])
maxDets=100 ] = -1.000  (no ground truth in area large)
"""

from __future__ import annotations

import math

from rich.table import Table

from tfod_tools.metrics.coco import CocoResult
from tfod_tools.metrics.voc import VocResult

_AREA = {"s": "small", "m": "medium", "l": "large"}


def _describe(key: str, res: CocoResult) -> str:
    thr = res.iou_thresholds
    span = f"{thr[0]:0.2f}:{thr[-1]:0.2f}" if len(thr) > 1 else f"{thr[0]:0.2f}"
    last = res.max_dets[-1]
    if key.startswith("AP"):
        title, kind = "Average Precision", "(AP)"
        rest = key[2:]
    else:
        title, kind = "Average Recall   ", "(AR)"
        rest = key[2:]
    iou = span
    area = "all"
    max_det = last
    if rest in ("50", "75") and key.startswith("AP"):
        iou = f"0.{rest}"
    elif rest in _AREA:
        area = _AREA[rest]
    elif rest.isdigit():
        max_det = int(rest)
    return f" {title:<18} {kind} @[ IoU={iou:<9} | area={area:>6} | maxDets={max_det:>3d} ]"


def coco_summary_lines(res: CocoResult) -> list[str]:
    """pycocotools' ``summarize()`` lines, with the reason after each ``-1``."""
    lines = []
    for key, value in res.stats.items():
        line = f"{_describe(key, res)} = {value:0.3f}"
        if value == -1.0 and res.reasons.get(key):
            line += f"  ({res.reasons[key]})"
        lines.append(line)
    return lines


def _cell(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return "-1" if value == -1.0 else f"{value:.3f}"


def coco_class_table(res: CocoResult) -> Table:
    """Per-class table of the AP statistics and AR@max (``-1`` cells explained in the last column).

    All 12 statistics per class are in :attr:`CocoResult.per_class` (and ``--json``).
    """
    keys = [k for k in res.stats if k.startswith("AP")] + [f"AR{res.max_dets[-1]}"]
    table = Table(title=f"COCO {res.iou_type} per class", show_lines=False)
    table.add_column("class")
    table.add_column("gt", justify="right")
    for key in keys:
        table.add_column(key, justify="right")
    table.add_column("notes")
    for k, name in enumerate(res.category_names):
        values = res.per_class.get(name, {})
        notes = sorted(set(res.per_class_reasons.get(name, {}).values()))
        table.add_row(
            name, str(int(res.num_gt[k, 0])), *(_cell(values.get(key)) for key in keys), "; ".join(notes)
        )
    return table


def voc_class_table(res: VocResult) -> Table:
    """Per-class AP table of a VOC result."""
    table = Table(title=f"{res.method} AP@{res.iou:g} ({res.pixel_convention} pixels): mAP {_cell(res.mAP)}")
    for col in ("class", "gt", "TP", "FP", "AP", "notes"):
        table.add_column(col, justify="left" if col in ("class", "notes") else "right")
    for name, d in res.per_class.items():
        note = "no ground truth (left out of mAP)" if math.isnan(d["AP"]) else ""
        table.add_row(name, f"{int(d['num_gt'])}", f"{int(d['tp'])}", f"{int(d['fp'])}", _cell(d["AP"]), note)
    return table
