"""Benchmark ``--beam`` on the DirectRunner (multi-processing, 1 and 2 workers) against the local path.

One run, the same synthetic images for every configuration:

- ``convert``: ``tfod convert`` (local: one process, it has no ``--workers``) against
  ``tfod convert --beam -- --direct_num_workers=N --direct_running_mode=multi_processing`` for N = 1, 2;
  the Beam shards are checked byte-identical to the local ones;
- ``balance`` (with ``--balance``, once ``tfod balance --beam`` exists): ``tfod balance --workers 1/2``
  against ``--beam`` with 1 and 2 DirectRunner workers on synthetic xray-like images (3:1 classes,
  ``--recipe chest-xray --strategy oversample``), shards and manifest checked identical.

Every configuration runs as a ``tfod`` subprocess (what a user runs: interpreter start, imports, the
pipeline's start and its worker processes all count), ``--repeat`` times interleaved; the fastest run
counts (other jobs share the machine: the load average is printed). A 20-image Beam run measures
the fixed cost (pipeline and worker start); the per-image cost is the 1-worker time above it.

Usage::

    NO_ALBUMENTATIONS_UPDATE=1 .venv/bin/python scripts/bench_beam.py [--images 2000] \
        [--image-size 128] [--repeat 2] [--balance] [--json]

Targets (issue 13): Beam at 2 workers <= 1.5x the local 2-worker wall time (convert: the local run,
which has one process); Beam 2 workers >= 1.6x faster than 1 worker.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TFOD = [sys.executable, "-m", "tfod_tools"]


def _direct(workers: int) -> list[str]:
    return ["--beam", "--", f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]


def write_coco(directory: Path, images: int, image_size: int, seed: int) -> tuple[Path, Path, Any]:
    """Synthetic shapes images as files plus a COCO JSON; also the synthetic data set (for balance)."""
    from tfod_tools.data.records import iter_image_records
    from tfod_tools.data.synthetic import write_synthetic_dataset

    ds = write_synthetic_dataset(
        directory / "synth", "shapes", train_images=images, eval_images=1, seed=seed, image_size=image_size
    )
    folder = directory / "images"
    folder.mkdir()
    doc: dict[str, list[dict[str, Any]]] = {"images": [], "annotations": [], "categories": []}
    names: dict[str, int] = {}
    for _, k, record in iter_image_records(ds.train_record):
        name = f"{k:06d}.jpg"
        (folder / name).write_bytes(record.encoded)
        doc["images"].append({"id": k + 1, "file_name": name, "width": record.width, "height": record.height})
        for (x1, y1, x2, y2), text in zip(record.boxes_pixels().tolist(), record.class_text, strict=True):
            cid = names.setdefault(text, len(names) + 1)
            box = [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)]
            doc["annotations"].append(
                {"id": len(doc["annotations"]) + 1, "image_id": k + 1, "category_id": cid, "bbox": box}
            )
    doc["categories"] = [{"id": cid, "name": name} for name, cid in names.items()]
    coco = directory / "coco.json"
    coco.write_text(json.dumps(doc))
    return coco, folder, ds


def _timed(command: list[str], out_dir: Path) -> float:
    shutil.rmtree(out_dir, ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def _files(directory: Path) -> dict[str, bytes]:
    """Every file's bytes, the folder's own path replaced (the balance manifest names its shards)."""
    here = str(directory).encode()
    return {p.name: p.read_bytes().replace(here, b"OUT") for p in sorted(directory.iterdir()) if p.is_file()}


def bench(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench_beam_"))
    try:
        runs: dict[str, list[float]] = {}
        configs: dict[str, tuple[list[str], Path]] = {}
        if not args.skip_convert:  # the images only when they are converted
            coco, folder, _ = write_coco(work, args.images, args.image_size, args.seed)
            small, small_folder, _ = write_coco(work / "small", 20, args.image_size, args.seed)
            convert = [*TFOD, "convert", "--from", "coco", "-a", str(coco), "--images", str(folder), "-q"]
            configs = {
                "convert local": (
                    [*convert, "-o", str(work / "c_local" / "t.record"), "--shards", "4"],
                    work / "c_local",
                ),
                "convert beam x1": (
                    [*convert, "-o", str(work / "c_b1" / "t.record"), "--shards", "4", *_direct(1)],
                    work / "c_b1",
                ),
                "convert beam x2": (
                    [*convert, "-o", str(work / "c_b2" / "t.record"), "--shards", "4", *_direct(2)],
                    work / "c_b2",
                ),
                "convert beam x1, 20 images": (
                    [
                        *TFOD,
                        "convert",
                        "--from",
                        "coco",
                        "-a",
                        str(small),
                        "--images",
                        str(small_folder),
                        "-q",
                        "-o",
                        str(work / "c_small" / "t.record"),
                        *_direct(1),
                    ],
                    work / "c_small",
                ),
            }
        if args.balance:
            from tfod_tools.data.synthetic import write_synthetic_dataset

            xray = write_synthetic_dataset(  # 3:1 classes, so oversample plans augmented copies
                work / "xray",
                "xray-like",
                train_images=args.images,
                eval_images=1,
                seed=args.seed,
                image_size=args.image_size,
            )
            balance = [
                *TFOD,
                "balance",
                "-i",
                str(xray.train_record),
                "--label-map",
                str(xray.label_map),
                "-q",
            ]
            balance += ["--recipe", "chest-xray", "--strategy", "oversample", "--seed", "1", "--shards", "4"]
            for name, extra in (
                ("balance local x1", ["--workers", "1"]),
                ("balance local x2", ["--workers", "2"]),
                ("balance beam x1", _direct(1)),
                ("balance beam x2", _direct(2)),
            ):
                out = work / name.replace(" ", "_")
                configs[name] = ([*balance, "--out", str(out / "b.record"), *extra], out)
        for _ in range(args.repeat):
            for name, (command, out) in configs.items():
                runs.setdefault(name, []).append(_timed(command, out))
        identical = {}
        if not args.skip_convert:
            identical["convert"] = _files(work / "c_local") == _files(work / "c_b1") == _files(work / "c_b2")
        if args.balance:
            outs = [work / n.replace(" ", "_") for n in configs if n.startswith("balance")]
            identical["balance"] = all(_files(o) == _files(outs[0]) for o in outs)
        best = {name: min(times) for name, times in runs.items()}
        result: dict[str, Any] = {
            "images": args.images,
            "image_size": args.image_size,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "load_average": os.getloadavg(),
            "seconds": best,
            "all_runs": runs,
            "identical_outputs": identical,
        }
        if not args.skip_convert:
            fixed = best["convert beam x1, 20 images"]
            per_image = (best["convert beam x1"] - fixed) / (args.images - 20)
            result["convert"] = {
                "beam x2 / local": best["convert beam x2"] / best["convert local"],
                "beam x1 / beam x2 (speed-up)": best["convert beam x1"] / best["convert beam x2"],
                "beam fixed cost s": fixed,
                "beam per image ms (1 worker)": 1000 * per_image,
                "local per image ms": 1000 * best["convert local"] / args.images,
            }
        if args.balance:
            result["balance"] = {
                "beam x2 / local x2": best["balance beam x2"] / best["balance local x2"],
                "beam x1 / beam x2 (speed-up)": best["balance beam x1"] / best["balance beam x2"],
                "local x1 / local x2 (speed-up)": best["balance local x1"] / best["balance local x2"],
            }
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--balance", action="store_true", help="also tfod balance (needs balance --beam)")
    parser.add_argument("--skip-convert", action="store_true", help="only balance (with --balance)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()
    result = bench(args)
    result["load_average_before"] = load_before
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"--beam benchmark: {args.images} synthetic shapes {args.image_size}px JPEG images, "
        f"{result['machine']}, load average {load_before[0]:.1f} before / "
        f"{result['load_average'][0]:.1f} after"
    )
    for name, seconds in result["seconds"].items():
        runs = ", ".join(f"{t:.1f}" for t in result["all_runs"][name])
        print(f"  {name:30s} {seconds:7.1f} s   (runs: {runs})")
    for section in ("convert", "balance"):
        for key, value in result.get(section, {}).items():
            print(f"  {section} {key}: {value:.3g}")
    print(f"  outputs identical to the local run: {result['identical_outputs']}")


if __name__ == "__main__":
    main()
