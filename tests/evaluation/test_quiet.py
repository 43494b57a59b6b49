"""A real ``tfod evaluate`` keeps TensorFlow's own output off the terminal unless ``--verbose``.

Measured with ``TF_CPP_MIN_LOG_LEVEL`` unset (what a user's shell has): about 44 stderr lines with
``--verbose`` (the old default), 2 without (the progress bar and the "evaluated" line).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def _evaluate(pipeline: Path, model_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["NO_ALBUMENTATIONS_UPDATE"] = "1"
    argv = ["evaluate", "--pipeline", str(pipeline), "--model-dir", str(model_dir), "--checkpoints", "latest"]
    return subprocess.run(
        [sys.executable, "-m", "tfod_tools", *argv, *extra],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        check=False,
    )


def test_tensorflow_output_goes_to_the_log_unless_verbose(model_copy: Path, trained_model_dir: Any) -> None:
    quiet = _evaluate(trained_model_dir.pipeline, model_copy)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    lines = quiet.stderr.strip().splitlines()
    assert len(lines) <= 3, quiet.stderr  # the bar and "evaluated ckpt-4 (step 300): mAP ..."
    assert any(line.startswith("evaluated ckpt-4 (step 300): mAP") for line in lines)
    assert not any("tensorflow" in line.lower() or "warn" in line.lower() for line in lines)
    log = model_copy / "logs" / "evaluate.log"
    assert f"TensorFlow's own output: {log}" in quiet.stdout
    text = log.read_text(encoding="utf-8")
    assert text.startswith("--- ") and "tfod evaluate --pipeline" in text.splitlines()[0]
    assert "is deprecated" in text and "WARNING:tensorflow" in text  # tf.logging and its notices
    assert "cpu_feature_guard" in text or "cuda" in text.lower()  # TensorFlow's C++ start-up log
    noisy_lines = len(text.splitlines()) - 1

    verbose = _evaluate(trained_model_dir.pipeline, model_copy, "--verbose", "--force")
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert "WARNING:tensorflow" in verbose.stderr
    assert len(verbose.stderr.splitlines()) >= noisy_lines
    assert (
        len(log.read_text(encoding="utf-8").splitlines()) == noisy_lines + 1
    )  # --verbose wrote nothing there
