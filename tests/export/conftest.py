"""Fixtures for the export tests, on top of the session's shared export (tests/conftest.py).

``evaluated_model`` (a copy of ``trained_model_dir`` after ``tfod evaluate --metrics coco``) and
``exported`` (its ``tfod export --checkpoint best --format saved_model,tflite``) are shared with
the predict tests. ``exports`` adds the one export only these tests need: an ``int8`` TFLite model
at score threshold 0.3 (quantization and a different threshold: a separate ``tfod export`` run,
TFLite only, ~1 minute), with the model directory's file hashes and mtimes before and after both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

INT8_THRESHOLD = 0.3


@dataclass(frozen=True)
class Exports:
    model: Any
    float_dir: Path
    float_json: dict[str, Any]
    int8_dir: Path
    int8_json: dict[str, Any]
    before: dict[str, tuple[str, int]]
    after: dict[str, tuple[str, int]]
    int8_threshold: float = INT8_THRESHOLD


@pytest.fixture(scope="session")
def exports(
    tmp_path_factory: pytest.TempPathFactory, exported: Any, run_tfod: Any, model_state: Any
) -> Exports:
    """The shared float export plus the int8 one (see the module docstring)."""
    model = exported.model
    int8_dir = tmp_path_factory.mktemp("exports") / "int8"
    proc = run_tfod(
        [
            "export",
            "--pipeline",
            str(model.pipeline),
            "--model-dir",
            str(model.model_dir),
            "--out",
            str(int8_dir),
            "--format",
            "tflite",
            "--tflite-quantize",
            "int8",
            "--representative-records",
            str(model.train_record),
            "--score-threshold",
            str(INT8_THRESHOLD),
            "--json",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Exports(
        model=model,
        float_dir=exported.out,
        float_json=exported.result,
        int8_dir=int8_dir,
        int8_json=json.loads(proc.stdout),
        before=exported.before,
        after=model_state(model.model_dir),
    )
