"""SIGTERM stops a running ``tfod evaluate`` like Ctrl-C: exit 143, protected links released, data kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def test_sigterm_exits_143_and_releases_the_protected_links(model_copy: Path, trained_model_dir: Any) -> None:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", NO_ALBUMENTATIONS_UPDATE="1")
    env["TFOD_EVAL_TEST_DELAY_S"] = "60"  # each checkpoint's evaluation sleeps: SIGTERM lands mid-run
    argv = ["evaluate", "--pipeline", str(trained_model_dir.pipeline), "--model-dir", str(model_copy)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tfod_tools", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    protected = model_copy / "eval" / "protected"
    deadline = time.monotonic() + 300
    while not (protected.is_dir() and any(protected.iterdir())):  # links are made before evaluation
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err
    assert list(protected.iterdir()) == []
    kept = sorted(p.name for p in model_copy.glob("ckpt-*.index"))
    assert kept == [f"ckpt-{n}.index" for n in (1, 2, 3, 4)]  # the user's checkpoints untouched
