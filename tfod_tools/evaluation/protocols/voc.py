"""The Pascal VOC protocols: ``voc07`` (11-point AP) and ``voc`` (every-point AP, with checkpoint tags).

Checkpoint tags (``voc``): ``PascalBoxes_Precision/mAP@0.5IOU`` and
``PascalBoxes_PerformanceByCategory/AP@0.5IOU/<name>`` (every-point AP, as the API's
``pascal_voc_detection_metrics``).

>>> from tfod_tools.evaluation.protocols import get_protocol
>>> [(p.order, p.tags is not None) for p in (get_protocol("voc07"), get_protocol("voc"))]
[(20, False), (30, True)]
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from tfod_tools.data.model import AnnotatedSet
from tfod_tools.evaluation.protocols import MetricOptions, MetricProtocol, ProtocolResult, register_protocol
from tfod_tools.metrics.voc import evaluate_voc

__all__ = ["VOC_CATEGORY", "VOC_MAP"]

VOC_MAP = "PascalBoxes_Precision/mAP@0.5IOU"
VOC_CATEGORY = "PascalBoxes_PerformanceByCategory/AP@0.5IOU/"


def _voc_tags(data: AnnotatedSet) -> dict[str, float]:
    """The Pascal VOC checkpoint tags of ``data`` (see the module docstring)."""
    voc = evaluate_voc(data, method="voc")
    tags = {VOC_MAP: float(voc.mAP)}
    for name, stats in voc.per_class.items():
        # The API's Pascal evaluator NFKD-normalises category names in its tags (COCO's does not).
        tags[VOC_CATEGORY + unicodedata.normalize("NFKD", name)] = float(stats["AP"])
    return tags


def _voc_result(method: str) -> Callable[[AnnotatedSet, MetricOptions], ProtocolResult]:
    def run(data: AnnotatedSet, options: MetricOptions) -> ProtocolResult:
        from tfod_tools.metrics.summary import voc_class_table

        res = evaluate_voc(
            data,
            iou=options.iou,
            method=method,  # type: ignore[arg-type]
            pixel_convention=options.pixel_convention,  # type: ignore[arg-type]
        )
        return ProtocolResult(res.to_dict(), [voc_class_table(res)])

    return run


register_protocol(
    MetricProtocol("voc07", "Pascal VOC 2007 AP: 11-point interpolation", _voc_result("voc07"), order=20)
)
register_protocol(
    MetricProtocol(
        "voc", "Pascal VOC AP: every point (VOC 2010+)", _voc_result("voc"), tags=_voc_tags, order=30
    )
)
