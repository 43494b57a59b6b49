"""Parity: for one checkpoint, our COCO values and eval losses equal what stock ``model_main_tf2``
(under the compatibility layer, ``--checkpoint_dir``) writes to its own eval event file."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tfod_tools.metrics.coco import COCO_TAGS
from tfod_tools.tensorboard.reader import read_scalars

pytestmark = pytest.mark.slow

LOSSES = ["Loss/localization_loss", "Loss/classification_loss", "Loss/regularization_loss", "Loss/total_loss"]


def _tolerance() -> float:
    """1e-6 (the stock event file holds float32) on TF <= 2.20. On TF 2.21 one run found the stock
    mAP 3.6e-6 above ours (0.1824302 vs 0.1824266, issue #15): more than float32 rounding (1.5e-8 at
    0.18). It has not recurred: scripts/parity_probe.py found both sides' detections bitwise equal
    on 7 TF 2.21 checkpoints (and from one process to another on 3), and two more runs of this test
    on TF 2.21 agreed to 6e-8, COCO values equal (docs/compatibility.md, "Stock parity on TF
    2.21"). With the cause unknown, TF >= 2.21 is held to 1e-5; if it recurs, run the probe on
    that model."""
    from tfod_tools.odapi.compat.keras import parse_version, tensorflow_version

    return 1e-5 if parse_version(tensorflow_version() or "0")[:2] >= (2, 21) else 1e-6


def test_coco_values_equal_stock_model_main_tf2(
    tmp_path: Path, model_copy: Path, trained_model_dir: Any, tfod_json: Callable
) -> None:
    final = trained_model_dir.num_steps  # the stock evaluator exits after the step == num_steps
    scratch = tmp_path / "only_final"
    scratch.mkdir()
    for file in model_copy.glob("ckpt-4.*"):
        os.link(file, scratch / file.name)
    (scratch / "checkpoint").write_text(
        'model_checkpoint_path: "ckpt-4"\nall_model_checkpoint_paths: "ckpt-4"\n'
    )
    stock_dir = tmp_path / "stock"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tfod_tools.odapi.model_main",
            f"--pipeline_config_path={trained_model_dir.pipeline}",
            f"--model_dir={stock_dir}",
            f"--checkpoint_dir={scratch}",
            "--eval_timeout=30",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    stock = {p.tag: p.value for p in read_scalars(stock_dir) if p.run == "eval" and p.step == final}
    assert set(COCO_TAGS.values()) | set(LOSSES) <= set(stock), sorted(stock)

    code, ours, stderr = tfod_json(
        [
            "evaluate",
            "--pipeline",
            str(trained_model_dir.pipeline),
            "--model-dir",
            str(model_copy),
            "--checkpoints",
            str(final),
        ]
    )
    assert code == 0, stderr[-3000:]
    (entry,) = ours["evaluated"]
    assert entry["step"] == final and entry["checkpoint"] == "ckpt-4"
    # The stock event file holds float32 values; ours are float64 before TensorBoard.
    tolerance = _tolerance()
    for tag in [*COCO_TAGS.values(), *LOSSES]:
        assert entry["metrics"][tag] == pytest.approx(stock[tag], abs=tolerance), tag
    # What we write to TensorBoard agrees too.
    written = {p.tag: p.value for p in read_scalars(model_copy / "eval") if p.step == final}
    for tag in COCO_TAGS.values():
        assert written[tag] == pytest.approx(stock[tag], abs=tolerance), tag
