"""A real ``tensorboard`` server on 127.0.0.1 serves what ``tfod evaluate`` wrote: one point per
evaluated step for ``DetectionBoxes_Precision/mAP``, PR curves, the custom-scalars layout.

Reuses the server helpers of ``tests/tensorboard/test_server.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.slow

MAP = "DetectionBoxes_Precision/mAP"


def _server_helpers() -> ModuleType:
    path = Path(__file__).parents[1] / "tensorboard" / "test_server.py"
    spec = importlib.util.spec_from_file_location("_tb_server_helpers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tensorboard_serves_one_point_per_step(evaluated: tuple[Path, dict[str, Any]]) -> None:
    model_dir, result = evaluated
    steps = sorted(e["step"] for e in result["evaluated"])
    assert steps == [0, 100, 200, 300]
    tb = _server_helpers()
    with tb.tensorboard(model_dir, "true") as (port, log, proc):
        rows = tb._wait_for(
            lambda: tb._get(port, "/data/plugin/scalars/scalars", run="eval", tag=MAP),
            lambda rows: len(rows) >= len(steps),
            log,
            proc,
        )
        assert [int(r[1]) for r in rows] == steps
        ledger_values = {e["step"]: e["metrics"][MAP] for e in result["evaluated"]}
        assert [r[2] for r in rows] == pytest.approx([ledger_values[s] for s in steps], abs=1e-6)

        tags = tb._wait_for(lambda: tb._get(port, "/data/plugin/pr_curves/tags"), bool, log, proc)
        assert set(tags["eval"]) == {"DetectionBoxes_PR@.50IOU/square", "DetectionBoxes_PR@.50IOU/triangle"}
        pr = tb._get(
            port, "/data/plugin/pr_curves/pr_curves", run="eval", tag="DetectionBoxes_PR@.50IOU/square"
        )
        assert [entry["step"] for entry in pr["eval"]] == steps
        assert any(max(entry["precision"], default=0) > 0 for entry in pr["eval"])

        layout = tb._wait_for(lambda: tb._get(port, "/data/plugin/custom_scalars/layout"), bool, log, proc)
        assert "Loss" in [c["title"] for c in layout["category"]]
