"""Shared fixtures of the metrics tests: random COCO-like data sets and the pycocotools oracles."""

from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tfod_tools.data.coco import coco_ground_truth, coco_results
from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable

DATA = Path(__file__).resolve().parents[1] / "data"
KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def random_coco_set(seed: int, *, with_ignore: bool = False, n_images: int | None = None) -> AnnotatedSet:
    """A small random data set exercising every corner of COCOeval.

    Crowd (and optionally ignored) ground truth, images without ground truth or detections, classes
    present on one side only, tied scores, tiny and huge boxes, an image with > 100 detections of a class.
    """
    rng = np.random.default_rng(seed)
    n_img = int(rng.integers(2, 10)) if n_images is None else n_images
    n_cat = int(rng.integers(2, 6))
    cat_ids = sorted(rng.choice(np.arange(1, 40), size=n_cat + 1, replace=False).tolist())
    gt_cats, dt_cats = cat_ids[:-1], cat_ids[1:]  # first: gt only; last: detections only
    img_ids = sorted(rng.choice(np.arange(1, 10_000), size=n_img, replace=False).tolist())
    widths = rng.integers(40, 1500, size=n_img).astype(float)
    heights = rng.integers(40, 1500, size=n_img).astype(float)
    g_rows: list[Any] = []
    d_rows: list[Any] = []
    for i, (iid, w, h) in enumerate(zip(img_ids, widths, heights, strict=False)):
        n_gt = 0 if i == 0 else int(rng.integers(0, 9))
        boxes = []
        for _ in range(n_gt):
            bw = float(np.exp(rng.uniform(0, np.log(w))))
            bh = float(np.exp(rng.uniform(0, np.log(h))))
            x, y = float(rng.uniform(0, w - bw)), float(rng.uniform(0, h - bh))
            if rng.random() < 0.3:
                x, y, bw, bh = round(x), round(y), max(round(bw), 1), max(round(bh), 1)
            c = int(rng.choice(gt_cats))
            area = bw * bh if rng.random() < 0.6 else bw * bh * float(rng.uniform(0.3, 1.0))
            crowd = rng.random() < 0.1
            ign = with_ignore and rng.random() < 0.1
            g_rows.append((iid, [x, y, x + bw, y + bh], c, area, crowd, ign))
            boxes.append((x, y, bw, bh, c))
        n_dt = 0 if i == 1 else int(rng.integers(0, 25))
        many = i == 2
        for k in range(n_dt + (120 if many else 0)):
            if boxes and rng.random() < 0.7:
                x, y, bw, bh, c = boxes[int(rng.integers(len(boxes)))]
                j = rng.normal(0, 0.15, size=4)
                x, y = x + j[0] * bw, y + j[1] * bh
                bw, bh = bw * float(np.exp(j[2])), bh * float(np.exp(j[3]))
                if rng.random() < 0.2:
                    c = int(rng.choice(dt_cats))
            else:
                bw = float(np.exp(rng.uniform(0, np.log(w))))
                bh = float(np.exp(rng.uniform(0, np.log(h))))
                x, y = float(rng.uniform(0, w - bw)), float(rng.uniform(0, h - bh))
                c = int(rng.choice(dt_cats))
            if many and k >= n_dt:
                c = dt_cats[0]
            score = float(rng.random())
            if rng.random() < 0.4:
                score = round(score, 1)  # ties
            d_rows.append((iid, [x, y, x + bw, y + bh], c, score))
    gt = GroundTruth.from_arrays(
        image_ids=[r[0] for r in g_rows],
        boxes=np.array([r[1] for r in g_rows]).reshape(-1, 4),
        classes=[r[2] for r in g_rows],
        area=[r[3] for r in g_rows],
        iscrowd=[r[4] for r in g_rows],
        ignore=[r[5] for r in g_rows],
    )
    dt = Detections.from_arrays(
        image_ids=[r[0] for r in d_rows],
        boxes=np.array([r[1] for r in d_rows]).reshape(-1, 4),
        classes=[r[2] for r in d_rows],
        scores=[r[3] for r in d_rows],
    )
    images = ImageTable.from_sizes(img_ids, widths, heights)
    return AnnotatedSet(images, {c: f"c{c}" for c in cat_ids}, gt, dt)


def tied_scores(data: AnnotatedSet, seed: int, levels: int = 8) -> AnnotatedSet:
    """Scores quantised to ``levels`` values: ties within an image and across images, TP and FP mixed."""
    from dataclasses import replace

    assert data.detections is not None
    rng = np.random.default_rng(seed)
    scores = (np.floor(rng.random(len(data.detections)) * levels) + 1) / levels
    return replace(data, detections=replace(data.detections, scores=scores))


def two_tied(fp_image: int, tp_image: int, rows: list[int]) -> AnnotatedSet:
    """Two images, one box; a false positive in ``fp_image`` and a true positive in ``tp_image``, both
    scored 0.5, in the input order ``rows`` (0: the false positive): which counts first decides AP."""
    dets = [(fp_image, [60, 60, 70, 70]), (tp_image, [0, 0, 10, 10])]
    dets = [dets[k] for k in rows]
    return AnnotatedSet(
        ImageTable.from_sizes([1, 2], [100, 100], [100, 100]),
        {1: "a"},
        GroundTruth.from_arrays([tp_image], [[0, 0, 10, 10]], [1]),
        Detections.from_arrays([d[0] for d in dets], [d[1] for d in dets], [1, 1], [0.5, 0.5]),
    )


def _summaries(precision: np.ndarray, recall: np.ndarray, params: Any, k: int | None) -> dict[str, float]:
    """pycocotools' summarize(), optionally for one category index ``k``."""

    def one(ap: bool, iou: float | None, area: str, max_det: int) -> float:
        a = params.areaRngLbl.index(area)
        m = list(params.maxDets).index(max_det)
        s = precision[:, :, :, a, m] if ap else recall[:, :, a, m]
        if iou is not None:
            s = s[np.where(iou == params.iouThrs)[0]]
        if k is not None:
            s = s[:, :, k] if ap else s[:, k]
        valid = s[s > -1]
        return float(np.mean(valid)) if valid.size else -1.0

    md = params.maxDets
    return {
        "AP": one(True, None, "all", md[2]),
        "AP50": one(True, 0.5, "all", md[2]),
        "AP75": one(True, 0.75, "all", md[2]),
        "APs": one(True, None, "small", md[2]),
        "APm": one(True, None, "medium", md[2]),
        "APl": one(True, None, "large", md[2]),
        "AR1": one(False, None, "all", md[0]),
        "AR10": one(False, None, "all", md[1]),
        "AR100": one(False, None, "all", md[2]),
        "ARs": one(False, None, "small", md[2]),
        "ARm": one(False, None, "medium", md[2]),
        "ARl": one(False, None, "large", md[2]),
    }


def pycoco_eval(
    data: AnnotatedSet,
    iou_type: str = "bbox",
    *,
    gt_doc: dict[str, Any] | None = None,
    dt_list: list[dict[str, Any]] | None = None,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """The oracle: pycocotools' COCOeval (with the ``ignore`` flag honoured) -> stats, per-class stats."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_doc = coco_ground_truth(data) if gt_doc is None else copy.deepcopy(gt_doc)
    for ann in gt_doc["annotations"]:
        ann["tfod_ignore"] = int(ann.get("ignore", 0))
    dt_list = (
        coco_results(data.detections or Detections.empty()) if dt_list is None else copy.deepcopy(dt_list)
    )

    class Eval(COCOeval):
        def _prepare(self) -> None:
            super()._prepare()
            for gts in self._gts.values():
                for g in gts:
                    g["ignore"] = int(bool(g.get("iscrowd", 0)) or bool(g.get("tfod_ignore", 0)))

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt_doc
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dt_list) if dt_list else _empty_res(coco_gt)
        ev = Eval(coco_gt, coco_dt, iou_type)
        ev.evaluate()
        ev.accumulate()
    prec, rec = ev.eval["precision"], ev.eval["recall"]
    names = {c["id"]: c["name"] for c in gt_doc["categories"]}
    stats = _summaries(prec, rec, ev.params, None)
    per = {names[c]: _summaries(prec, rec, ev.params, k) for k, c in enumerate(ev.params.catIds)}
    return stats, per


def _empty_res(coco_gt: Any) -> Any:
    from pycocotools.coco import COCO

    res = COCO()
    res.dataset = {
        "images": coco_gt.dataset["images"],
        "categories": coco_gt.dataset["categories"],
        "annotations": [],
    }
    res.createIndex()
    return res


def faster_eval(data: AnnotatedSet, iou_type: str = "bbox") -> dict[str, float]:
    """The second oracle: faster-coco-eval's COCOeval_faster (12 statistics)."""
    from faster_coco_eval import COCO, COCOeval_faster

    gt_doc = coco_ground_truth(data)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt_doc)
        coco_dt = coco_gt.loadRes(coco_results(data.detections or Detections.empty()))
        ev = COCOeval_faster(coco_gt, coco_dt, iou_type, print_function=lambda *a, **k: None)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dict(zip(KEYS, (float(x) for x in ev.stats[:12]), strict=False))


@pytest.fixture()
def oracles() -> SimpleNamespace:
    """Helpers for tests: random sets and oracles."""
    return SimpleNamespace(
        random_coco_set=random_coco_set,
        tied_scores=tied_scores,
        two_tied=two_tied,
        pycoco_eval=pycoco_eval,
        faster_eval=faster_eval,
        keys=KEYS,
        data=DATA,
    )
