"""Parity with the TF OD API's own evaluators (what model_main_tf2 uses), on random data.

Needs the project's compatibility layer (``tfod_tools.odapi.compat.install``) to import
``object_detection`` on current TensorFlow/protobuf/Keras.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
from tfod_tools.metrics.coco import COCO_TAGS, evaluate_coco
from tfod_tools.metrics.voc import VocResult, ap_tie_range, evaluate_voc

pytestmark = pytest.mark.slow


def _odapi() -> Any:
    compat = pytest.importorskip("tfod_tools.odapi.compat")
    compat.install()
    from object_detection.core import standard_fields
    from object_detection.metrics import coco_evaluation
    from object_detection.utils import object_detection_evaluation

    return SimpleNamespace(fields=standard_fields, coco=coco_evaluation, pascal=object_detection_evaluation)


def _feed(
    evaluator: Any, api: Any, data: AnnotatedSet, *, difficult: bool = False, key: Callable[[int], Any] = str
) -> None:
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
        evaluator.add_single_ground_truth_image_info(key(image_id), gdict)
        d = dt.image_ids == image_id
        evaluator.add_single_detected_image_info(
            key(image_id),
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


# Tied scores (real detectors quantise them). COCO: pycocotools' order is a rule (stable sorts, images by
# sorted id), so parity is exact. Pascal: the API sorts with numpy's unstable default argsort, so only
# the range over tie orders is fixed (see tfod_tools.metrics.voc), and exact parity where no tie group
# mixes true and false positives.


def _renumbered(data: AnnotatedSet, key: Callable[[int], Any]) -> AnnotatedSet:
    """The same set with image ids 1..N in the order ``key`` sorts them (how pycocotools will)."""
    from dataclasses import replace

    old = data.images.ids
    new_of = {int(i): n for n, i in enumerate(sorted(old.tolist(), key=key), start=1)}

    def relabel(ids: np.ndarray) -> np.ndarray:
        return np.asarray([new_of[int(i)] for i in ids.tolist()], dtype=np.int64)

    assert data.detections is not None
    images = replace(data.images, ids=relabel(old))
    return replace(
        data,
        images=images,
        ground_truth=replace(data.ground_truth, image_ids=relabel(data.ground_truth.image_ids)),
        detections=replace(data.detections, image_ids=relabel(data.detections.image_ids)),
    )


@pytest.mark.parametrize("seed", [3, 5, 8, 10])
def test_coco_ties_equal_odapi_coco_detection_evaluator(oracles: SimpleNamespace, seed: int) -> None:
    api = _odapi()
    data = _as_given(oracles.tied_scores(oracles.random_coco_set(seed), seed))
    cats = [{"id": int(c), "name": n} for c, n in sorted(data.categories.items())]
    ours = evaluate_coco(data).stats
    evaluator = api.coco.CocoDetectionEvaluator(cats)
    _feed(evaluator, api, data, key=int)
    theirs = evaluator.evaluate()
    for key, tag in COCO_TAGS.items():
        assert abs(ours[key] - theirs[tag]) <= 1e-12, (key, ours[key], theirs[tag])
    # String ids sort as strings in pycocotools ("10" before "9"): ties across images follow that order.
    evaluator = api.coco.CocoDetectionEvaluator(cats)
    _feed(evaluator, api, data, key=str)
    theirs = evaluator.evaluate()
    assert max(abs(ours[k] - theirs[t]) for k, t in COCO_TAGS.items()) > 1e-6  # these seeds are sensitive
    ours = evaluate_coco(_renumbered(data, key=str)).stats
    for key, tag in COCO_TAGS.items():
        assert abs(ours[key] - theirs[tag]) <= 1e-12, (key, ours[key], theirs[tag])


def _pascal(api: Any, data: AnnotatedSet) -> tuple[dict[str, float], VocResult]:
    cats = [{"id": int(c), "name": n} for c, n in sorted(data.categories.items())]
    evaluator = api.pascal.PascalDetectionEvaluator(cats)
    _feed(evaluator, api, data, difficult=True)
    theirs = evaluator.evaluate()
    ours = evaluate_voc(data, iou=0.5, method="voc", pixel_convention="continuous")
    return {
        n: theirs.get(f"PascalBoxes_PerformanceByCategory/AP@0.5IOU/{n}", np.nan) for n in ours.per_class
    }, ours


@pytest.mark.parametrize("seed", range(4))
def test_pascal_ties_lie_in_our_tie_range(oracles: SimpleNamespace, seed: int) -> None:
    from dataclasses import replace

    api = _odapi()
    data = oracles.tied_scores(oracles.random_coco_set(seed + 50), seed)
    rng = np.random.default_rng(seed)
    hard = rng.random(len(data.ground_truth)) < 0.15
    gt = replace(data.ground_truth, difficult=hard, iscrowd=np.zeros(len(hard), dtype=bool))
    theirs, ours = _pascal(api, _as_given(replace(data, ground_truth=gt)))
    ranges = ap_tie_range(ours)
    assert sum(hi - lo for lo, hi in ranges.values()) > 0.01  # the ties move AP
    for name, values in ours.per_class.items():
        if np.isnan(values["AP"]):
            assert np.isnan(theirs[name])
            continue
        lo, hi = ranges[name]
        assert lo - 1e-12 <= values["AP"] <= hi + 1e-12
        assert lo - 1e-12 <= theirs[name] <= hi + 1e-12, (name, theirs[name], (lo, hi))


def _label_pure_ties(seed: int) -> AnnotatedSet:
    """Heavy ties (4 score levels per kind, many per image) where no tie group mixes TP and FP.

    Boxes sit in separate cells of a grid, so a detection's outcome does not depend on the order:
    true positives (one per found box) score 2/8, 4/8, 6/8 or 1; false positives (background, wrong
    class, duplicates scored below their box's true positive) 1/8, 3/8, 5/8 or 7/8; detections of
    difficult boxes are ignored whatever their score.
    """
    rng = np.random.default_rng(seed)
    g_rows: list[tuple[int, list[float], int, bool]] = []
    d_rows: list[tuple[int, list[float], int, float]] = []
    for image in range(1, 7):
        for cell in rng.permutation(64)[: int(rng.integers(8, 20))].tolist():
            x, y = 50.0 * (cell % 8) + rng.uniform(0, 10), 50.0 * (cell // 8) + rng.uniform(0, 10)
            w, h = rng.uniform(20, 38, size=2)
            box = [x, y, x + w, y + h]
            cls = int(rng.integers(1, 3))
            kind = rng.random()
            if kind < 0.2:  # background: a false positive of either class
                d_rows.append((image, box, cls, (2 * int(rng.integers(0, 4)) + 1) / 8))
                continue
            difficult = kind > 0.88
            g_rows.append((image, box, cls, difficult))
            if rng.random() < 0.25:
                continue  # missed
            level = int(rng.integers(1, 5))
            near = [v + float(rng.uniform(-0.5, 0.5)) for v in box]
            d_rows.append((image, near, cls, rng.uniform(0, 1) if difficult else 2 * level / 8))
            if rng.random() < 0.3 and not difficult:  # a duplicate, scored below its true positive
                d_rows.append((image, near, cls, (2 * int(rng.integers(0, level)) + 1) / 8))
            if rng.random() < 0.15:  # the other class on this box: a false positive of that class
                d_rows.append((image, near, 3 - cls, (2 * int(rng.integers(0, 4)) + 1) / 8))
    order = rng.permutation(len(d_rows))
    d_rows = [d_rows[k] for k in order]
    return AnnotatedSet(
        ImageTable.from_sizes(range(1, 7), [400] * 6, [400] * 6),
        {1: "a", 2: "b"},
        GroundTruth.from_arrays(
            [r[0] for r in g_rows],
            [r[1] for r in g_rows],
            [r[2] for r in g_rows],
            difficult=[r[3] for r in g_rows],
        ),
        Detections.from_arrays(
            [r[0] for r in d_rows], [r[1] for r in d_rows], [r[2] for r in d_rows], [r[3] for r in d_rows]
        ),
    )


@pytest.mark.parametrize("seed", range(4))
def test_pascal_label_pure_ties_equal_odapi_pascal_evaluator(seed: int) -> None:
    api = _odapi()
    data = _as_given(_label_pure_ties(seed))
    assert data.detections is not None
    _, counts = np.unique(
        np.stack([data.detections.image_ids, data.detections.scores]), axis=1, return_counts=True
    )
    assert counts.max() >= 4
    theirs, ours = _pascal(api, data)
    for name, values in ours.per_class.items():
        lo, hi = ap_tie_range(ours)[name]
        assert hi - lo <= 1e-12  # pure tie groups: every order gives the same AP
        assert abs(values["AP"] - theirs[name]) <= 1e-12, (name, values["AP"], theirs[name])


@pytest.mark.parametrize("seed", [3, 5, 8, 10])
def test_coco_ties_in_stock_image_order(oracles: SimpleNamespace, seed: int) -> None:
    """tfod evaluate numbers images in hash-key order, as model_main_tf2's ids sort, so ties agree."""
    from tfod_tools.evaluation.runner import in_key_order

    api = _odapi()
    data = _as_given(oracles.tied_scores(oracles.random_coco_set(seed), seed))
    rng = np.random.default_rng(seed)
    ids = data.images.ids.tolist()
    hash_of = dict(zip(ids, rng.choice(2**31 - 1, size=len(ids), replace=False).tolist(), strict=True))
    cats = [{"id": int(c), "name": n} for c, n in sorted(data.categories.items())]
    evaluator = api.coco.CocoDetectionEvaluator(cats)
    _feed(evaluator, api, data, key=lambda i: hash_of[i])  # stock: the image id is the hash key
    theirs = evaluator.evaluate()
    ordered = in_key_order([SimpleNamespace(key=hash_of[i], id=i) for i in ids])
    position = {im.id: n for n, im in enumerate(ordered)}
    assert [im.key for im in ordered] == sorted(hash_of.values())
    ours = evaluate_coco(_renumbered(data, key=lambda i: position[i])).stats
    for key, tag in COCO_TAGS.items():
        assert abs(ours[key] - theirs[tag]) <= 1e-12, (key, ours[key], theirs[tag])
    unordered = evaluate_coco(data).stats  # numbered in eval order instead: these seeds differ
    assert max(abs(unordered[k] - theirs[t]) for k, t in COCO_TAGS.items()) > 1e-6
