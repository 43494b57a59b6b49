"""An export of the session's trained tiny SSD (ckpt-4, step 300), made once per session.

The API's own exporter (``exporter_lib_v2.export_inference_graph``, input type ``image_tensor``)
runs in a child process through the compatibility layer and writes the layout ``tfod export``
writes: ``DIR/saved_model/``, ``DIR/pipeline.config`` and a copy of the label map as
``DIR/label_map.pbtxt``. ``exported_tflite`` adds ``DIR/model.tflite`` (float32, the API's TFLite
exporter and ``TFLiteConverter``) to a directory of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

_EXPORT = """
import sys
from tfod_tools.odapi import compat
compat.install()
from object_detection import exporter_lib_v2
from tfod_tools.odapi.pipeline import load_pipeline
exporter_lib_v2.export_inference_graph("image_tensor", load_pipeline(sys.argv[1]), sys.argv[2], sys.argv[3])
"""

_TFLITE = """
import sys
from pathlib import Path
from tfod_tools.odapi import compat
compat.install()
import tensorflow as tf
from object_detection import export_tflite_graph_lib_tf2
from tfod_tools.odapi.pipeline import load_pipeline
work = Path(sys.argv[3]) / "tflite_graph"
export_tflite_graph_lib_tf2.export_tflite_model(load_pipeline(sys.argv[1]), sys.argv[2], str(work), 100, True)
converter = tf.lite.TFLiteConverter.from_saved_model(str(work / "saved_model"))
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
(Path(sys.argv[3]) / "model.tflite").write_bytes(converter.convert())
"""


def _python(script: str, *args: str) -> float:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", NO_ALBUMENTATIONS_UPDATE="1", CUDA_VISIBLE_DEVICES="-1")
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"export failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return time.perf_counter() - started


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory: pytest.TempPathFactory, trained_model_dir: Any) -> Path:
    """``DIR`` with ``saved_model/``, ``pipeline.config``, ``label_map.pbtxt`` (the newest checkpoint)."""
    out = tmp_path_factory.mktemp("exported") / "export"
    seconds = _python(_EXPORT, str(trained_model_dir.pipeline), str(trained_model_dir.model_dir), str(out))
    shutil.copyfile(trained_model_dir.label_map, out / "label_map.pbtxt")
    shutil.rmtree(out / "checkpoint", ignore_errors=True)
    print(f"SavedModel export: {seconds:.1f} s")
    return out


@pytest.fixture(scope="session")
def exported_tflite(tmp_path_factory: pytest.TempPathFactory, trained_model_dir: Any) -> Path:
    """``DIR`` with ``model.tflite`` (float32), ``pipeline.config`` and ``label_map.pbtxt``."""
    out = tmp_path_factory.mktemp("exported_tflite")
    seconds = _python(_TFLITE, str(trained_model_dir.pipeline), str(trained_model_dir.model_dir), str(out))
    shutil.rmtree(out / "tflite_graph", ignore_errors=True)
    shutil.copyfile(trained_model_dir.pipeline, out / "pipeline.config")
    shutil.copyfile(trained_model_dir.label_map, out / "label_map.pbtxt")
    print(f"TFLite export: {seconds:.1f} s")
    return out
