"""Fixtures for the export tests: one evaluated copy of the session's trained model, exported once.

``evaluated_model``: a hard-linked copy of ``trained_model_dir`` (ckpt-1..4, steps 0..300) after
``tfod evaluate --metrics coco`` (its ledger and the kept ``eval/best`` copy). ``exports``: the real
``tfod export --checkpoint best`` run twice on it (SavedModel + float TFLite; int8 TFLite at score
threshold 0.3), shared by every test of the session, with the model directory's file hashes and
mtimes before and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

INT8_THRESHOLD = 0.3


def tree_state(directory: Path) -> dict[str, tuple[str, int]]:
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
        if path.name.endswith("-wal"):
            if data:
                state[str(path.relative_to(directory))] = (hashlib.sha256(data).hexdigest(), 0)
            continue
        state[str(path.relative_to(directory))] = (hashlib.sha256(data).hexdigest(), path.stat().st_mtime_ns)
    return state


@dataclass(frozen=True)
class EvaluatedModel:
    model_dir: Path
    pipeline: Path
    train_record: Path
    eval_record: Path
    label_map: Path


@dataclass(frozen=True)
class Exports:
    model: EvaluatedModel
    float_dir: Path
    float_json: dict[str, Any]
    int8_dir: Path
    int8_json: dict[str, Any]
    before: dict[str, tuple[str, int]]
    after: dict[str, tuple[str, int]]
    int8_threshold: float = INT8_THRESHOLD


@pytest.fixture(scope="session")
def evaluated_model(
    tmp_path_factory: pytest.TempPathFactory, trained_model_dir: Any, run_tfod: Any
) -> EvaluatedModel:
    """A copy of the trained model directory after ``tfod evaluate --metrics coco``."""
    model_dir = tmp_path_factory.mktemp("export_model") / "model"
    shutil.copytree(
        trained_model_dir.model_dir,
        model_dir,
        copy_function=os.link,
        ignore=shutil.ignore_patterns("eval", "logs"),
    )
    proc = run_tfod(
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
def exports(
    tmp_path_factory: pytest.TempPathFactory, evaluated_model: EvaluatedModel, run_tfod: Any
) -> Exports:
    """The two real exports of the best checkpoint (see the module docstring)."""
    root = tmp_path_factory.mktemp("exports")
    before = tree_state(evaluated_model.model_dir)
    float_dir, int8_dir = root / "float", root / "int8"
    proc = run_tfod([*export_args(evaluated_model, float_dir, "--format", "saved_model,tflite"), "--json"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    float_json = json.loads(proc.stdout)
    proc = run_tfod(
        [
            *export_args(evaluated_model, int8_dir, "--format", "tflite", "--tflite-quantize", "int8"),
            "--representative-records",
            str(evaluated_model.train_record),
            "--score-threshold",
            str(INT8_THRESHOLD),
            "--json",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Exports(
        model=evaluated_model,
        float_dir=float_dir,
        float_json=float_json,
        int8_dir=int8_dir,
        int8_json=json.loads(proc.stdout),
        before=before,
        after=tree_state(evaluated_model.model_dir),
    )
