"""Shared session fixtures: a synthetic data set and a tiny SSD trained once per test session.

``trained_model_dir`` runs the real ``tfod train`` (``model_main_tf2`` under the compatibility
layer) as a user would: 300 steps, a checkpoint every 100 -> ``ckpt-1`` (step 0) .. ``ckpt-4``
(step 300), train events at steps 100, 200, 300. Other test modules (evaluation, diagnostics)
reuse it; it trains only when a test asks for it.

``evaluated_model`` is a hard-linked copy of it after ``tfod evaluate --metrics coco`` (its ledger
and the kept ``eval/best`` copy); ``exported`` is the real ``tfod export --checkpoint best
--format saved_model,tflite`` of that copy, made once per session and shared by the export and
predict tests (``exported.out`` holds ``saved_model/``, ``model.tflite``, ``pipeline.config``,
``label_map.pbtxt``, ``export.json``), with the model directory's state before and after.

Property-based tests run under the ``tfod`` hypothesis profile, locally and in CI alike: derandomised
(each test draws the same examples on every run, from a seed derived from the test itself), no
example database, no deadline (a loaded CI machine must not turn slowness into failures). So a run
passes or fails the same way everywhere; a disagreement hypothesis once found is kept as an explicit
``@example``. ``HYPOTHESIS_PROFILE=explore`` draws fresh random examples to hunt for new ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from tfod_tools.data.synthetic import SyntheticDataset, write_synthetic_dataset

settings.register_profile("tfod", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("explore", derandomize=False, database=None, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "tfod"))

TRAIN_STEPS = 300
CHECKPOINT_EVERY = 100


@dataclass(frozen=True)
class TrainedModel:
    """A model trained by ``tfod train`` for the test session."""

    model_dir: Path
    pipeline: Path
    label_map: Path
    train_record: Path
    eval_record: Path
    num_steps: int
    checkpoint_every: int
    returncode: int
    result: dict[str, Any] = field(default_factory=dict)
    stderr: str = ""


def tfod_subprocess(
    args: list[str], timeout: float = 1800, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tfod_tools ARGS`` (the real CLI) and capture its output."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", NO_ALBUMENTATIONS_UPDATE="1")
    return subprocess.run(
        [sys.executable, "-m", "tfod_tools", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        **kwargs,
    )


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    """A small ``shapes`` data set: 64 train and 16 eval images of 128 px, 2 classes, seed 7."""
    out = tmp_path_factory.mktemp("synthetic_shapes")
    return write_synthetic_dataset(out, "shapes", train_images=64, eval_images=16, seed=7)


@pytest.fixture(scope="session")
def trained_model_dir(
    tmp_path_factory: pytest.TempPathFactory, synthetic_dataset: SyntheticDataset
) -> TrainedModel:
    """The tiny SSD trained with ``tfod train`` for 300 steps (ckpt-1..4)."""
    from tfod_tools.odapi.pipeline import render_template, save_pipeline

    root = tmp_path_factory.mktemp("trained_tiny_ssd")
    pipeline = save_pipeline(
        render_template(
            "tiny-ssd",
            label_map=synthetic_dataset.label_map,
            train_records=synthetic_dataset.train_record,
            eval_records=synthetic_dataset.eval_record,
            num_steps=TRAIN_STEPS,
        ),
        root / "pipeline.config",
    )
    model_dir = root / "model"
    proc = tfod_subprocess(
        [
            "train",
            "--pipeline",
            str(pipeline),
            "--model-dir",
            str(model_dir),
            "--num-steps",
            str(TRAIN_STEPS),
            "--checkpoint-every",
            str(CHECKPOINT_EVERY),
            "--json",
        ]
    )
    if proc.returncode != 0:
        log = model_dir / "logs" / "train.log"
        tail = log.read_text()[-4000:] if log.exists() else "(no log)"
        pytest.fail(f"tfod train failed ({proc.returncode}):\n{proc.stderr[-2000:]}\n{tail}")
    return TrainedModel(
        model_dir=model_dir,
        pipeline=pipeline,
        label_map=Path(synthetic_dataset.label_map),
        train_record=Path(synthetic_dataset.train_record),
        eval_record=Path(synthetic_dataset.eval_record),
        num_steps=TRAIN_STEPS,
        checkpoint_every=CHECKPOINT_EVERY,
        returncode=proc.returncode,
        result=json.loads(proc.stdout),
        stderr=proc.stderr,
    )


@pytest.fixture(scope="session")
def run_tfod() -> Any:
    """``run_tfod(["doctor", "--json"])``: the real CLI in a subprocess (see :func:`tfod_subprocess`)."""
    return tfod_subprocess


def model_dir_state(directory: Path) -> dict[str, tuple[str, int]]:
    """``relative path -> (sha256, mtime_ns)`` of every file below ``directory``.

    SQLite's WAL companions of the ledger are what any reader of a WAL database touches, read-only
    ones too: ``-shm`` (the WAL index, no data) is left out, and an empty ``-wal`` counts as none
    (a written frame would show: a non-empty ``-wal`` is compared by content).
    """
    state: dict[str, tuple[str, int]] = {}
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or path.name.endswith("-shm"):
            continue
        data = path.read_bytes()
        name = str(path.relative_to(directory))
        if path.name.endswith("-wal"):
            if data:
                state[name] = (hashlib.sha256(data).hexdigest(), 0)
            continue
        state[name] = (hashlib.sha256(data).hexdigest(), path.stat().st_mtime_ns)
    return state


@dataclass(frozen=True)
class EvaluatedModel:
    """A copy of the trained model directory after ``tfod evaluate --metrics coco``."""

    model_dir: Path
    pipeline: Path
    train_record: Path
    eval_record: Path
    label_map: Path


@dataclass(frozen=True)
class Exported:
    """The session's ``tfod export`` (SavedModel + float TFLite) of ``model``'s best checkpoint."""

    model: EvaluatedModel
    out: Path
    result: dict[str, Any]
    before: dict[str, tuple[str, int]]
    after: dict[str, tuple[str, int]]
    seconds: float


@pytest.fixture(scope="session")
def evaluated_model(
    tmp_path_factory: pytest.TempPathFactory, trained_model_dir: TrainedModel
) -> EvaluatedModel:
    """A hard-linked copy of the trained model directory after ``tfod evaluate --metrics coco``."""
    model_dir = tmp_path_factory.mktemp("evaluated_model") / "model"
    shutil.copytree(
        trained_model_dir.model_dir,
        model_dir,
        copy_function=os.link,
        ignore=shutil.ignore_patterns("eval", "logs"),
    )
    proc = tfod_subprocess(
        ["evaluate", "--pipeline", str(trained_model_dir.pipeline), "--model-dir", str(model_dir), "--json"]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return EvaluatedModel(
        model_dir=model_dir,
        pipeline=trained_model_dir.pipeline,
        train_record=trained_model_dir.train_record,
        eval_record=trained_model_dir.eval_record,
        label_map=trained_model_dir.label_map,
    )


@pytest.fixture(scope="session")
def model_state() -> Any:
    """``model_state(directory)``: see :func:`model_dir_state` (test modules cannot import conftest)."""
    return model_dir_state


def export_args(model: EvaluatedModel, out: Path, *extra: str) -> list[str]:
    """``tfod export`` arguments for ``model`` into ``out``."""
    return [
        "export",
        "--pipeline",
        str(model.pipeline),
        "--model-dir",
        str(model.model_dir),
        "--out",
        str(out),
        *extra,
    ]


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory, evaluated_model: EvaluatedModel) -> Exported:
    """``tfod export --checkpoint best --format saved_model,tflite --json`` (see the module docstring)."""
    import time

    out = tmp_path_factory.mktemp("exported") / "export"
    before = model_dir_state(evaluated_model.model_dir)
    started = time.perf_counter()
    proc = tfod_subprocess([*export_args(evaluated_model, out, "--format", "saved_model,tflite"), "--json"])
    seconds = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"tfod export (saved_model,tflite): {seconds:.1f} s")
    return Exported(
        model=evaluated_model,
        out=out,
        result=json.loads(proc.stdout),
        before=before,
        after=model_dir_state(evaluated_model.model_dir),
        seconds=seconds,
    )
