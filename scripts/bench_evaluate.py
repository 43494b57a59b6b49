"""Benchmark: ``tfod evaluate`` (one process, every checkpoint) against stock ``model_main_tf2``.

The tiny SSD (``tiny-ssd`` template) is trained on synthetic ``shapes`` data with 32 eval images,
400 steps with a checkpoint every 100 -> 5 checkpoints (steps 0..400), unless ``--model-dir``
names an existing run (and ``--pipeline`` its config). Then:

- **stock**: ``python -m tfod_tools.odapi.model_main --checkpoint_dir=SCRATCH`` once per
  checkpoint, where ``SCRATCH`` holds hard links to that one checkpoint and a ``checkpoint`` file
  naming it. ``model_main_tf2`` evaluates the newest checkpoint, then polls for a newer one every
  300 s (``wait_interval``) until ``--eval_timeout``; it exits right away only when the step equals
  the config's ``train_config.num_steps``. So each stock run gets a pipeline copy whose
  ``num_steps`` is that checkpoint's step: it exits as soon as its evaluation is written, and the
  measured wall time is start-up + build + tracing + evaluation, without any idle polling (which
  would otherwise add ~300 s per run).
- **tfod**: ``python -m tfod_tools evaluate`` once, over every checkpoint (a fresh copy of the
  model directory each repetition, so nothing is skipped by the ledger).

Both are run as subprocesses, timed by wall clock, on the same machine, one after the other.
``--repeat`` repeats the tfod run. The script prints a Markdown table and writes JSON with ``--out``.

Usage::

    python scripts/bench_evaluate.py [--work DIR] [--model-dir M --pipeline P] [--out bench.json]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tfod_tools.data.synthetic import write_synthetic_dataset  # noqa: E402
from tfod_tools.odapi.checkpoints import read_step, scan_checkpoints  # noqa: E402
from tfod_tools.odapi.pipeline import load_pipeline, render_template, save_pipeline  # noqa: E402


def _env() -> dict[str, str]:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", NO_ALBUMENTATIONS_UPDATE="1", PYTHONUNBUFFERED="1")


def _run(argv: list[str], log: Path) -> float:
    started = time.perf_counter()
    with open(log, "w") as handle:
        proc = subprocess.run(argv, stdout=handle, stderr=subprocess.STDOUT, env=_env(), check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed ({proc.returncode}); see {log}")
    return elapsed


def _train(work: Path, steps: int, eval_images: int) -> tuple[Path, Path]:
    data = write_synthetic_dataset(work / "data", "shapes", train_images=64, eval_images=eval_images, seed=3)
    pipeline = save_pipeline(
        render_template(
            "tiny-ssd",
            label_map=data.label_map,
            train_records=data.train_record,
            eval_records=data.eval_record,
            num_steps=steps,
        ),
        work / "pipeline.config",
    )
    model_dir = work / "model"
    argv = [
        sys.executable,
        "-m",
        "tfod_tools",
        "train",
        "--pipeline",
        str(pipeline),
        "--model-dir",
        str(model_dir),
    ]
    argv += ["--num-steps", str(steps), "--checkpoint-every", "100", "--json"]
    seconds = _run(argv, work / "train.out")
    print(f"trained {steps} steps in {seconds:.0f} s", file=sys.stderr)
    return pipeline, model_dir


def _stock(pipeline: Path, model_dir: Path, work: Path) -> list[dict[str, Any]]:
    rows = []
    for ckpt in scan_checkpoints(model_dir):
        step = read_step(ckpt.prefix)
        scratch = work / f"stock-{ckpt.name}" / "checkpoints"
        scratch.mkdir(parents=True)
        for file in ckpt.files:
            os.link(file, scratch / file.name)
        (scratch / "checkpoint").write_text(
            f'model_checkpoint_path: "{ckpt.name}"\nall_model_checkpoint_paths: "{ckpt.name}"\n'
        )
        config = load_pipeline(pipeline)
        config.train_config.num_steps = step  # stock exits once it has evaluated step == num_steps
        stock_pipeline = save_pipeline(config, scratch.parent / "pipeline.config")
        argv = [
            sys.executable,
            "-m",
            "tfod_tools.odapi.model_main",
            f"--pipeline_config_path={stock_pipeline}",
        ]
        argv += [f"--model_dir={scratch.parent / 'out'}", f"--checkpoint_dir={scratch}", "--eval_timeout=1"]
        seconds = _run(argv, scratch.parent / "model_main.log")
        rows.append({"checkpoint": ckpt.name, "step": step, "wall_s": round(seconds, 2)})
        print(f"stock {ckpt.name} (step {step}): {seconds:.1f} s", file=sys.stderr)
    return rows


def _tfod(pipeline: Path, model_dir: Path, work: Path, index: int) -> dict[str, Any]:
    copy = work / f"tfod-{index}" / "model"
    shutil.copytree(model_dir, copy, copy_function=os.link, ignore=shutil.ignore_patterns("eval", "logs"))
    argv = [
        sys.executable,
        "-m",
        "tfod_tools",
        "evaluate",
        "--pipeline",
        str(pipeline),
        "--model-dir",
        str(copy),
    ]
    seconds = _run([*argv, "--json"], copy.parent / "evaluate.out")
    text = (copy.parent / "evaluate.out").read_text()
    report = json.loads(text[text.index("\n{\n") :])
    from tfod_tools.ledger import Ledger

    with Ledger.open(copy, readonly=True) as ledger:
        per = [round(float(e.duration_s or 0.0), 2) for e in ledger.evaluations()]
    print(f"tfod evaluate: {seconds:.1f} s, per checkpoint {per}", file=sys.stderr)
    return {"wall_s": round(seconds, 2), "evaluated": len(report["evaluated"]), "per_checkpoint_s": per}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=None, help="scratch directory [a new temp dir]")
    parser.add_argument("--model-dir", type=Path, default=None, help="an existing trained model_dir")
    parser.add_argument("--pipeline", type=Path, default=None, help="its pipeline.config")
    parser.add_argument("--steps", type=int, default=400, help="training steps (checkpoint every 100)")
    parser.add_argument("--eval-images", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=1, help="tfod evaluate repetitions")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_evaluate_"))
    work.mkdir(parents=True, exist_ok=True)
    if args.model_dir is not None:
        if args.pipeline is None:
            parser.error("--model-dir needs --pipeline")
        pipeline, model_dir = args.pipeline, args.model_dir
    else:
        pipeline, model_dir = _train(work, args.steps, args.eval_images)

    stock = _stock(pipeline, model_dir, work)
    tfod = [_tfod(pipeline, model_dir, work, i) for i in range(args.repeat)]
    stock_total = sum(r["wall_s"] for r in stock)
    best = min(t["wall_s"] for t in tfod)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "checkpoints": len(stock),
        "stock": stock,
        "stock_total_s": round(stock_total, 2),
        "tfod": tfod,
        "ratio": round(best / stock_total, 3),
    }
    print("| run | checkpoints | wall time (s) |")
    print("|---|---|---|")
    for row in stock:
        print(f"| stock model_main_tf2, {row['checkpoint']} (step {row['step']}) | 1 | {row['wall_s']:.1f} |")
    print(f"| **stock total** | {len(stock)} | **{stock_total:.1f}** |")
    for t in tfod:
        per = ", ".join(f"{s:.2f}" for s in t["per_checkpoint_s"])
        print(
            f"| tfod evaluate (one process; per checkpoint: {per}) | {t['evaluated']} | {t['wall_s']:.1f} |"
        )
    print(f"| **ratio tfod / stock** | | **{result['ratio']:.3f}x** |")
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
