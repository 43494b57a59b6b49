"""data.areas: COCO's area ranges exactly as pycocotools evaluates them, one count for inspect and diagnose.

The boundary areas 32² and 96² belong to two buckets in COCOeval (``lo <= area <= hi``); the copies this
module replaced disagreed on them (inspect and synth counted 32² as medium only, 96² as medium only).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tfod_tools.data.areas import AREA_BUCKETS, COCO_AREA_RANGES, area_bucket_counts, evaluated_areas
from tfod_tools.data.inspect import inspect_records
from tfod_tools.data.records import ImageRecord, read_annotated_set, write_image_records
from tfod_tools.diagnostics import datasets
from tfod_tools.odapi.label_map import LabelMap

LM = LabelMap.from_names(["thing"])


def _pycocotools_counts(areas: Any, crowd: Any) -> dict[str, int]:
    """Ground truth COCOeval does not ignore in each size range (one image, one category)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    anns = [
        {
            "id": k + 1,
            "image_id": 1,
            "category_id": 1,
            "bbox": [0, 0, 10, 10],
            "area": float(a),
            "iscrowd": int(c),
        }
        for k, (a, c) in enumerate(zip(areas, crowd, strict=True))
    ]
    dataset = {
        "info": {},
        "images": [{"id": 1, "width": 2000, "height": 2000}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": anns,
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        dt = gt.loadRes([{"image_id": 1, "category_id": 1, "bbox": [500, 500, 5, 5], "score": 0.5}])
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
    counts = {}
    for label, rng in zip(ev.params.areaRngLbl, ev.params.areaRng, strict=True):
        img = next(e for e in ev.evalImgs if e is not None and e["aRng"] == rng)
        counts[label] = int(np.count_nonzero(np.asarray(img["gtIgnore"]) == 0))
    return counts


def test_ranges_are_pycocotools() -> None:
    from pycocotools.cocoeval import Params

    params = Params(iouType="bbox")
    assert list(COCO_AREA_RANGES) == params.areaRngLbl
    assert [list(r) for r in COCO_AREA_RANGES.values()] == params.areaRng
    assert tuple(params.areaRngLbl[1:]) == AREA_BUCKETS


def test_counts_equal_what_cocoeval_evaluates() -> None:
    areas = [0.0, 0.5, 1023.9, 1024.0, 1024.1, 5000.0, 9215.9, 9216.0, 9216.1, 1e6, 1024.0, 9216.0]
    crowd = [0] * 10 + [1, 1]
    expected = _pycocotools_counts(areas, crowd)
    counts = area_bucket_counts(areas, ignore=np.asarray(crowd, dtype=bool))
    assert counts == {k: expected[k] for k in AREA_BUCKETS}
    assert counts == {"small": 4, "medium": 5, "large": 3}  # 32² and 96² counted twice, crowd never


def _record(
    size: int | tuple[int, int], boxes: list[list[int]], source_id: str, **columns: Any
) -> ImageRecord:
    """A PNG record of ``size`` (side, or width x height) with pixel ``boxes`` of class 1."""
    width, height = (size, size) if isinstance(size, int) else size
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 90, 90)).save(buffer, format="PNG")
    return ImageRecord.from_pixels(
        buffer.getvalue(),
        width=width,
        height=height,
        boxes=boxes,
        classes=[1] * len(boxes),
        label_map=LM,
        source_id=source_id,
        format="png",
        **columns,
    )


def _boundary_records() -> list[ImageRecord]:
    """Boxes on and beside 32² and 96², as box areas and as stored ``image/object/area``."""
    on_100 = [[10, 10, 42, 42], [0, 0, 31, 33], [50, 50, 83, 83], [0, 0, 96, 96], [0, 0, 97, 97]]
    # Stored but 0: the API falls back to the box area.
    first = _record(100, on_100, "a", area=[0.0] * 5)
    # Stored areas that differ from the boxes (a COCO mask area is what create_coco_tf_record stores).
    second = _record(
        (640, 480), [[0, 0, 200, 200], [0, 0, 20, 20], [5, 5, 60, 60]], "b", area=[1024, 9216, 3000]
    )
    # No stored area at all; a crowd box of exactly 32² counts nowhere.
    third = _record(64, [[0, 0, 32, 32], [16, 16, 48, 48]], "c", is_crowd=[0, 1])
    return [first, second, replace(third, area=())]


def test_inspect_and_diagnose_count_the_buckets_cocoeval_evaluates(tmp_path: Path) -> None:
    (path,) = write_image_records(tmp_path / "eval.record", _boundary_records())
    data = read_annotated_set(path, LM)
    gt = data.ground_truth
    inspected = inspect_records(path, LM).area_buckets
    diagnosed = datasets.area_bucket_counts(gt)
    coco = _pycocotools_counts(gt.area, gt.iscrowd)
    assert inspected == diagnosed == {k: coco[k] for k in AREA_BUCKETS}
    # The three 32² areas are small and medium, the two 96² ones medium and large; the crowd box is out.
    assert inspected == {"small": 4, "medium": 7, "large": 3}
    assert gt.area.tolist()[:5] == [1024.0, 1023.0, 1089.0, 9216.0, 9409.0]
    assert gt.area.tolist()[5:8] == [1024.0, 9216.0, 3000.0]


def test_evaluated_area_is_float32_box_area_unless_stored() -> None:
    # 0.32 is not a float32; 0.32f * 100f rounds to exactly 32 in float32 (as the API computes it).
    assert evaluated_areas([[0.0, 0.0, 0.32, 0.32]], 100, 100).tolist() == [1024.0]
    assert evaluated_areas([[0.0, 0.0, 0.32, 0.32]], 100, 100, [-1.0]).tolist() == [1024.0]
    assert evaluated_areas(np.zeros((0, 4)), 10, 10).shape == (0,)


def test_evaluate_uses_the_area_the_api_evaluates() -> None:
    """tfod evaluate: groundtruth_area when > 0 (a COCO mask area), else the box area."""
    from types import SimpleNamespace

    from tfod_tools.evaluation.runner import EvaluationSession

    session = object.__new__(EvaluationSession)
    session.label_map, session._names = LM, {}
    image = SimpleNamespace(
        key=1,
        width=100,
        height=100,
        gt_boxes=np.array([[0.0, 0.0, 32.0, 32.0], [0.0, 0.0, 50.0, 50.0]]),
        gt_classes=np.array([1, 1]),
        gt_crowd=np.zeros(2, bool),
        gt_difficult=np.zeros(2, bool),
        gt_area=np.array([0.0, 9216.0]),
        det_boxes=np.zeros((0, 4)),
        det_classes=np.zeros(0, np.int64),
        det_scores=np.zeros(0),
    )
    data, _ = session._annotated(SimpleNamespace(images=[image]))
    assert data.ground_truth.area.tolist() == [1024.0, 9216.0]
    assert datasets.area_bucket_counts(data.ground_truth) == {"small": 1, "medium": 2, "large": 1}


@pytest.mark.slow
def test_evaluated_areas_match_the_api_export() -> None:
    """The API's path: boxes scaled to the original image, then ExportSingleImageGroundtruthToCoco."""
    from tfod_tools.odapi import compat

    compat.install()
    import tensorflow as tf
    from object_detection.core import box_list, box_list_ops
    from object_detection.metrics import coco_tools

    rng = np.random.default_rng(0)
    for width, height in ((100, 100), (640, 480), (333, 517)):
        edges = rng.integers(0, min(width, height), size=(40, 2))
        side = np.concatenate([[32, 96, 31, 33, 95, 97], rng.integers(1, 120, size=34)])
        px = np.stack([edges[:, 0], edges[:, 1], edges[:, 0] + side, edges[:, 1] + side], axis=1)
        boxes = np.clip(px / [width, height, width, height], 0, 1).astype(np.float32)
        stored = np.where(rng.random(40) < 0.3, rng.uniform(0, 2e4, 40), 0.0).astype(np.float32)
        yxyx = tf.constant(boxes[:, [1, 0, 3, 2]])
        absolute = box_list_ops.to_absolute_coordinates(
            box_list.BoxList(yxyx), height, width, check_range=False
        ).get()
        exported = coco_tools.ExportSingleImageGroundtruthToCoco(
            image_id="x",
            next_annotation_id=1,
            category_id_set={1},
            groundtruth_boxes=absolute.numpy(),
            groundtruth_classes=np.ones(40, dtype=np.int64),
            groundtruth_area=stored,
        )
        api = [a["area"] for a in exported]
        ours = evaluated_areas(boxes, width, height, stored.tolist()).tolist()
        assert ours == api
