"""Results files as pycocotools' ``COCO.loadRes`` reads them: which area decides a detection's area range.

Mask R-CNN exporters write every result with both ``bbox`` and ``segmentation``; ``loadRes`` then takes
its bbox branch (decided by the first result) and gives each detection the *box's* area ``w * h``,
not the mask's, even for ``iouType="segm"``. Results with only ``segmentation`` get the mask's area
and bounding box; results with only ``bbox`` evaluated as masks get their box as a polygon. These
sets put box and mask areas in different area ranges, so a wrong choice changes APs/APm/ARs/ARm.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tfod_tools.data.coco import load_coco
from tfod_tools.errors import TfodError
from tfod_tools.metrics.coco import STAT_KEYS, evaluate_coco

TOL = 1e-12
SIZES = [(300, 200), (400, 320), (250, 250)]  # (width, height)


def _rle(mask: np.ndarray) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(x) for x in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _blob(rng: np.random.Generator, w: int, h: int, box: list[float], fill: float) -> np.ndarray:
    """A mask inside ``box`` covering about ``fill`` of it (a smaller centred rectangle)."""
    x, y, bw, bh = box
    s = float(np.sqrt(fill))
    cx, cy = x + bw / 2, y + bh / 2
    m = np.zeros((h, w), dtype=bool)
    x0, x1 = int(max(cx - s * bw / 2, 0)), int(min(cx + s * bw / 2, w))
    y0, y1 = int(max(cy - s * bh / 2, 0)), int(min(cy + s * bh / 2, h))
    m[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)] = True
    return m


def _random_docs(seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Ground truth with polygon and RLE masks; results with bbox + segmentation whose areas disagree."""
    rng = np.random.default_rng(seed)
    images = [
        {"id": i + 1, "width": w, "height": h, "file_name": f"{i}.jpg"} for i, (w, h) in enumerate(SIZES)
    ]
    cats = [{"id": 1, "name": "a"}, {"id": 3, "name": "b"}]
    anns: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for im in images:
        w, h = im["width"], im["height"]
        for _ in range(int(rng.integers(2, 7))):
            side = float(np.exp(rng.uniform(np.log(12), np.log(140))))
            bw, bh = min(side * rng.uniform(0.7, 1.3), w - 2), min(side * rng.uniform(0.7, 1.3), h - 2)
            x, y = float(rng.uniform(0, w - bw)), float(rng.uniform(0, h - bh))
            box = [round(x, 2), round(y, 2), round(bw, 2), round(bh, 2)]
            cat = int(rng.choice([1, 3]))
            if rng.random() < 0.5:
                x1, y1, x2, y2 = box[0], box[1], box[0] + box[2], box[1] + box[3]
                segm: Any = [[x1, y1, x2, y1, x2, y2, x1, y2]]
                area = box[2] * box[3]
            else:
                m = _blob(rng, w, h, box, float(rng.uniform(0.3, 1.0)))
                segm, area = _rle(m), float(m.sum())
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": im["id"],
                    "category_id": cat,
                    "bbox": box,
                    "area": area,
                    "iscrowd": int(rng.random() < 0.08),
                    "segmentation": segm,
                }
            )
            for _ in range(int(rng.integers(0, 4))):
                j = rng.normal(0, 0.08, size=4)
                dbox = [
                    box[0] + j[0] * box[2],
                    box[1] + j[1] * box[3],
                    box[2] * np.exp(j[2]),
                    box[3] * np.exp(j[3]),
                ]
                dbox = [float(np.clip(dbox[0], 0, w - 2)), float(np.clip(dbox[1], 0, h - 2)), *dbox[2:]]
                dbox[2], dbox[3] = min(dbox[2], w - dbox[0]), min(dbox[3], h - dbox[1])
                # the mask covers 10 %..100 % of the box: box area and mask area often in different ranges
                fill = float(rng.choice([0.1, 0.25, 0.5, 1.0]))
                results.append(
                    {
                        "image_id": im["id"],
                        "category_id": cat if rng.random() < 0.85 else 4 - cat,
                        "bbox": [round(v, 3) for v in dbox],
                        "segmentation": _rle(_blob(rng, w, h, dbox, fill)),
                        "score": round(float(rng.random()), 2),
                    }
                )
    gt = {"info": {}, "licenses": [], "images": images, "categories": cats, "annotations": anns}
    return gt, results


def _write(tmp: Path, gt: dict[str, Any], dt: list[dict[str, Any]]) -> tuple[Path, Path]:
    (tmp / "gt.json").write_text(json.dumps(gt))
    (tmp / "dt.json").write_text(json.dumps(dt))
    return tmp / "gt.json", tmp / "dt.json"


def _ours(
    gt_path: Path, dt_path: Path, iou_type: str
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    res = evaluate_coco(load_coco(gt_path, dt_path, masks=iou_type == "segm"), iou_type)  # type: ignore[arg-type]
    return res.stats, res.per_class


def _faster(gt: dict[str, Any], dt: list[dict[str, Any]], iou_type: str) -> dict[str, float]:
    from faster_coco_eval import COCO, COCOeval_faster

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(copy.deepcopy(gt))
        coco_dt = coco_gt.loadRes(copy.deepcopy(dt))
        ev = COCOeval_faster(coco_gt, coco_dt, iou_type, print_function=lambda *a, **k: None)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dict(zip(STAT_KEYS, (float(x) for x in ev.stats[:12]), strict=False))


def _assert_same(ours: dict[str, float], ref: dict[str, float], what: str) -> None:
    for key in STAT_KEYS:
        assert abs(ours[key] - ref[key]) <= TOL, f"{what} {key}: ours {ours[key]!r} != reference {ref[key]!r}"


def _areas_disagree(gt: dict[str, Any], dt: list[dict[str, Any]]) -> int:
    """How many detections have box and mask areas in different COCO area ranges."""
    from pycocotools import mask as mask_utils

    def bucket(a: float) -> int:
        return int(a > 32**2) + int(a > 96**2)

    return sum(
        bucket(d["bbox"][2] * d["bbox"][3]) != bucket(float(mask_utils.area(d["segmentation"]))) for d in dt
    )


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
@pytest.mark.parametrize("seed", range(6))
def test_bbox_and_segmentation_results_equal_pycocotools(
    oracles: SimpleNamespace, tmp_path: Path, seed: int, iou_type: str
) -> None:
    gt, dt = _random_docs(seed)
    assert _areas_disagree(gt, dt) >= 3
    ours, per = _ours(*_write(tmp_path, gt, dt), iou_type)
    stats, ref_per = oracles.pycoco_eval(None, iou_type, gt_doc=gt, dt_list=dt)
    _assert_same(ours, stats, f"seed {seed} {iou_type}")
    for name, values in ref_per.items():
        _assert_same(per[name], values, f"seed {seed} {iou_type} class {name}")
    _assert_same(ours, _faster(gt, dt, iou_type), f"seed {seed} {iou_type} faster-coco-eval")


def test_the_box_area_decides_for_segm_results_with_a_bbox(oracles: SimpleNamespace, tmp_path: Path) -> None:
    """One unmatched detection: box 50 x 50 (medium), mask 20 x 20 (small). loadRes: it counts as medium."""
    w, h = 300, 200
    gt_mask = np.zeros((h, w), dtype=bool)
    gt_mask[100:120, 100:120] = True
    gt = {
        "info": {},
        "images": [{"id": 1, "width": w, "height": h}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [100, 100, 20, 20], "area": 400, "iscrowd": 0,
             "segmentation": _rle(gt_mask)},
        ],
    }  # fmt: skip
    fp_mask = np.zeros((h, w), dtype=bool)
    fp_mask[20:40, 150:170] = True
    dt = [
        {
            "image_id": 1,
            "category_id": 1,
            "bbox": [150, 20, 50, 50],
            "segmentation": _rle(fp_mask),
            "score": 0.9,
        },
        {
            "image_id": 1,
            "category_id": 1,
            "bbox": [100, 100, 20, 20],
            "segmentation": _rle(gt_mask),
            "score": 0.8,
        },
    ]
    ours, _ = _ours(*_write(tmp_path, gt, dt), "segm")
    stats, _ = oracles.pycoco_eval(None, "segm", gt_doc=gt, dt_list=dt)
    assert stats["APs"] == pytest.approx(1.0)  # the false positive is outside "small": its box area is 2500
    _assert_same(ours, stats, "segm")
    # Without the bbox, the mask area (400, small) decides: the false positive now costs APs.
    for d in dt:
        del d["bbox"]
    ours, _ = _ours(*_write(tmp_path, gt, dt), "segm")
    stats, _ = oracles.pycoco_eval(None, "segm", gt_doc=gt, dt_list=dt)
    assert stats["APs"] < 1.0
    _assert_same(ours, stats, "segm without bbox")


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_segmentation_only_results_equal_pycocotools(
    oracles: SimpleNamespace, tmp_path: Path, iou_type: str
) -> None:
    """No bbox: area = the mask's pixel count, box = its bounding box (toBbox), for bbox IoU too."""
    gt, dt = _random_docs(11)
    for k, d in enumerate(dt):
        if k % 3 or k == 0:
            del d["bbox"]  # loadRes keeps a later result's own bbox; the first decides the branch
    ours, per = _ours(*_write(tmp_path, gt, dt), iou_type)
    stats, ref_per = oracles.pycoco_eval(None, iou_type, gt_doc=gt, dt_list=dt)
    _assert_same(ours, stats, iou_type)
    for name, values in ref_per.items():
        _assert_same(per[name], values, f"{iou_type} class {name}")
    _assert_same(ours, _faster(gt, dt, iou_type), f"{iou_type} faster-coco-eval")


def test_bbox_only_results_evaluated_as_masks_are_box_polygons(
    oracles: SimpleNamespace, tmp_path: Path
) -> None:
    gt, dt = _random_docs(12)
    for d in dt:
        del d["segmentation"]
    ours, _ = _ours(*_write(tmp_path, gt, dt), "segm")
    stats, _ = oracles.pycoco_eval(None, "segm", gt_doc=gt, dt_list=dt)
    _assert_same(ours, stats, "segm of boxes")


def test_a_later_result_without_bbox_is_named(tmp_path: Path) -> None:
    gt, dt = _random_docs(13)
    del dt[2]["bbox"]
    with pytest.raises(TfodError, match=r"detections without bbox: #2"):
        load_coco(*_write(tmp_path, gt, dt), masks=True)
