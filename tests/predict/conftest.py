"""The predict tests use the session's shared ``tfod export`` (tests/conftest.py ``exported``).

``exported_model`` is its directory (``saved_model/``, ``model.tflite``, ``pipeline.config``,
``label_map.pbtxt``, ``export.json``: ``tfod predict --model DIR`` takes the SavedModel);
``exported_tflite`` is the same directory, for ``DIR/model.tflite`` (float32). The exported
checkpoint is the ledger's best one: ``export.json`` names its step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def exported_model(exported: Any) -> Path:
    """``DIR`` with ``saved_model/``, ``pipeline.config``, ``label_map.pbtxt``, ``export.json``."""
    return Path(exported.out)


@pytest.fixture(scope="session")
def exported_tflite(exported: Any) -> Path:
    """``DIR`` with ``model.tflite`` (float32), ``pipeline.config`` and ``label_map.pbtxt``."""
    return Path(exported.out)
