"""``python -m tfod_tools.odapi.model_main``: the stock model_main_tf2 flags, training then evaluation.

100 training steps (one model_lib_v2 chunk) are enough here: the multi-chunk behaviour (checkpoints
every 100 steps, losses at 100/200/300) is covered by the session's 300-step ``tfod train`` run, which
runs this same module in its child. The evaluation run (``--checkpoint_dir``) exercises the Pillow
``getsize`` fix (side-by-side images) and per-category COCO metrics (finding 6).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tfod_tools.odapi.pipeline import render_template, save_pipeline

pytestmark = pytest.mark.slow


def _model_main(*flags: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_USE_LEGACY_KERAS", None)  # the layer must set it itself
    return subprocess.run(
        [sys.executable, "-m", "tfod_tools.odapi.model_main", *flags],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
        check=False,
    )


def _scalars(event_dir: Path) -> dict[str, dict[int, float]]:
    from tfod_tools.odapi import compat

    compat.install()
    import tensorflow as tf

    out: dict[str, dict[int, float]] = {}
    for file in sorted(event_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(file)):
            for value in event.summary.value:
                if value.HasField("tensor"):
                    array = tf.make_ndarray(value.tensor)
                    if array.size != 1 or array.dtype.kind not in "fiu":
                        continue  # images and text
                    number = float(array.reshape(()))
                else:
                    number = value.simple_value
                out.setdefault(value.tag, {})[event.step] = number
    return out


def test_model_main_trains_and_evaluates_under_the_layer(tmp_path: Path, synthetic_dataset: Any) -> None:
    config = render_template(
        "tiny-ssd",
        label_map=synthetic_dataset.label_map,
        train_records=synthetic_dataset.train_record,
        eval_records=synthetic_dataset.eval_record,
    )
    config.eval_config.include_metrics_per_category = True
    config.eval_config.num_visualizations = 2
    pipeline = save_pipeline(config, tmp_path / "pipeline.config")
    model_dir = tmp_path / "model"

    train = _model_main(
        f"--pipeline_config_path={pipeline}",
        f"--model_dir={model_dir}",
        "--num_train_steps=100",
        "--checkpoint_every_n=100",
        "--alsologtostderr",
    )
    assert train.returncode == 0, train.stderr[-4000:]
    assert "tfod compat: applied" in train.stderr
    assert sorted(p.name for p in model_dir.glob("ckpt-*.index")) == ["ckpt-1.index", "ckpt-2.index"]
    train_scalars = _scalars(model_dir / "train")
    assert sorted(train_scalars["Loss/total_loss"]) == [100]

    evaluate = _model_main(
        f"--pipeline_config_path={pipeline}",
        f"--model_dir={model_dir}",
        f"--checkpoint_dir={model_dir}",
        "--num_train_steps=100",
        "--eval_timeout=1",
    )
    assert evaluate.returncode == 0, evaluate.stderr[-4000:]
    eval_scalars = _scalars(model_dir / "eval")
    assert sorted(eval_scalars["DetectionBoxes_Precision/mAP"]) == [100]
    assert 0.0 <= eval_scalars["DetectionBoxes_Precision/mAP"][100] <= 1.0
    per_category = [
        tag for tag in eval_scalars if tag.startswith("DetectionBoxes_PerformanceByCategory/mAP/")
    ]
    assert sorted(per_category) == [
        "DetectionBoxes_PerformanceByCategory/mAP/square",
        "DetectionBoxes_PerformanceByCategory/mAP/triangle",
    ]
