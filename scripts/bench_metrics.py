"""Benchmark: COCO 12 statistics + per-class AP from in-memory arrays, three engines.

A seeded synthetic COCO-like set (default 5,000 images, 80 classes, ~7 ground-truth boxes and 100
detections per image). Each engine runs in its own fresh process, starting from the same numpy
arrays and including the conversion it needs (tfod_tools: an AnnotatedSet; pycocotools and
faster-coco-eval: COCO dicts, as the TF OD API builds them). Prints wall seconds, peak resident
memory above the process's baseline (after the arrays exist) and ratios; checks the three agree.

    .venv/bin/python scripts/bench_metrics.py            # full size
    .venv/bin/python scripts/bench_metrics.py --images 500
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def make_arrays(n_images: int, n_classes: int = 80, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded synthetic ground truth and detections (x1, y1, x2, y2 in pixels)."""
    rng = np.random.default_rng(seed)
    w = rng.integers(320, 1024, n_images).astype(float)
    h = rng.integers(240, 768, n_images).astype(float)
    n_gt = rng.poisson(7, n_images)
    g_img = np.repeat(np.arange(n_images), n_gt)
    gw = np.exp(rng.uniform(np.log(8), np.log(0.8 * w[g_img])))
    gh = np.exp(rng.uniform(np.log(8), np.log(0.8 * h[g_img])))
    gx = rng.uniform(0, w[g_img] - gw)
    gy = rng.uniform(0, h[g_img] - gh)
    g_cls = rng.integers(1, n_classes + 1, g_img.shape[0])
    n_dt = 100
    d_img = np.repeat(np.arange(n_images), n_dt)
    d_cls = rng.integers(1, n_classes + 1, d_img.shape[0])
    dw = np.exp(rng.uniform(np.log(8), np.log(0.8 * w[d_img])))
    dh = np.exp(rng.uniform(np.log(8), np.log(0.8 * h[d_img])))
    dx = rng.uniform(0, w[d_img] - dw)
    dy = rng.uniform(0, h[d_img] - dh)
    scores = rng.random(d_img.shape[0]) * 0.5
    # About 3 detections per ground-truth box sit on it (jittered, mostly the right class).
    first = np.concatenate([[0], np.cumsum(n_gt)[:-1]])
    for _round in range(3):
        has = n_gt > 0
        pick = first[has] + (rng.integers(0, 1 << 30, has.sum()) % n_gt[has])
        slots = np.flatnonzero(has) * n_dt + rng.integers(0, n_dt, has.sum())
        for _ in range(2):  # a few per image and copy
            j = rng.normal(0, 0.1, (pick.shape[0], 4))
            dw[slots] = gw[pick] * np.exp(j[:, 2])
            dh[slots] = gh[pick] * np.exp(j[:, 3])
            dx[slots] = gx[pick] + j[:, 0] * gw[pick]
            dy[slots] = gy[pick] + j[:, 1] * gh[pick]
            d_cls[slots] = np.where(rng.random(pick.shape[0]) < 0.85, g_cls[pick], d_cls[slots])
            scores[slots] = 0.3 + 0.7 * rng.random(pick.shape[0])
            pick = first[has] + (rng.integers(0, 1 << 30, has.sum()) % n_gt[has])
            slots = np.flatnonzero(has) * n_dt + rng.integers(0, n_dt, has.sum())
    return {
        "image_ids": np.arange(1, n_images + 1),
        "widths": w,
        "heights": h,
        "gt_image": g_img + 1,
        "gt_boxes": np.stack([gx, gy, gx + gw, gy + gh], 1),
        "gt_class": g_cls,
        "dt_image": d_img + 1,
        "dt_boxes": np.stack([dx, dy, dx + dw, dy + dh], 1),
        "dt_class": d_cls,
        "dt_score": scores,
        "n_classes": np.array(n_classes),
    }


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def run_tfod(a: dict[str, np.ndarray]) -> tuple[dict[str, float], dict[str, float]]:
    from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
    from tfod_tools.metrics.coco import evaluate_coco

    data = AnnotatedSet(
        ImageTable.from_sizes(a["image_ids"], a["widths"], a["heights"]),
        {c: str(c) for c in range(1, int(a["n_classes"]) + 1)},
        GroundTruth.from_arrays(a["gt_image"], a["gt_boxes"], a["gt_class"]),
        Detections.from_arrays(a["dt_image"], a["dt_boxes"], a["dt_class"], a["dt_score"]),
    )
    res = evaluate_coco(data)
    return res.stats, {k: v["AP"] for k, v in res.per_class.items()}


def _coco_dicts(a: dict[str, np.ndarray]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    g, d = a["gt_boxes"], a["dt_boxes"]
    g_xywh = np.concatenate([g[:, :2], g[:, 2:] - g[:, :2]], 1).tolist()
    d_xywh = np.concatenate([d[:, :2], d[:, 2:] - d[:, :2]], 1).tolist()
    images = [
        {"id": int(i), "width": float(w), "height": float(h)}
        for i, w, h in zip(a["image_ids"], a["widths"], a["heights"], strict=False)
    ]
    anns = [
        {"id": k + 1, "image_id": int(i), "category_id": int(c), "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
        for k, (i, c, b) in enumerate(
            zip(a["gt_image"].tolist(), a["gt_class"].tolist(), g_xywh, strict=False)
        )
    ]
    cats = [{"id": c, "name": str(c)} for c in range(1, int(a["n_classes"]) + 1)]
    res = [
        {"image_id": i, "category_id": c, "bbox": b, "score": s}
        for i, c, b, s in zip(
            a["dt_image"].tolist(), a["dt_class"].tolist(), d_xywh, a["dt_score"].tolist(), strict=False
        )
    ]
    return {"info": {}, "licenses": [], "images": images, "annotations": anns, "categories": cats}, res


def _per_class_ap(precision: np.ndarray, cat_ids: list[int]) -> dict[str, float]:
    out = {}
    for k, c in enumerate(cat_ids):
        s = precision[:, :, k, 0, -1]
        out[str(c)] = float(np.mean(s[s > -1])) if (s > -1).any() else -1.0
    return out


def run_pycocotools(a: dict[str, np.ndarray]) -> tuple[dict[str, float], dict[str, float]]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_doc, res = _coco_dicts(a)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_doc
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(res), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dict(zip(KEYS, map(float, ev.stats), strict=False)), _per_class_ap(
        ev.eval["precision"], ev.params.catIds
    )


def run_faster(a: dict[str, np.ndarray]) -> tuple[dict[str, float], dict[str, float]]:
    from faster_coco_eval import COCO, COCOeval_faster

    gt_doc, res = _coco_dicts(a)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_doc)
        ev = COCOeval_faster(gt, gt.loadRes(res), "bbox", print_function=lambda *x, **k: None)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dict(zip(KEYS, map(float, ev.stats[:12]), strict=False)), _per_class_ap(
        ev.eval["precision"], list(ev.params.catIds)
    )


ENGINES = {"tfod_tools": run_tfod, "faster-coco-eval": run_faster, "pycocotools": run_pycocotools}


def _child(engine: str, n_images: int, seed: int) -> None:
    arrays = make_arrays(n_images, seed=seed)
    import_start = time.perf_counter()
    if engine == "tfod_tools":
        import tfod_tools.metrics.coco  # noqa: F401
    elif engine == "pycocotools":
        import pycocotools.cocoeval  # noqa: F401
    else:
        import faster_coco_eval  # noqa: F401
    del import_start
    base = _rss_kib("VmRSS")
    _reset_peak()
    t0 = time.perf_counter()
    stats, per_class = ENGINES[engine](arrays)
    seconds = time.perf_counter() - t0
    peak = _rss_kib("VmHWM")
    print(
        json.dumps(
            {"seconds": seconds, "peak_mib": (peak - base) / 1024, "stats": stats, "per_class": per_class}
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.images, args.seed)
        return
    arrays = make_arrays(args.images, seed=args.seed)
    print(
        f"synthetic set: {args.images} images, {int(arrays['n_classes'])} classes, "
        f"{len(arrays['gt_class'])} ground-truth boxes, {len(arrays['dt_class'])} detections "
        f"(seed {args.seed})"
    )
    results: dict[str, dict[str, Any]] = {}
    for engine in args.engines.split(","):
        cmd = [
            sys.executable,
            __file__,
            "--child",
            engine,
            "--images",
            str(args.images),
            "--seed",
            str(args.seed),
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[engine] = json.loads(out.strip().splitlines()[-1])
        print(
            f"  {engine:<17} {results[engine]['seconds']:8.2f} s   "
            f"peak +{results[engine]['peak_mib']:8.1f} MiB",
            flush=True,
        )
    ours = results.get("tfod_tools")
    print()
    print(
        "| engine | seconds | peak memory (MiB above baseline) | time ratio tfod_tools / engine "
        "| max abs diff of 12 stats + per-class AP |"
    )
    print("|---|---:|---:|---:|---:|")
    for engine, r in results.items():
        diff = 0.0
        if ours is not None:
            diff = max(abs(ours["stats"][k] - r["stats"][k]) for k in KEYS)
            diff = max([diff] + [abs(ours["per_class"][k] - v) for k, v in r["per_class"].items()])
        ratio = ours["seconds"] / r["seconds"] if ours else float("nan")
        print(f"| {engine} | {r['seconds']:.2f} | {r['peak_mib']:.0f} | {ratio:.3f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
