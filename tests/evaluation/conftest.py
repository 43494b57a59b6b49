"""Fixtures for the evaluation tests: private copies of the session's trained model directory.

Checkpoint files are hard-linked (never modified by the evaluator), so a copy is instant and each
test evaluates a model directory of its own.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def _copy_model_dir(source: Path, target: Path) -> Path:
    """A copy of ``source`` without its ``eval`` run; checkpoint files are hard links."""
    shutil.copytree(source, target, copy_function=os.link, ignore=shutil.ignore_patterns("eval", "logs"))
    return target


@pytest.fixture
def model_copy(tmp_path: Path, trained_model_dir: Any) -> Path:
    """A private copy of the trained model directory (ckpt-1..4 at steps 0..300)."""
    return _copy_model_dir(trained_model_dir.model_dir, tmp_path / "model")


@pytest.fixture(scope="session")
def copy_model_dir() -> Callable[[Path, Path], Path]:
    """``copy_model_dir(source, target)``: a hard-linked copy without the ``eval`` run."""
    return _copy_model_dir


@pytest.fixture(scope="session")
def tfod_json(run_tfod: Callable[..., Any]) -> Callable[..., tuple[int, dict[str, Any], str]]:
    """``tfod_json(args)`` -> (exit code, parsed --json stdout or {}, stderr)."""

    def run(args: list[str], **kwargs: Any) -> tuple[int, dict[str, Any], str]:
        proc = run_tfod([*args, "--json"], **kwargs)
        data = json.loads(proc.stdout) if proc.stdout.strip() else {}
        return proc.returncode, data, proc.stderr

    return run


def evaluate_json(
    tfod_json: Callable[..., Any], pipeline: Path, model_dir: Path, *extra: str
) -> dict[str, Any]:
    """``tfod evaluate --metrics coco,voc ... --json``; asserts exit 0 and returns the document."""
    code, data, stderr = tfod_json(
        [
            "evaluate",
            "--pipeline",
            str(pipeline),
            "--model-dir",
            str(model_dir),
            "--metrics",
            "coco,voc",
            *extra,
        ]
    )
    assert code == 0, stderr[-3000:]
    return data


@pytest.fixture(scope="session")
def evaluate_cli(tfod_json: Callable[..., Any]) -> Callable[..., dict[str, Any]]:
    """``evaluate_cli(pipeline, model_dir, *extra)``: see :func:`evaluate_json`."""

    def run(pipeline: Path, model_dir: Path, *extra: str) -> dict[str, Any]:
        return evaluate_json(tfod_json, pipeline, model_dir, *extra)

    return run


@pytest.fixture(scope="session")
def evaluated(
    tmp_path_factory: pytest.TempPathFactory, trained_model_dir: Any, tfod_json: Callable[..., Any]
) -> tuple[Path, dict[str, Any]]:
    """A copy of the trained model directory after one ``tfod evaluate`` (all checkpoints)."""
    model_dir = _copy_model_dir(trained_model_dir.model_dir, tmp_path_factory.mktemp("evaluated") / "model")
    return model_dir, evaluate_json(tfod_json, trained_model_dir.pipeline, model_dir)
