"""Parity with the TF OD API's own evaluators (what model_main_tf2 uses), on random data.

Needs the project's compatibility layer (``tfod_tools.odapi.compat.install``) to import
``object_detection`` on current TensorFlow/protobuf/Keras.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tfod_tools.data.model import AnnotatedSet
from tfod_tools.metrics.coco import COCO_TAGS, evaluate_coco
from tfod_tools.metrics.voc import evaluate_voc

pytestmark = pytest.mark.slow


def _odapi() -> Any:
    compat = pytest.importorskip("tfod_tools.odapi.compat")
    compat.install()
    from object_detection.core import standard_fields
    from object_detection.metrics import coco_evaluation
    from object_detection.utils import object_detection_evaluation

    return SimpleNamespace(fields=standard_fields, coco=coco_evaluation, pascal=object_detection_evaluation)


def _feed(evaluator: Any, api: Any, data: AnnotatedSet, *, difficult: bool = False) -> None:
    """Give the evaluator boxes the way the API does: [ymin, xmin, ymax, xmax], absolute pixels."""
    gt, dt = data.ground_truth, data.detections
    assert dt is not None
    inp, res = api.fields.InputDataFields, api.fields.DetectionResultFields
    for image_id in data.images.ids.tolist():
        g = gt.image_ids == image_id
        gdict = {
            inp.groundtruth_boxes: gt.boxes[g][:, [1, 0, 3, 2]].astype(np.float32).astype(np.float64),
            inp.groundtruth_classes: gt.classes[g],
        }
        if difficult:
            gdict[inp.groundtruth_difficult] = gt.difficult[g]
        else:
            gdict[inp.groundtruth_is_crowd] = gt.iscrowd[g]
        evaluator.add_single_ground_truth_image_info(str(image_id), gdict)
        d = dt.image_ids == image_id
        evaluator.add_single_detected_image_info(
            str(image_id),
            {
                res.detection_boxes: dt.boxes[d][:, [1, 0, 3, 2]],
                res.detection_scores: dt.scores[d],
                res.detection_classes: dt.classes[d],
            },
        )


def _as_given(data: AnnotatedSet) -> AnnotatedSet:
    """Our input with ground-truth boxes rounded through float32 as the evaluator receives them."""
    from dataclasses import replace

    boxes = data.ground_truth.boxes.astype(np.float32).astype(np.float64)
    gt = replace(
        data.ground_truth, boxes=boxes, area=(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    )
    return replace(data, ground_truth=gt)


def _no_ties(data: AnnotatedSet, seed: int) -> AnnotatedSet:
    from dataclasses import replace

    assert data.detections is not None
    rng = np.random.default_rng(seed)
    scores = rng.permutation(len(data.detections)) / max(len(data.detections), 1) + 0.001
    return replace(data, detections=replace(data.detections, scores=scores))


@pytest.mark.parametrize("seed", range(4))
def test_coco_equals_odapi_coco_detection_evaluator(oracles: SimpleNamespace, seed: int) -> None:
    api = _odapi()
    data = _as_given(_no_ties(oracles.random_coco_set(seed), seed))
    cats = [{"id": int(c), "name": n} for c, n in sorted(data.categories.items())]
    evaluator = api.coco.CocoDetectionEvaluator(cats)
    _feed(evaluator, api, data)
    theirs = evaluator.evaluate()
    ours = evaluate_coco(data).stats
    for key, tag in COCO_TAGS.items():
        assert abs(ours[key] - theirs[tag]) <= 1e-12, (key, ours[key], theirs[tag])


@pytest.mark.parametrize("seed", range(4))
def test_voc_equals_odapi_pascal_evaluator(oracles: SimpleNamespace, seed: int) -> None:
    from dataclasses import replace

    api = _odapi()
    data = _no_ties(oracles.random_coco_set(seed + 50), seed)
    rng = np.random.default_rng(seed)
    hard = rng.random(len(data.ground_truth)) < 0.15
    gt = replace(data.ground_truth, difficult=hard, iscrowd=np.zeros(len(hard), dtype=bool))
    data = _as_given(replace(data, ground_truth=gt))
    cats = [{"id": int(c), "name": n} for c, n in sorted(data.categories.items())]
    evaluator = api.pascal.PascalDetectionEvaluator(cats)
    _feed(evaluator, api, data, difficult=True)
    theirs = evaluator.evaluate()  # needs the layer's numpy-aliases fix (utils/metrics.py uses np.float)
    ours = evaluate_voc(data, iou=0.5, method="voc", pixel_convention="continuous")
    assert abs(ours.mAP - theirs["PascalBoxes_Precision/mAP@0.5IOU"]) <= 1e-12
    for name, values in ours.per_class.items():
        tag = f"PascalBoxes_PerformanceByCategory/AP@0.5IOU/{name}"
        if np.isnan(values["AP"]):
            assert tag not in theirs or np.isnan(theirs[tag])
        else:
            assert abs(values["AP"] - theirs[tag]) <= 1e-12, (name, values["AP"], theirs[tag])
