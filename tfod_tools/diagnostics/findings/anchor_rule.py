"""The ``anchor_coverage`` rule: :func:`~tfod_tools.diagnostics.findings.anchors.anchor_coverage` of
an SSD pipeline's anchors on the train records (else the eval ground truth); a note says why not.
"""

from __future__ import annotations

from typing import Any

from tfod_tools.diagnostics.anchors import AnchorModel
from tfod_tools.diagnostics.findings import finding_rule
from tfod_tools.diagnostics.findings.anchors import anchor_coverage
from tfod_tools.diagnostics.model import Finding

__all__ = ["anchor_coverage_rule"]


@finding_rule(150, needs=("config",), name="anchor_coverage")
def anchor_coverage_rule(inputs: Any) -> Finding | None:
    """How well the SSD anchors cover the train (else eval) boxes: :func:`.anchors.anchor_coverage`."""
    model = AnchorModel.from_pipeline(inputs.config)
    if model is None:
        inputs.notes.append("anchor_coverage covers SSD pipelines only")
        return None
    data, role = (
        (inputs.train_set, "train") if inputs.train_set is not None else (inputs.ground_truth_set, "eval")
    )
    if data is None:
        inputs.notes.append("anchor_coverage needs the train or eval records")
        return None
    return anchor_coverage(model, data, source=role)
