"""COCO metrics equal pycocotools (and faster-coco-eval) to 1e-12, overall and per class."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfod_tools.data.coco import load_coco
from tfod_tools.metrics.coco import COCO_TAGS, STAT_KEYS, evaluate_coco

TOL = 1e-12


def _assert_close(ours: dict[str, float], ref: dict[str, float], what: str) -> None:
    for key in STAT_KEYS:
        assert abs(ours[key] - ref[key]) <= TOL, f"{what} {key}: ours {ours[key]!r} != reference {ref[key]!r}"


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_reference_val2014_100(oracles: SimpleNamespace, iou_type: str) -> None:
    ref_dir = oracles.data / "coco_val2014_100"
    expected = json.loads((ref_dir / "expected.json").read_text())[iou_type]
    dt_file = f"instances_val2014_fake{iou_type}100_results.json"
    data = load_coco(ref_dir / "instances_val2014_100.json", ref_dir / dt_file, masks=iou_type == "segm")
    res = evaluate_coco(data, "segm" if iou_type == "segm" else "bbox")
    _assert_close(res.stats, expected, f"{iou_type} expected.json")
    gt_doc = json.loads((ref_dir / "instances_val2014_100.json").read_text())
    dt_list = json.loads((ref_dir / dt_file).read_text())
    stats, per = oracles.pycoco_eval(data, iou_type, gt_doc=gt_doc, dt_list=dt_list)
    _assert_close(res.stats, stats, f"{iou_type} pycocotools")
    assert set(per) == set(res.per_class)
    for name, values in per.items():
        _assert_close(res.per_class[name], values, f"{iou_type} class {name}")
    assert res.precision.shape == (10, 101, 80, 4, 3)


@pytest.mark.parametrize("seed", range(16))
def test_random_sets_equal_pycocotools(oracles: SimpleNamespace, seed: int) -> None:
    data = oracles.random_coco_set(seed, with_ignore=seed % 2 == 1)
    res = evaluate_coco(data)
    stats, per = oracles.pycoco_eval(data)
    _assert_close(res.stats, stats, f"seed {seed}")
    for name, values in per.items():
        _assert_close(res.per_class[name], values, f"seed {seed} class {name}")


def test_random_sets_cover_the_corners(oracles: SimpleNamespace) -> None:
    sets = [oracles.random_coco_set(seed, with_ignore=True) for seed in range(16)]
    assert sum(bool(d.ground_truth.iscrowd.any()) for d in sets) >= 8
    assert sum(bool(d.ground_truth.ignore.any()) for d in sets) >= 8
    for d in sets:
        assert d.detections is not None
        per_image = np.unique(d.detections.image_ids, return_counts=True)[1]
        assert per_image.max() > 100  # more than maxDets in one image and class
        assert len(set(d.images.ids.tolist()) - set(d.ground_truth.image_ids.tolist())) >= 1
        assert len(set(d.images.ids.tolist()) - set(d.detections.image_ids.tolist())) >= 1
        assert len(np.unique(d.detections.scores)) < len(d.detections)  # tied scores
        areas = d.ground_truth.area
        assert areas.size == 0 or areas.min() < 32**2 or areas.max() > 96**2


@pytest.mark.parametrize("seed", range(100, 106))
def test_random_sets_equal_faster_coco_eval(oracles: SimpleNamespace, seed: int) -> None:
    data = oracles.random_coco_set(seed)
    _assert_close(evaluate_coco(data, per_class=False).stats, oracles.faster_eval(data), f"seed {seed}")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), n_images=st.integers(1, 6), ignore=st.booleans())
def test_hypothesis_sets_equal_pycocotools(
    oracles: SimpleNamespace, seed: int, n_images: int, ignore: bool
) -> None:
    data = oracles.random_coco_set(seed, with_ignore=ignore, n_images=n_images + 2)
    res = evaluate_coco(data)
    stats, per = oracles.pycoco_eval(data)
    _assert_close(res.stats, stats, "hypothesis")
    for name, values in per.items():
        _assert_close(res.per_class[name], values, f"hypothesis class {name}")


def test_configurable_thresholds_areas_and_max_dets(oracles: SimpleNamespace) -> None:
    data = oracles.random_coco_set(7)
    res = evaluate_coco(data, iou_thresholds=[0.3, 0.5], area_ranges={"all": (0, 1e10)}, max_dets=(5,))
    full = evaluate_coco(data, iou_thresholds=[0.5], max_dets=(5,))
    assert res.precision.shape[:1] == (2,) and res.precision.shape[3:] == (1, 1)
    assert "APs" not in res.stats and "AR5" in res.stats
    assert res.stats["AP50"] == pytest.approx(full.stats["AP50"], abs=TOL)
    assert res.stats["AP75"] == -1.0 and "not among" in res.reasons["AP75"]


def test_minus_one_reasons_and_tags() -> None:
    from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable

    data = AnnotatedSet(
        ImageTable.from_sizes([1], [500], [500]),
        {1: "a", 2: "b"},
        GroundTruth.from_arrays([1], [[0, 0, 10, 10]], [1]),
        Detections.from_arrays([1], [[0, 0, 10, 10]], [2], [0.5]),
    )
    res = evaluate_coco(data)
    assert res.stats["AP"] == 0.0
    assert res.per_class["b"]["AP"] == -1.0 and res.per_class_reasons["b"]["AP"] == "no ground truth"
    assert res.stats["APm"] == -1.0 and res.reasons["APm"] == "no ground truth in area medium"
    assert res.tags()["DetectionBoxes_Precision/mAP@.50IOU"] == res.stats["AP50"]
    assert set(COCO_TAGS) == set(STAT_KEYS)
    assert json.dumps(res.to_dict())


@pytest.mark.parametrize("seed", range(8))
def test_heavily_tied_scores_equal_pycocotools(oracles: SimpleNamespace, seed: int) -> None:
    data = oracles.tied_scores(oracles.random_coco_set(seed, with_ignore=seed % 2 == 1), seed)
    assert data.detections is not None
    _, counts = np.unique(
        np.stack([data.detections.image_ids, data.detections.scores]), axis=1, return_counts=True
    )
    assert counts.max() >= 4  # many ties inside one image
    res = evaluate_coco(data)
    stats, per = oracles.pycoco_eval(data)
    _assert_close(res.stats, stats, f"tied seed {seed}")
    for name, values in per.items():
        _assert_close(res.per_class[name], values, f"tied seed {seed} class {name}")
    # faster-coco-eval knows no ``ignore`` flag: compare it on the same set without one
    plain = oracles.tied_scores(oracles.random_coco_set(seed), seed)
    _assert_close(
        evaluate_coco(plain, per_class=False).stats, oracles.faster_eval(plain), f"tied {seed} faster"
    )


def test_ties_go_by_image_id_then_input_order(oracles: SimpleNamespace) -> None:
    """Two tied detections, a false positive and a true positive: which comes first changes AP."""
    one = oracles.two_tied
    seen = set()
    for fp_image, tp_image, rows in [
        (1, 2, [0, 1]),
        (1, 2, [1, 0]),
        (2, 1, [0, 1]),
        (1, 1, [0, 1]),
        (1, 1, [1, 0]),
    ]:
        data = one(fp_image, tp_image, rows)
        ours = evaluate_coco(data).stats
        _assert_close(ours, oracles.pycoco_eval(data)[0], f"{fp_image} {tp_image} {rows}")
        seen.add(round(ours["AP"], 6))
    assert len(seen) == 2  # the order matters, and pycocotools' rule decides it
    assert evaluate_coco(one(1, 2, [1, 0])).stats["AP"] < evaluate_coco(one(2, 1, [1, 0])).stats["AP"]
    assert evaluate_coco(one(1, 1, [0, 1])).stats["AP"] < evaluate_coco(one(1, 1, [1, 0])).stats["AP"]


def _decimal_boxes_at_thresholds(seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Boxes in 0.1 px steps; each detection shares a corner with its box and covers a threshold's share.

    In real numbers the IoU is exactly an IoU threshold; in floating point pycocotools rounds some just
    below it, and ``(x + w) - x`` differs from ``w`` in the last bit often enough to round others across.
    """
    rng = np.random.default_rng(seed)
    images = [{"id": i, "width": 400, "height": 400} for i in range(1, 5)]
    anns: list[dict[str, Any]] = []
    dets: list[dict[str, Any]] = []
    for im in images:
        for cell in range(16):
            x, y = (
                100.0 * (cell % 4) + rng.integers(0, 300) / 10,
                100.0 * (cell // 4) + rng.integers(0, 300) / 10,
            )
            w, h = rng.integers(10, 600) / 10, rng.integers(10, 600) / 10
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": im["id"],
                    "category_id": 1,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
            t = float(rng.choice([0.5, 0.6, 0.7, 0.8, 0.9]))
            dets.append(
                {
                    "image_id": im["id"],
                    "category_id": 1,
                    "bbox": [x, y, round(w * t, 1), h],
                    "score": rng.random(),
                }
            )
    gt = {"info": {}, "images": images, "categories": [{"id": 1, "name": "a"}], "annotations": anns}
    return gt, dets


def test_decimal_boxes_at_iou_thresholds_equal_pycocotools(oracles: SimpleNamespace, tmp_path: Any) -> None:
    """Box IoU is pycocotools' own arithmetic on [x, y, w, h]: matches at a threshold agree to the bit."""
    from tfod_tools.metrics.boxes import coco_pair_iou, coco_xywh, pair_iou

    flips = 0
    for seed in range(4):
        gt, dets = _decimal_boxes_at_thresholds(seed)
        (tmp_path / "gt.json").write_text(json.dumps(gt))
        (tmp_path / "dt.json").write_text(json.dumps(dets))
        data = load_coco(tmp_path / "gt.json", tmp_path / "dt.json")
        ours = evaluate_coco(data).stats
        _assert_close(ours, oracles.pycoco_eval(data, gt_doc=gt, dt_list=dets)[0], f"file seed {seed}")
        # in memory (no source w, h): pycocotools on what we would write, w = x2 - x1
        assert data.detections is not None
        bare = replace(
            data,
            ground_truth=replace(data.ground_truth, wh=None),
            detections=replace(data.detections, wh=None),
        )
        _assert_close(evaluate_coco(bare).stats, oracles.pycoco_eval(bare)[0], f"memory seed {seed}")
        thr = np.linspace(0.5, 0.95, 10)
        exact = coco_pair_iou(
            coco_xywh(data.detections.boxes, data.detections.wh),
            coco_xywh(data.ground_truth.boxes, data.ground_truth.wh),
        )
        plain = pair_iou(data.detections.boxes, data.ground_truth.boxes)
        flips += int(np.sum((exact[:, None] >= thr) != (plain[:, None] >= thr)))
    assert flips > 0  # the x1, x2 arithmetic would have matched some of these differently
