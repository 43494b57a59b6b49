"""Benchmark ``tfod balance``: images per second with 1 and 2 workers against a bare-loop floor.

The floor is the irreducible work on the same images with the same recipe and plan, single-threaded
OpenCV (as each worker is): decode every input image, then for each planned copy seed the Compose,
augment and encode. It runs in one process ("floor") and split over two processes that start
together and share nothing ("floor x2", no inter-process traffic at all): the floor x2 speed-up is
what this machine gives this exact work on two processes, the bound for ``tfod balance``'s own
2-worker speed-up (it is below 2x where the cores share caches, memory bandwidth or a clock, or the
host is shared).

``tfod balance`` additionally verifies and parses every record (first pass), writes the originals,
serialises each copy's ``tf.train.Example``, frames it (CRC-32C), ships it to the writer and hashes
the shards; it is timed end to end. Each configuration runs ``--repeat`` times, interleaved, and the
fastest run counts (other processes may share the machine); the first 2-worker run also boots the
fork server (overlapped with the scan) and is reported on its own line. Machine CPU seconds
(Linux ``/proc/stat``: every process, workers included) show the work each configuration cost.

Usage::

    NO_ALBUMENTATIONS_UPDATE=1 .venv/bin/python scripts/bench_balance.py [--images 600] \
        [--image-size 768] [--repeat 5] [--json]

Targets (issue 5): 2 workers >= 1.7x one worker; one worker's time per image <= 1.3x the floor's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

_FLOOR: dict[str, Any] = {}


def _floor_init(train_record: str, repeats: Sequence[int], recipe_name: str, barrier: Any = None) -> None:
    """Load the images and build the Compose (not timed: the floor is image work only)."""
    import cv2

    from tfod_tools.data.balance.augment import Augmenter
    from tfod_tools.data.balance.recipes import load_recipe
    from tfod_tools.data.records import read_image_records

    cv2.setNumThreads(1)
    _FLOOR.update(
        records=read_image_records(train_record),
        repeats=list(repeats),
        compose=Augmenter(load_recipe(recipe_name)).compose,
        barrier=barrier,
    )


def _floor_loop(part: int = 0, parts: int = 1) -> tuple[float, float]:
    """Wall and CPU seconds of the bare loop over images ``part, part + parts, ...``."""
    import numpy as np

    from tfod_tools.data.balance.augment import decode_pixels, encode_pixels
    from tfod_tools.data.balance.recipes import LABEL_FIELD

    records, repeats, compose = _FLOOR["records"], _FLOOR["repeats"], _FLOOR["compose"]
    if _FLOOR["barrier"] is not None:
        _FLOOR["barrier"].wait()  # both halves start together
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(part, len(records), parts):
        record = records[i]
        pixels = decode_pixels(record)
        boxes = np.asarray([record.xmin, record.ymin, record.xmax, record.ymax], np.float64).T.reshape(-1, 4)
        for k in range(1, repeats[i]):
            compose.set_random_seed(int(np.random.SeedSequence([0, i, k]).generate_state(1)[0]))
            out = compose(image=pixels, bboxes=boxes, **{LABEL_FIELD: np.arange(len(boxes))})
            encode_pixels(out["image"], record.format)
    return time.perf_counter() - start, time.process_time() - cpu


def _machine_cpu() -> float | None:
    """CPU seconds used by every process on the machine so far (Linux ``/proc/stat``), else None."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _tool(
    train_record: Path, label_map: Path, out: Path, workers: int, args: argparse.Namespace
) -> tuple[float, float, float | None]:
    """Wall seconds, this process's CPU seconds (all of it for one worker), machine CPU seconds."""
    from tfod_tools.data.balance import balance

    start, cpu, machine = time.perf_counter(), time.process_time(), _machine_cpu()
    balance(
        [train_record],
        label_map,
        out,
        recipe=args.recipe,
        strategy=args.strategy,
        threshold=args.threshold,
        seed=0,
        shards=2,
        workers=workers,
    )
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    after = _machine_cpu()
    return wall, cpu, None if machine is None or after is None else after - machine


def _keep_min(table: dict[str, float], key: str, value: float | None) -> None:
    if value is not None:
        table[key] = min(table.get(key, float("inf")), value)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=600, help="Synthetic xray-like training images.")
    parser.add_argument("--image-size", type=int, default=768)
    parser.add_argument("--recipe", default="chest-xray")
    parser.add_argument("--strategy", default="oversample")
    parser.add_argument("--threshold", type=float, default=0.3)
    parser.add_argument("--repeat", type=int, default=5, help="Runs per configuration; the fastest counts.")
    parser.add_argument("--json", action="store_true", help="Print the results as JSON too.")
    args = parser.parse_args()

    from tfod_tools.data.balance.plan import make_plan
    from tfod_tools.data.records import read_image_records
    from tfod_tools.data.synthetic import write_synthetic_dataset

    work = Path(tempfile.mkdtemp(prefix="bench_balance_"))
    ds = write_synthetic_dataset(
        work / "data",
        "xray-like",
        train_images=args.images,
        eval_images=0,
        seed=0,
        image_size=args.image_size,
    )
    classes = [set(r.class_label) for r in read_image_records(ds.train_record)]
    plan = make_plan(classes, strategy=args.strategy, threshold=args.threshold, seed=0)
    n_in, n_out = len(classes), plan.total
    floor_args = (str(ds.train_record), plan.repeats, args.recipe)

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    floor_pool = ctx.Pool(2, initializer=_floor_init, initargs=(*floor_args, barrier))
    _floor_init(*floor_args)

    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    machine: dict[str, float] = {}
    cold_start: float | None = None
    for _ in range(args.repeat):
        t, c = _floor_loop()
        _keep_min(wall, "floor", t)
        _keep_min(cpu, "floor", c)
        before = _machine_cpu()
        halves = floor_pool.starmap(_floor_loop, [(0, 2), (1, 2)], chunksize=1)
        after = _machine_cpu()
        _keep_min(wall, "floor x2", max(h[0] for h in halves))
        _keep_min(cpu, "floor x2", sum(h[1] for h in halves))
        _keep_min(machine, "floor x2", None if before is None or after is None else after - before)
        for w in (1, 2):
            t, c, m = _tool(ds.train_record, ds.label_map, work / f"out{w}.record", w, args)
            if w == 2 and cold_start is None:
                cold_start = t
            _keep_min(wall, f"workers={w}", t)
            _keep_min(cpu, f"workers={w}", c)
            _keep_min(machine, f"workers={w}", m)
    floor_pool.close()
    floor_pool.join()

    print(
        f"tfod balance benchmark: {n_in} xray-like {args.image_size}px grayscale JPEG images -> "
        f"{n_out} records ({plan.copies} augmented copies), recipe {args.recipe}, {args.strategy}; "
        f"{os.cpu_count()} CPUs, {platform.machine()}, best of {args.repeat}"
    )
    print(f"{'run':<12} {'seconds':>8} {'input img/s':>12} {'output rec/s':>13} {'machine CPU s':>14}")
    for name in ("floor", "floor x2", "workers=1", "workers=2"):
        t = wall[name]
        m = machine.get(name)
        m_text = "" if m is None else f"{m:.2f}"
        print(f"{name:<12} {t:8.3f} {n_in / t:12.1f} {n_out / t:13.1f} {m_text:>14}")
    speedup = wall["workers=1"] / wall["workers=2"]
    floor_speedup = wall["floor"] / wall["floor x2"]
    overhead = wall["workers=1"] / wall["floor"]
    cpu_overhead = cpu["workers=1"] / cpu["floor"]
    print(f"speed-up 2 workers vs 1: {speedup:.2f}x (target >= 1.7x)")
    print(
        "speed-up of the bare floor loop on 2 processes vs 1 (what this machine gives): "
        f"{floor_speedup:.2f}x; "
        f"tfod balance reaches {speedup / floor_speedup:.0%} of it"
    )
    print(f"1 worker per-image time / floor: {overhead:.2f}x (target <= 1.3x)")
    print(
        f"1 worker per-image CPU time / floor CPU time: {cpu_overhead:.2f}x "
        f"({1000 * cpu['workers=1'] / n_in:.2f} vs {1000 * cpu['floor'] / n_in:.2f} ms)"
    )
    cold = f"{cold_start:.3f} s"
    print(f"2 workers, first run in this process (fork server boot, overlapped with the scan): {cold}")
    with contextlib.suppress(OSError):  # no load average on every platform
        print(f"load average (1, 5, 15 min): {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        result: dict[str, Any] = {
            "images": n_in,
            "records": n_out,
            "copies": plan.copies,
            "seconds": wall,
            "cpu_seconds": cpu,
            "machine_cpu_seconds": machine,
            "speedup_2_vs_1": speedup,
            "floor_speedup_2_vs_1": floor_speedup,
            "overhead_vs_floor": overhead,
            "cpu_overhead_vs_floor": cpu_overhead,
            "cold_start_workers_2": cold_start,
        }
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
