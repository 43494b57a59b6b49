"""Benchmark near-duplicate detection (``tfod_tools.data.dedup``): recall, false positives, speed.

Images: ``--images`` textured synthetic photographs (smooth multi-scale colour noise with a few
random shapes on top, 320x240 JPEG quality 92; made here, seeded) and as many ``tfod_tools.data.synthetic``
"shapes" images (flat backgrounds with shapes: the hard case for false positives, every image looks
alike). For each image three planted copies: re-encoded at JPEG quality 60, resized to 0.5x, cropped
by 5 % (2.5 % each side) and re-encoded.

Reported, for pHash and dHash side by side and each Hamming threshold in ``--thresholds``:

- recall: share of planted copies within the threshold of their original, per kind of copy;
- false-positive rate: share of pairs of *unrelated* originals (all pairs within each family)
  within the threshold; the distance percentiles of those pairs.

Speed, in images per second, all on the same encoded JPEGs in one process: full decode alone
(``Image.open(...).convert("RGB")``, what ``tfod inspect`` would otherwise not do) is the peer;
pHash and dHash (which decode at reduced scale), and sha256, are printed as ratios of its time
per image. Target (issue 16): hashing time per image <= 1.3x decoding alone.

Usage::

    .venv/bin/python scripts/bench_dedup.py [--images 200] [--thresholds 4,6,8,10,12,14] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from tfod_tools.data.dedup import (
    DEFAULT_MAX_DISTANCE,
    ImageHashes,
    calibrated_distance,
    dhash,
    find_duplicates,
    find_leaks,
    hamming,
    phash,
)
from tfod_tools.data.synthetic import generate_images


def _jpeg(img: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def textured(rng: np.random.Generator, width: int = 320, height: int = 240) -> Image.Image:
    """Smooth colour noise at several scales plus a few random rectangles and ellipses."""
    from PIL import ImageDraw

    pixels = np.zeros((height, width, 3), dtype=np.float32)
    for cells, weight in ((3, 1.0), (6, 0.5), (12, 0.25), (24, 0.12)):
        small = Image.fromarray((rng.random((cells, cells, 3)) * 255).astype(np.uint8))
        pixels += weight * np.asarray(small.resize((width, height), Image.Resampling.BICUBIC), np.float32)
    pixels = 255 * (pixels - pixels.min()) / max(float(np.ptp(pixels)), 1.0)
    img = Image.fromarray(pixels.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
        x1, y1 = x0 + int(rng.integers(20, 120)), y0 + int(rng.integers(20, 100))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)((x0, y0, x1, y1), fill=colour)
    return img


def copies(img: Image.Image) -> dict[str, bytes]:
    """The planted copies of one original."""
    w, h = img.size
    dx, dy = round(w * 0.025), round(h * 0.025)
    return {
        "reencoded_q60": _jpeg(img, 60),
        "resized_0.5x": _jpeg(img.resize((w // 2, h // 2), Image.Resampling.BILINEAR), 92),
        "cropped_5pct": _jpeg(img.crop((dx, dy, w - dx, h - dy)), 92),
    }


def _rate(fn: Callable[[bytes], Any], data: list[bytes], repeat: int) -> float:
    """Images per second, fastest of ``repeat`` passes."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for item in data:
            fn(item)
        best = min(best, time.perf_counter() - start)
    return len(data) / best


def _decode(data: bytes) -> None:
    Image.open(io.BytesIO(data)).convert("RGB")


def _pipeline(originals: list[bytes], planted: list[dict[str, bytes]]) -> dict[str, Any]:
    """Recall and false positives of the library's own pair finding (tone check, calibration)."""
    base = ImageHashes()
    for k, data in enumerate(originals):
        base.add("originals", k, "", data)
    limit, p1, confirm = calibrated_distance(base)
    unrelated = sum(not p.exact for p in find_duplicates(base, limit, confirm))
    recall = {}
    for kind in planted[0]:
        copied = ImageHashes()
        for k, p in enumerate(planted):
            copied.add(kind, k, "", p[kind])
        found = {(p.a.index, p.b.index) for p in find_leaks(base, copied, limit, confirm)}
        recall[kind] = round(sum((k, k) in found for k in range(len(planted))) / len(planted), 3)
    pairs = len(originals) * (len(originals) - 1) // 2
    return {
        "threshold": limit,
        "fine_hash_confirmed": confirm,
        "unrelated_pair_p1": p1,
        "recall": recall,
        "false_positive_rate": round(unrelated / max(pairs, 1), 5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200, help="originals per family")
    parser.add_argument("--thresholds", default="4,6,8,10,12,14")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    thresholds = [int(t) for t in args.thresholds.split(",")]
    rng = np.random.default_rng(args.seed)
    families: dict[str, list[Image.Image]] = {
        "textured": [textured(rng) for _ in range(args.images)],
        "shapes": [
            Image.fromarray(s.pixels).convert("RGB")
            for s in generate_images("shapes", "train", args.images, seed=args.seed, image_size=256)
        ],
        "xray-like": [
            Image.fromarray(s.pixels).convert("RGB")
            for s in generate_images("xray-like", "train", args.images, seed=args.seed, image_size=256)
        ],
    }
    methods: dict[str, Callable[[bytes], int]] = {"phash": phash, "dhash": dhash}
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "images_per_family": args.images,
        "default_max_distance": DEFAULT_MAX_DISTANCE,
        "quality": {},
        "pipeline": {},
    }
    originals_all: list[bytes] = []
    for family, imgs in families.items():
        originals = [_jpeg(img, 92) for img in imgs]
        originals_all += originals
        planted = [copies(img) for img in imgs]
        for name, fn in methods.items():
            base = np.asarray([fn(o) for o in originals], dtype=np.uint64)
            per_kind = {
                kind: np.asarray([hamming(int(base[k]), fn(p[kind])) for k, p in enumerate(planted)])
                for kind in planted[0]
            }
            iu = np.triu_indices(len(base), k=1)
            unrelated = np.bitwise_count(base[:, None] ^ base[None, :])[iu]
            result["quality"][f"{family}/{name}"] = {
                "unrelated_distance_p0_p1_p5_p50": [
                    float(np.percentile(unrelated, q)) for q in (0, 1, 5, 50)
                ],
                "copy_distance_max": {k: int(v.max()) for k, v in per_kind.items()},
                "by_threshold": {
                    t: {
                        "recall": {k: round(float(np.mean(v <= t)), 3) for k, v in per_kind.items()},
                        "false_positive_rate": round(float(np.mean(unrelated <= t)), 5),
                    }
                    for t in thresholds
                },
            }
        result["pipeline"][family] = _pipeline(originals, planted)
    speed = {
        "decode": _rate(_decode, originals_all, args.repeat),
        "phash": _rate(phash, originals_all, args.repeat),
        "dhash": _rate(dhash, originals_all, args.repeat),
        "phash+sha256": _rate(lambda d: (phash(d), hashlib.sha256(d).digest()), originals_all, args.repeat),
        "ImageHashes.add": _rate(lambda d: ImageHashes().add("f", 0, "", d), originals_all, args.repeat),
    }
    result["images_per_second"] = {k: round(v, 1) for k, v in speed.items()}
    result["time_per_image_vs_decode"] = {k: round(speed["decode"] / v, 3) for k, v in speed.items()}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"machine: {result['machine']}; {args.images} originals per family, 3 planted copies each")
    for key, q in result["quality"].items():
        print(f"\n{key}: unrelated-pair distance p0/p1/p5/p50 = {q['unrelated_distance_p0_p1_p5_p50']}")
        print(f"  max distance of a planted copy: {q['copy_distance_max']}")
        for t, row in q["by_threshold"].items():
            recall = ", ".join(f"{k} {v:.3f}" for k, v in row["recall"].items())
            mark = "  <- default" if t == DEFAULT_MAX_DISTANCE and key.endswith("phash") else ""
            print(f"  <= {t:2d}: recall {recall}; false positives {row['false_positive_rate']:.5f}{mark}")
    print("\nas tfod inspect/diagnose run it (pHash <= threshold, same tone, fine hash if look-alike):")
    for family, row in result["pipeline"].items():
        recall = ", ".join(f"{k} {v:.3f}" for k, v in row["recall"].items())
        print(
            f"  {family:10s} threshold {row['threshold']:3d} (pair p1 {row['unrelated_pair_p1']}, "
            f"fine-hash check {'on' if row['fine_hash_confirmed'] else 'off'}): "
            f"recall {recall}; false positives {row['false_positive_rate']:.5f}"
        )
    print("\nspeed (images/s; time per image as a ratio of full decode alone):")
    for k, v in speed.items():
        print(f"  {k:13s} {v:8.1f}/s  {result['time_per_image_vs_decode'][k]:.3f}x")


if __name__ == "__main__":
    main()
