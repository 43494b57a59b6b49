"""The report's gallery: which boxes of an eval image are true positives, false positives or missed,
and the image bytes read back from the eval records (TF-free).

>>> from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
>>> data = AnnotatedSet(
...     images=ImageTable.from_sizes([1], [100], [100]), categories={1: "a"},
...     ground_truth=GroundTruth.from_arrays([1, 1], [[0, 0, 10, 10], [50, 50, 60, 60]], [1, 1]),
...     detections=Detections.from_arrays([1, 1, 1], [[0, 0, 10, 11], [0, 0, 10, 9], [20, 20, 30, 30]],
...                                       [1, 1, 1], [0.9, 0.8, 0.2]))
>>> {k: v.tolist() for k, v in classify_boxes(data, 1, threshold=0.5).items()}
{'tp': [[0.0, 0.0, 10.0, 11.0]], 'fp': [[0.0, 0.0, 10.0, 9.0]], 'missed': [[50.0, 50.0, 60.0, 60.0]]}
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from tfod_tools.data.model import AnnotatedSet, Detections
from tfod_tools.metrics.boxes import iou_matrix


def classify_boxes(
    data: AnnotatedSet, image_id: int, threshold: float, iou: float = 0.5
) -> dict[str, np.ndarray]:
    """Detections scoring >= ``threshold`` matched greedily by score to same-class boxes at ``iou``:
    ``{"tp": detections, "fp": detections, "missed": ground-truth boxes}`` (crowd boxes never missed)."""
    gt = data.ground_truth.select(data.ground_truth.image_ids == image_id)
    dets = data.detections if data.detections is not None else Detections.empty()
    dets = dets.select((dets.image_ids == image_id) & (dets.scores >= threshold))
    order = np.argsort(-dets.scores, kind="stable")
    taken = np.zeros(len(gt), dtype=bool)
    is_tp = np.zeros(len(dets), dtype=bool)
    ious = iou_matrix(dets.boxes, gt.boxes) if len(dets) and len(gt) else np.zeros((len(dets), len(gt)))
    for d in order.tolist():
        candidates = (gt.classes == dets.classes[d]) & ~taken & (ious[d] >= iou)
        if candidates.any():
            g = int(np.argmax(np.where(candidates, ious[d], -1.0)))
            taken[g] = not gt.iscrowd[g]
            is_tp[d] = True
    return {
        "tp": dets.boxes[is_tp],
        "fp": dets.boxes[~is_tp],
        "missed": gt.boxes[~taken & ~gt.iscrowd & ~gt.ignore],
    }


def encoded_images(record_paths: Sequence[str], wanted: Iterable[str]) -> dict[str, bytes]:
    """``name -> encoded image`` for the records whose source id (or file name) is in ``wanted``."""
    from tfod_tools.data.records import iter_image_records

    names = set(wanted)
    found: dict[str, bytes] = {}
    for _, _, record in iter_image_records(list(record_paths)):
        for name in (record.source_id, record.filename):
            if name in names and name not in found:
                found[name] = record.encoded
        if len(found) == len(names):
            break
    return found
