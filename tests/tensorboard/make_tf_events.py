"""Write event files with real TensorFlow, and the values written, for the reader's tests.

Run as ``python make_tf_events.py OUT_DIR``; it writes a model-directory-like tree::

    OUT_DIR/train/  two files from tf.summary.create_file_writer (TF2 scalars), steps 100..1000
    OUT_DIR/eval/   a TF1 tf.compat.v1.summary.FileWriter file (simple_value) with COCO tags and
                    Loss/total_loss, plus a PR curve from tensorboard's pr_curve summary.pb
    OUT_DIR/mixed/  tf.summary.write with scalars metadata: float64, int64 and int32 tensors
    OUT_DIR/expected.json  every scalar written: [run, tag, step, value] (values as TF stores them)

TensorFlow is imported inside :func:`main`, so importing this module (pytest's doctest
collection) stays light.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

COCO_TAGS = [
    "DetectionBoxes_Precision/mAP",
    "DetectionBoxes_Precision/mAP@.50IOU",
    "DetectionBoxes_Precision/mAP@.75IOU",
    "DetectionBoxes_Precision/mAP (small)",
    "DetectionBoxes_Recall/AR@1",
    "DetectionBoxes_Recall/AR@100",
]
TRAIN_TAGS = ["Loss/total_loss", "Loss/classification_loss", "learning_rate"]


def main(out_dir: str) -> None:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf
    from tensorboard.plugins.pr_curve import summary as pr_summary
    from tensorboard.plugins.scalar import metadata as scalar_metadata

    root = Path(out_dir)
    rng = np.random.default_rng(7)
    expected: list[list[Any]] = []

    # train: TF2 writers, two files (the second writer starts a new file, as a restarted job does).
    for steps in (range(100, 600, 100), range(600, 1100, 100)):
        writer = tf.summary.create_file_writer(str(root / "train"))
        with writer.as_default():
            for step in steps:
                for tag in TRAIN_TAGS:
                    value = float(rng.uniform(0.1, 3.0))
                    tf.summary.scalar(tag, value, step=step)
                    expected.append(["train", tag, step, float(np.float32(value))])
        writer.close()

    # eval: TF1 FileWriter with simple values, as model_main_tf2's predecessors wrote.
    graph = tf.Graph()  # FileWriter refuses eager mode; a graph context is enough
    graph_context = graph.as_default()
    graph_context.__enter__()
    writer1 = tf.compat.v1.summary.FileWriter(str(root / "eval"))
    for step in (500, 1000):
        values = []
        for tag in [*COCO_TAGS, "Loss/total_loss"]:
            value = float(rng.uniform(0.0, 1.0))
            values.append(tf.compat.v1.Summary.Value(tag=tag, simple_value=value))
            expected.append(["eval", tag, step, float(np.float32(value))])
        writer1.add_summary(tf.compat.v1.Summary(value=values), global_step=step)
    labels = rng.uniform(size=50) > 0.5
    predictions = rng.uniform(size=50).astype(np.float32)
    pr_pb = pr_summary.pb("pr_all", labels, predictions, num_thresholds=11)
    pr_tf = tf.compat.v1.Summary.FromString(pr_pb.SerializeToString())
    writer1.add_summary(pr_tf, global_step=1000)
    writer1.close()
    graph_context.__exit__(None, None, None)

    # mixed: scalar tensors of other dtypes, written with the scalars plugin metadata.
    meta = tf.compat.v1.SummaryMetadata.FromString(
        scalar_metadata.create_summary_metadata("", "").SerializeToString()
    )
    writer2 = tf.summary.create_file_writer(str(root / "mixed"))
    with writer2.as_default():
        for step in (1, 2, 3):
            f64 = float(rng.uniform())
            tf.summary.write("f64", tf.constant(f64, tf.float64), step=step, metadata=meta)
            tf.summary.write("i64", tf.constant(step * 7, tf.int64), step=step, metadata=meta)
            tf.summary.write("i32", tf.constant(-step, tf.int32), step=step, metadata=meta)
            expected += [["mixed", "f64", step, f64], ["mixed", "i64", step, float(step * 7)]]
            expected.append(["mixed", "i32", step, float(-step)])
    writer2.close()

    pr = {
        "labels": labels.tolist(),
        "predictions": predictions.astype(float).tolist(),
        "num_thresholds": 11,
        "tag": pr_tf.value[0].tag,
        "tensor": tf.make_ndarray(pr_tf.value[0].tensor).tolist(),
    }
    (root / "expected.json").write_text(json.dumps({"scalars": expected, "pr_curve": pr}))


if __name__ == "__main__":
    main(sys.argv[1])
