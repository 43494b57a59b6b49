"""Benchmark: ``tfod diagnose`` on a model directory with 20 evaluated checkpoints and 500 eval images.

The model directory is synthetic but made of real files: train/eval event files written with the
project's TF-free writer (every COCO tag and the losses, 20 eval steps), xray-like TF OD API records
(500 eval + 500 train images, 256 px) from the synthetic generator, the tiny SSD pipeline rendered
for them, an evaluation ledger with 20 rows, the last 7 checkpoints' files, and detections stored in
the evaluator's format for every step (synthesised from the ground truth with jitter, misses and
background false positives). Each run is a fresh ``python -m tfod_tools diagnose`` process (start-up
and imports included), timed three times; the median is printed.

    .venv/bin/python scripts/bench_diagnose.py                 # build in a temp dir, time, clean up
    .venv/bin/python scripts/bench_diagnose.py --keep DIR      # build into DIR and keep it
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tfod_tools.data.model import AnnotatedSet, Detections
from tfod_tools.data.records import read_annotated_set
from tfod_tools.data.store import save_detections, save_ground_truth
from tfod_tools.data.synthetic import write_synthetic_dataset
from tfod_tools.ledger import Evaluation, Ledger
from tfod_tools.metrics.coco import COCO_TAGS
from tfod_tools.odapi.pipeline import render_template, save_pipeline
from tfod_tools.tensorboard.writer import EventWriter

STEPS = [1000 * (k + 1) for k in range(20)]


def _detections(data: AnnotatedSet, rng: np.random.Generator, quality: float) -> Detections:
    gt = data.ground_truth
    keep = rng.random(len(gt)) < 0.6 + 0.35 * quality
    boxes = gt.boxes[keep].copy()
    wh = np.repeat(boxes[:, 2:] - boxes[:, :2], 2, axis=0).reshape(-1, 4)
    boxes += rng.normal(0, 0.12 - 0.08 * quality, boxes.shape) * wh
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    n_fp = 3 * len(data.images)
    img = rng.choice(data.images.ids, n_fp)
    side = rng.uniform(6, 60, n_fp)
    xy = rng.uniform(0, 256 - 60, (n_fp, 2))
    fp = np.concatenate([xy, xy + side[:, None]], axis=1)
    return Detections.from_arrays(
        np.concatenate([gt.image_ids[keep], img]),
        np.concatenate([boxes, fp]),
        np.concatenate([gt.classes[keep], rng.choice(data.category_ids, n_fp)]),
        np.concatenate([rng.uniform(0.3, 0.99, int(keep.sum())), rng.uniform(0.01, 0.7, n_fp)]),
    )


def build(root: Path, eval_images: int = 500, train_images: int = 500) -> tuple[Path, Path]:
    """Write the model directory and pipeline under ``root``; return ``(model_dir, pipeline)``."""
    ds = write_synthetic_dataset(
        root / "data", "xray-like", train_images=train_images, eval_images=eval_images, seed=11
    )
    pipeline = save_pipeline(
        render_template(
            "tiny-ssd", label_map=ds.label_map, train_records=ds.train_record, eval_records=ds.eval_record
        ),
        root / "pipeline.config",
    )
    model_dir = root / "model"
    data = read_annotated_set(ds.eval_record, ds.label_map)
    rng = np.random.default_rng(0)
    gt_file = save_ground_truth(model_dir, data)
    maps = []
    with (
        EventWriter(model_dir / "train") as train,
        EventWriter(model_dir / "eval") as ev,
        Ledger.open(model_dir) as ledger,
    ):
        for k, step in enumerate(STEPS):
            for s in range(step - 900, step + 1, 100):
                train.add_scalar("Loss/total_loss", 0.9 * np.exp(-s / 6000) + 0.1, step=s)
            quality = min(1.0, k / 12) - max(0, k - 14) * 0.05
            m = 0.2 + 0.5 * quality
            maps.append(m)
            metrics = {tag: (m if "large" not in tag else -1.0) for tag in COCO_TAGS.values()}
            metrics["Loss/total_loss"] = 0.5 - 0.2 * quality + max(0, k - 14) * 0.02
            for tag, value in metrics.items():
                ev.add_scalar(tag, value, step=step)
            save_detections(model_dir, step, _detections(data, rng, quality), gt_file)
            ckpt = f"ckpt-{k + 2}"
            if k >= len(STEPS) - 7:
                (model_dir / f"{ckpt}.index").write_bytes(b"x")
                (model_dir / f"{ckpt}.data-00000-of-00001").write_bytes(b"x")
            ledger.record(Evaluation(step, ckpt, f"hash{k}", metrics, detections_path=f"step-{step}.npz"))
    return model_dir, pipeline


def time_cli(args: list[str], repeats: int = 3) -> list[tuple[float, float]]:
    """``(wall seconds, CPU seconds)`` of ``python -m tfod_tools ARGS`` per run (CPU: the process and
    its inspection worker, user + system; it does not grow when other jobs share the machine)."""
    import resource

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tfod_tools", *args], check=True, env=env, capture_output=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        out.append((wall, cpu))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep", type=Path, help="build into this directory and keep it")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        start = time.perf_counter()
        model_dir, pipeline = build(root)
        print(f"built {model_dir} in {time.perf_counter() - start:.1f} s")
        runs = {
            "diagnose --json (no pipeline)": ["diagnose", "--model-dir", str(model_dir), "--json", "-q"],
            "diagnose --pipeline --json": [
                "diagnose", "--model-dir", str(model_dir), "--pipeline", str(pipeline), "--json", "-q"],
            "diagnose --pipeline --html": [
                "diagnose", "--model-dir", str(model_dir), "--pipeline", str(pipeline),
                "--html", str(root / "report.html"), "--json", "-q"],
        }  # fmt: skip
        for label, cli in runs.items():
            runs_ = time_cli(cli, args.repeats)
            wall = statistics.median(w for w, _ in runs_)
            cpu = statistics.median(c for _, c in runs_)
            each = ", ".join(f"{w:.2f}" for w, _ in runs_)
            print(f"{label:32s} wall median {wall:.2f} s (runs {each}), CPU median {cpu:.2f} s")
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        from tfod_tools.crc32c import CRC32C_IMPLEMENTATION

        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load:.1f}, "
            f"CRC-32C {CRC32C_IMPLEMENTATION}"
        )


if __name__ == "__main__":
    main()
