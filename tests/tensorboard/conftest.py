"""Fixtures for the TensorBoard tests: event files written by real TensorFlow (in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).with_name("make_tf_events.py")


def make_tf_events(out_dir: Path) -> dict[str, Any]:
    """Run :mod:`make_tf_events` into ``out_dir``; return its expected.json."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run([sys.executable, str(SCRIPT), str(out_dir)], check=True, env=env, timeout=300)
    expected: dict[str, Any] = json.loads((out_dir / "expected.json").read_text())
    (out_dir / "expected.json").unlink()
    return expected


@pytest.fixture(scope="session")
def tf_events(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A model-directory-like tree of TF-written event files and the values in it."""
    root = tmp_path_factory.mktemp("tf_events")
    return root, make_tf_events(root)
