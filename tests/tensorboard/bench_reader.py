"""Benchmark of the TF-free reader: ``python tests/tensorboard/bench_reader.py [POINTS]``.

Writes ``POINTS`` scalars (12 eval tags, 2 train tags) with :class:`EventWriter` and times
:func:`read_scalars` with and without data CRC checks (best of 15; wall and CPU time).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path


def main(points: int = 4000) -> None:
    from tfod_tools.tensorboard.reader import read_scalars
    from tfod_tools.tensorboard.writer import EventWriter

    root = Path(tempfile.mkdtemp())
    eval_steps, train_steps = points // 2 // 12, points // 2 // 2
    with EventWriter(root / "eval", auto_flush=False) as writer:
        for step in range(eval_steps):
            for i in range(12):
                writer.add_scalar(f"DetectionBoxes_Precision/t{i}", step / eval_steps, step * 100)
    with EventWriter(root / "train", auto_flush=False) as writer:
        for step in range(train_steps):
            for tag in ("Loss/total_loss", "learning_rate"):
                writer.add_scalar(tag, 1 / (step + 1), step * 100)
    for verify in (True, False):
        wall, cpu = [], []
        for _ in range(15):
            w0, c0 = time.perf_counter(), time.process_time()
            result = read_scalars(root, verify=verify)
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
        print(
            f"verify={verify}: {len(result)} points, best wall {min(wall) * 1e3:.1f} ms, "
            f"best cpu {min(cpu) * 1e3:.1f} ms"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4000)
