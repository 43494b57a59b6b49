"""Where do ``tfod evaluate`` and stock ``model_main_tf2 --checkpoint_dir`` first differ on a checkpoint?

Issue #15. In one process, for each checkpoint prefix given:

1. **stock**: the model, eval input, global step and optimizer built as
   ``model_lib_v2.eval_continuously`` builds them (a distribution strategy's scope, a distributed
   dataset, the checkpoint restored before the first call), then ``model_lib_v2.eager_eval_loop``
   itself; every ``eval_dict`` it hands its COCO evaluator is kept, and its metrics (pycocotools);
2. **ours**: :class:`tfod_tools.odapi.evaluator.CheckpointEvaluator` (what ``tfod evaluate`` runs);
3. the two sides' detections, image by image (by hash key): counts, classes, max abs difference of
   boxes and scores, and the first image where they differ;
4. the COCO values of: stock (pycocotools on stock detections), ours on our detections (what
   ``tfod evaluate`` reports), ours on the *stock* detections (so a difference of the metric code is
   told apart from a difference of the detections), each against stock, with the first tag that
   differs;
5. with ``--dump DIR``, both sides' detections are saved (``DIR/<checkpoint>.npz``); with
   ``--against DIR``, this process's detections are also compared with those another process saved
   (do two processes, as the parity test runs them, give the same numbers?).

Run it in the TensorFlow under test, niced (the API's evaluation is slow on a shared machine)::

    nice -n 10 .venv-tf2.21/bin/python scripts/parity_probe.py --pipeline PIPELINE.config \\
        MODEL_DIR/ckpt-3 MODEL_DIR/ckpt-4

Exit status 0 when every checkpoint's values agree with stock to ``--tolerance`` (1e-6), 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")  # as the parity test runs stock


class StockEval:
    """``eval_continuously``'s set-up, then ``eager_eval_loop`` per checkpoint, capturing eval dicts."""

    def __init__(self, pipeline: str, configs: Any) -> None:
        import tensorflow as tf
        from object_detection import inputs, model_lib_v2
        from object_detection.builders import model_builder, optimizer_builder
        from object_detection.metrics import coco_evaluation

        self.tf, self.model_lib_v2, self.configs = tf, model_lib_v2, configs
        self.captured: list[dict[str, Any]] = []
        captured = self.captured
        original = coco_evaluation.CocoDetectionEvaluator.add_eval_dict

        def add_eval_dict(evaluator: Any, eval_dict: dict[str, Any]) -> Any:
            captured.append(dict(eval_dict))
            return original(evaluator, eval_dict)

        coco_evaluation.CocoDetectionEvaluator.add_eval_dict = add_eval_dict
        strategy = tf.compat.v2.distribute.get_strategy()
        with strategy.scope():
            self.model = model_builder.build(model_config=configs["model"], is_training=True)
        self.dataset = strategy.experimental_distribute_dataset(
            inputs.eval_input(
                eval_config=configs["eval_config"],
                eval_input_config=configs["eval_input_configs"][0],
                model_config=configs["model"],
                model=self.model,
            )
        )
        self.step = tf.compat.v2.Variable(0, trainable=False, dtype=tf.compat.v2.dtypes.int64)
        self.optimizer, _ = optimizer_builder.build(configs["train_config"].optimizer, global_step=self.step)
        if configs["eval_config"].use_moving_averages:
            raise SystemExit("parity_probe: use_moving_averages pipelines are not covered")

    def evaluate(self, prefix: str) -> tuple[dict[str, float], list[dict[str, Any]]]:
        tf = self.tf
        ckpt = tf.compat.v2.train.Checkpoint(step=self.step, model=self.model, optimizer=self.optimizer)
        ckpt.restore(prefix).expect_partial()
        self.captured.clear()
        metrics = self.model_lib_v2.eager_eval_loop(
            self.model, self.configs, self.dataset, global_step=self.step
        )
        return {k: float(v) for k, v in metrics.items()}, list(self.captured)


def _metrics(images: list[Any], label_map: Any, losses: dict[str, float]) -> dict[str, float]:
    """Our COCO values of ``images`` exactly as ``tfod evaluate`` forms them (the runner's own code)."""
    from tfod_tools.evaluation.runner import EvaluationSession
    from tfod_tools.evaluation.scoring import checkpoint_metrics
    from tfod_tools.odapi.evaluator import EvalOutput

    shim = SimpleNamespace(_names_by_key=dict, label_map=label_map)
    data, _ = EvaluationSession._annotated(shim, EvalOutput(step=0, images=images))  # type: ignore[arg-type]
    return checkpoint_metrics(data, ("coco",), losses)


def _compare_detections(stock: list[Any], ours: list[Any]) -> bool:
    by_key = {im.key: im for im in ours}
    first = None
    box_diff = score_diff = 0.0
    count_diff = class_diff = 0
    for s in stock:
        o = by_key.get(s.key)
        if o is None:
            print(f"  image key {s.key}: missing from ours")
            count_diff += 1
            continue
        if s.det_boxes.shape != o.det_boxes.shape:
            count_diff += 1
            first = first or f"key {s.key}: {len(s.det_scores)} stock vs {len(o.det_scores)} our detections"
            continue
        b = float(np.max(np.abs(s.det_boxes - o.det_boxes), initial=0.0))
        sc = float(np.max(np.abs(s.det_scores - o.det_scores), initial=0.0))
        classes = int(np.sum(s.det_classes != o.det_classes))
        class_diff += classes
        box_diff, score_diff = max(box_diff, b), max(score_diff, sc)
        if first is None and (b or sc or classes):
            gap = np.abs(s.det_scores - o.det_scores) + np.abs(s.det_boxes - o.det_boxes).max(axis=1)
            i = int(np.argmax(gap))
            first = (
                f"key {s.key} detection {i}: stock score {s.det_scores[i]!r} box {s.det_boxes[i].tolist()}"
                f" vs ours {o.det_scores[i]!r} {o.det_boxes[i].tolist()}"
            )
    print(
        f"  detections: {len(stock)} images; max |box diff| {box_diff:.3g} px,"
        f" max |score diff| {score_diff:.3g}, {class_diff} class differences,"
        f" {count_diff} images with another count"
    )
    print(f"  first difference: {first or 'none (identical)'}")
    return first is None


def _flat(images: list[Any]) -> dict[str, np.ndarray]:
    """One side's detections as arrays, in image-key order (what ``--dump`` saves)."""
    images = sorted(images, key=lambda im: im.key)
    return {
        "keys": np.asarray([im.key for im in images], dtype=np.int64),
        "counts": np.asarray([len(im.det_scores) for im in images], dtype=np.int64),
        "boxes": np.concatenate([im.det_boxes for im in images]).reshape(-1, 4),
        "scores": np.concatenate([im.det_scores for im in images]),
        "classes": np.concatenate([im.det_classes for im in images]),
    }


def _compare_flat(name: str, a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    if not (np.array_equal(a["keys"], b["keys"]) and np.array_equal(a["counts"], b["counts"])):
        print(f"  {name}: other images or detection counts")
        return False
    box = float(np.max(np.abs(a["boxes"] - b["boxes"]), initial=0.0))
    score = float(np.max(np.abs(a["scores"] - b["scores"]), initial=0.0))
    classes = int(np.sum(a["classes"] != b["classes"]))
    print(f"  {name}: max |box diff| {box:.3g} px, max |score diff| {score:.3g}, {classes} class differences")
    return not (box or score or classes)


def _compare_metrics(name: str, got: dict[str, float], stock: dict[str, float], tolerance: float) -> bool:
    tags = [t for t in stock if t in got]
    worst = max(tags, key=lambda t: abs(got[t] - stock[t]))
    diffs = [t for t in tags if abs(got[t] - stock[t]) > tolerance]
    print(
        f"  {name}: max |diff| {abs(got[worst] - stock[worst]):.3g} ({worst}); over {tolerance:g}: "
        + (", ".join(f"{t} {got[t]!r} vs {stock[t]!r}" for t in diffs[:3]) or "none")
    )
    return not diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", required=True, help="the pipeline.config of the model")
    parser.add_argument("checkpoints", nargs="+", help="checkpoint prefixes (MODEL_DIR/ckpt-N)")
    parser.add_argument("--tolerance", type=float, default=1e-6)
    parser.add_argument("--dump", type=Path, help="save both sides' detections here")
    parser.add_argument("--against", type=Path, help="compare with the detections a --dump run saved")
    args = parser.parse_args(argv)

    from tfod_tools.odapi.evaluator import CheckpointEvaluator  # installs the compatibility layer
    from tfod_tools.odapi.label_map import read_label_map

    ours = CheckpointEvaluator(args.pipeline)
    import tensorflow as tf

    print(f"TensorFlow {tf.__version__}; pipeline {args.pipeline}")
    stock = StockEval(args.pipeline, ours.configs)
    label_map = read_label_map(ours.eval_input_config.label_map_path)
    ok = True
    for prefix in args.checkpoints:
        print(f"== {prefix}")
        stock_metrics, dicts = stock.evaluate(str(Path(prefix)))
        stock_images = [im for d in dicts for im in ours._unbatch(d)]
        out = ours.evaluate(prefix)
        same_detections = _compare_detections(stock_images, out.images)
        coco = {t: v for t, v in stock_metrics.items() if t.startswith("DetectionBoxes_")}
        losses = {t: v for t, v in stock_metrics.items() if t.startswith("Loss/")}
        print(f"  stock mAP {coco['DetectionBoxes_Precision/mAP']!r}")
        ours_all = _metrics(out.images, label_map, out.losses)
        ok &= _compare_metrics("ours (tfod evaluate)", ours_all, {**coco, **losses}, args.tolerance)
        cross = _metrics(stock_images, label_map, {})
        ok &= _compare_metrics("our metric code on stock's detections", cross, coco, args.tolerance)
        if not same_detections:
            ok = False
        sides = {"stock": _flat(stock_images), "ours": _flat(out.images)}
        name = "_".join(Path(prefix).parts[-3:]).replace(os.sep, "_") + ".npz"
        if args.dump is not None:
            args.dump.mkdir(parents=True, exist_ok=True)
            flat = {f"{side}_{k}": v for side, arrays in sides.items() for k, v in arrays.items()}
            savez: Any = np.savez  # numpy's stub types **kwds as its allow_pickle flag
            savez(args.dump / name, **flat)
        if args.against is not None:
            with np.load(args.against / name) as saved:
                for side, arrays in sides.items():
                    then = {k: saved[f"{side}_{k}"] for k in arrays}
                    ok &= _compare_flat(f"{side}, this process vs the --dump process", arrays, then)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
