"""Benchmark ``tfod export``: export time per format, and per-image latency of the exported models.

Needs a trained model directory (``--model-dir``) and its ``--pipeline`` (e.g. the tiny SSD of the
test session, or ``tfod demo``'s). Each export is the real CLI in a subprocess
(``python -m tfod_tools export --checkpoint CHECKPOINT``), timed by wall clock (start-up and
imports included) and by what ``export.json`` records for the exporter itself:

- ``saved_model``: ``exporter_lib_v2`` (SavedModel, image_tensor input);
- ``tflite`` float32, float16 and int8 (int8 calibrated on the pipeline's training records).

Then, in this process, on the pipeline's eval images (``--images`` at most): per-image latency of
the SavedModel (``serving_default``, uint8 image in, preprocessing and NMS inside) and of each
TFLite model (``tf.lite.Interpreter``, the preprocessed float input, ``--threads`` threads),
median and p90 over the images after one warm-up run each, and each model's COCO mAP on those
images when the model directory holds ``tfod evaluate``'s stored ground truth for that step.

Then (unless ``--skip-evaluate``) ``tfod evaluate --model`` on the SavedModel against ``tfod evaluate``
on its source checkpoint, both the real CLI in a subprocess on the pipeline's eval records
(``--pipeline P``), alternating, ``--eval-repeats`` times each: wall time (start-up and imports
included) and the command's own ``elapsed_s`` (its ``--json``), per image, and their ratio (issue
#12's target: at most 1.2x). The checkpoint run evaluates a copy of the model directory
under ``WORK`` (``--checkpoints STEP --force``), so ``--model-dir`` is never written.

Usage::

    .venv/bin/python scripts/bench_export.py --pipeline P --model-dir M [--checkpoint latest]
        [--work DIR] [--images 64] [--threads 1] [--eval-repeats 2] [--skip-evaluate] [--json]
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tfod_tools.data.records import iter_image_records  # noqa: E402
from tfod_tools.errors import TfodError  # noqa: E402
from tfod_tools.odapi.pipeline import input_readers, load_pipeline  # noqa: E402

VARIANTS: list[tuple[str, list[str]]] = [
    ("saved_model", ["--format", "saved_model"]),
    ("tflite float32", ["--format", "tflite"]),
    ("tflite float16", ["--format", "tflite", "--tflite-quantize", "float16"]),
    ("tflite int8", ["--format", "tflite", "--tflite-quantize", "int8"]),
]


def _env() -> dict[str, str]:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", NO_ALBUMENTATIONS_UPDATE="1")


def _export(args: argparse.Namespace, out: Path, extra: list[str], train_records: str) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "tfod_tools",
        "export",
        "--pipeline",
        str(args.pipeline),
        "--model-dir",
        str(args.model_dir),
        "--checkpoint",
        args.checkpoint,
        "--out",
        str(out),
        *extra,
        "--json",
    ]
    if "int8" in extra:
        command[-1:-1] = ["--representative-records", train_records]
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=_env(), check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"export failed ({proc.returncode}): {proc.stderr[-2000:]}")
    manifest = json.loads(proc.stdout)
    return {"wall_s": wall, "exporter_s": sum(manifest["seconds"].values()), "manifest": manifest}


def _tfod_json(command: list[str]) -> tuple[float, dict[str, Any]]:
    """Run ``python -m tfod_tools COMMAND --json``; its wall time and its JSON document."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "tfod_tools", *command, "--json"],
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )
    wall = time.perf_counter() - started
    if not proc.stdout.strip():
        raise SystemExit(f"tfod {command[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, json.loads(proc.stdout)


def _evaluate_both(args: argparse.Namespace, work: Path, export: Path, step: int) -> dict[str, Any]:
    """``tfod evaluate --model`` on the SavedModel export vs ``tfod evaluate`` on its checkpoint."""
    copy = work / "model_dir_copy"
    if not copy.exists():
        shutil.copytree(args.model_dir, copy)  # a real copy: the ledger is written in place
    runs: dict[str, list[dict[str, Any]]] = {"checkpoint": [], "saved_model": []}
    images = 0
    for _ in range(args.eval_repeats):
        wall, doc = _tfod_json(
            [
                "evaluate",
                "--pipeline",
                str(args.pipeline),
                "--model-dir",
                str(copy),
                "--checkpoints",
                str(step),
                "--force",
                "--metrics",
                "coco",
            ]
        )
        (evaluation,) = [e for e in doc["evaluated"] if e["step"] == step]
        mean_ap = evaluation["metrics"]["DetectionBoxes_Precision/mAP"]
        runs["checkpoint"].append({"wall_s": wall, "elapsed_s": doc["elapsed_s"], "mAP": mean_ap})
        wall, doc = _tfod_json(
            [
                "evaluate",
                "--model",
                str(export),
                "--pipeline",
                str(args.pipeline),
                "--out",
                str(work / "eval"),
            ]
        )
        images = int(doc["images"])
        mean_ap = doc["metrics"]["DetectionBoxes_Precision/mAP"]
        runs["saved_model"].append({"wall_s": wall, "elapsed_s": doc["elapsed_s"], "mAP": mean_ap})
        print(f"evaluated: {runs}", file=sys.stderr)
    best = {k: {m: min(r[m] for r in v) for m in ("wall_s", "elapsed_s")} for k, v in runs.items()}
    return {
        "images": images,
        "runs": runs,
        "best": best,
        "per_image_ms": {k: {m: 1000.0 * v[m] / max(images, 1) for m in v} for k, v in best.items()},
        "ratio": {m: best["saved_model"][m] / best["checkpoint"][m] for m in ("wall_s", "elapsed_s")},
    }


def _latency(run: Any, inputs: list[Any]) -> tuple[float, float, list[Any]]:
    run(inputs[0])  # warm-up (tracing, allocation)
    times: list[float] = []
    outputs: list[Any] = []
    for item in inputs:
        started = time.perf_counter()
        outputs.append(run(item))
        times.append(time.perf_counter() - started)
    ms = np.asarray(times) * 1000.0
    return float(np.median(ms)), float(np.percentile(ms, 90)), outputs


def _map(model_dir: Path, step: int, names: list[str], detections: list[Any]) -> float | None:
    from tfod_tools.data import store
    from tfod_tools.data.model import AnnotatedSet, Detections
    from tfod_tools.evaluation.scoring import checkpoint_metrics
    from tfod_tools.ledger import DEFAULT_METRIC

    try:
        truth = store.load_detections(model_dir, step)
    except TfodError:  # no stored ground truth: no mAP column
        return None
    by_name = dict(zip(names, detections, strict=True))
    keep = [i for i, n in enumerate(truth.images.file_names) if n in by_name]
    if len(keep) != len(truth.images.file_names):
        return None  # --images took a subset: mAP would not be comparable
    ids, boxes, classes, scores = [], [], [], []
    for image_id, name, width, height in zip(
        truth.images.ids, truth.images.file_names, truth.images.widths, truth.images.heights, strict=True
    ):
        b, c, s = by_name[name]
        pixels = np.asarray(b, dtype=np.float64).reshape(-1, 4) * np.array([height, width, height, width])
        boxes.append(pixels[:, [1, 0, 3, 2]])
        ids.append(np.full(len(s), image_id))
        classes.append(np.asarray(c).round().astype(np.int64))
        scores.append(np.asarray(s, dtype=np.float64))
    data = AnnotatedSet(
        images=truth.images,
        categories=truth.categories,
        ground_truth=truth.ground_truth,
        detections=Detections.from_arrays(
            np.concatenate(ids), np.concatenate(boxes), np.concatenate(classes), np.concatenate(scores)
        ),
    )
    return float(checkpoint_metrics(data, ("coco",))[DEFAULT_METRIC])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--checkpoint", default="latest")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", default="", help="comma-separated: saved_model,tflite_float32,...")
    parser.add_argument("--reuse", action="store_true", help="reuse WORK/VARIANT exports that exist")
    parser.add_argument("--eval-repeats", type=int, default=1, help="tfod evaluate runs of each kind")
    parser.add_argument("--skip-evaluate", action="store_true", help="no tfod evaluate comparison")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_export_"))
    config = load_pipeline(args.pipeline)
    readers = dict(input_readers(config))
    train_records = readers["train"].tf_record_input_reader.input_path[0]
    eval_records = list(readers["eval"].tf_record_input_reader.input_path)

    exports: dict[str, dict[str, Any]] = {}
    wanted = args.variants.split(",") if args.variants else [n.replace(" ", "_") for n, _ in VARIANTS]
    for name, extra in VARIANTS:
        out = work / name.replace(" ", "_")
        if out.name not in wanted:
            continue
        if args.reuse and (out / "export.json").is_file():  # an export made before (wall time unknown)
            manifest = json.loads((out / "export.json").read_text())
            exports[name] = {
                "wall_s": None,
                "exporter_s": sum(manifest["seconds"].values()),
                "manifest": manifest,
            }
        else:
            exports[name] = _export(args, out, extra, train_records)
        exports[name]["out"] = out
        print(f"exported {name}: {exports[name]['exporter_s']:.1f} s in the exporter", file=sys.stderr)

    from tfod_tools.odapi import compat

    compat.install()
    import tensorflow as tf

    from tfod_tools.odapi.export import decode_image, tflite_input

    names: list[str] = []
    images: list[Any] = []
    for _, _, record in iter_image_records(eval_records):
        if len(images) >= args.images:
            break
        names.append(record.filename or record.source_id)
        images.append(decode_image(record.encoded))
    first = next(iter(exports.values()))["manifest"]
    step = int(first["source"]["step"])
    prepare = tflite_input(config)
    prepared = [prepare(image) for image in images]

    latency: dict[str, dict[str, Any]] = {}
    if "saved_model" in exports:
        loaded = tf.saved_model.load(str(exports["saved_model"]["out"] / "saved_model"))
        serve = loaded.signatures["serving_default"]

        def run_saved(image: Any) -> Any:
            out = serve(input_tensor=tf.constant(image[np.newaxis]))
            n = int(out["num_detections"][0])
            return (
                out["detection_boxes"][0, :n].numpy(),
                out["detection_classes"][0, :n].numpy(),
                out["detection_scores"][0, :n].numpy(),
            )

        median, p90, outputs = _latency(run_saved, images)
        latency["saved_model"] = {
            "median_ms": median,
            "p90_ms": p90,
            "mAP": _map(args.model_dir, step, names, outputs),
        }
    for name in [n for n in exports if n.startswith("tflite")]:
        path = exports[name]["out"] / "model.tflite"
        interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=args.threads)
        runner = interpreter.get_signature_runner()

        def run_lite(item: Any, runner: Any = runner) -> Any:
            out = {k: np.asarray(v) for k, v in runner(input=item).items()}
            n = int(out["output_0"].reshape(-1)[0])  # count, scores, classes, boxes (see run_tflite)
            boxes, classes = out["output_3"].reshape(-1, 4)[:n], out["output_2"].reshape(-1)[:n] + 1
            return boxes, classes, out["output_1"].reshape(-1)[:n]

        median, p90, outputs = _latency(run_lite, prepared)
        latency[name] = {
            "median_ms": median,
            "p90_ms": p90,
            "mAP": _map(args.model_dir, step, names, outputs),
            "size_kb": path.stat().st_size / 1024,
        }

    compared = None
    if "saved_model" in exports and not args.skip_evaluate:
        compared = _evaluate_both(args, work, exports["saved_model"]["out"], step)

    result = {
        "load_average": os.getloadavg(),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "versions": first["versions"],
        "images": len(images),
        "threads": args.threads,
        "step": step,
        "exports": {k: {"wall_s": v["wall_s"], "exporter_s": v["exporter_s"]} for k, v in exports.items()},
        "latency": latency,
        "evaluate": compared,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['machine']}; TF {result['versions']['tensorflow']}; {len(images)} images, step {step}\n")
    print("| format | export wall (s) | exporter (s) | latency median / p90 (ms) | mAP | size (KB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, timing in result["exports"].items():
        lat = latency[name]
        m = "n/a" if lat["mAP"] is None else f"{lat['mAP']:.4f}"
        size = f"{lat['size_kb']:.0f}" if "size_kb" in lat else ""
        wall = "n/a" if timing["wall_s"] is None else f"{timing['wall_s']:.1f}"
        print(
            f"| {name} | {wall} | {timing['exporter_s']:.1f} | "
            f"{lat['median_ms']:.2f} / {lat['p90_ms']:.2f} | {m} | {size} |"
        )
    if compared is not None:
        print(f"\ntfod evaluate on {compared['images']} eval images (best of {args.eval_repeats}):\n")
        print("| command | wall (s) | per image (ms) | own elapsed (s) | per image (ms) |")
        print("|---|---:|---:|---:|---:|")
        for name, label in (
            ("checkpoint", "--model-dir (checkpoint)"),
            ("saved_model", "--model (SavedModel)"),
        ):
            best, per = compared["best"][name], compared["per_image_ms"][name]
            print(
                f"| {label} | {best['wall_s']:.1f} | {per['wall_s']:.0f} | "
                f"{best['elapsed_s']:.1f} | {per['elapsed_s']:.0f} |"
            )
        ratio = compared["ratio"]
        print(f"\n--model / checkpoint: {ratio['wall_s']:.2f}x wall, {ratio['elapsed_s']:.2f}x own elapsed")
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in result['load_average'])}")


if __name__ == "__main__":
    main()
