"""The ``coco`` protocol: COCO AP@[.5:.95] and AR (pycocotools-equal), and its checkpoint tags.

Checkpoint tags: the 12 ``DetectionBoxes_Precision/...`` and ``DetectionBoxes_Recall/...`` statistics
of :func:`tfod_tools.metrics.coco.evaluate_coco`, and per class
``DetectionBoxes_PerformanceByCategory/mAP/<name>`` (the stock per-category tag) and
``DetectionBoxes_PerformanceByCategory/AP@.50IOU/<name>``.

>>> from tfod_tools.evaluation.protocols import get_protocol
>>> coco = get_protocol("coco")
>>> coco.masks, coco.order, coco.tags is not None
(True, 10, True)
"""

from __future__ import annotations

from tfod_tools.data.model import AnnotatedSet
from tfod_tools.evaluation.protocols import MetricOptions, MetricProtocol, ProtocolResult, register_protocol
from tfod_tools.metrics.coco import CATEGORY_AP50, CATEGORY_MAP, evaluate_coco

__all__: list[str] = []  # the module registers the coco protocol; nothing to import from it


def _coco_tags(data: AnnotatedSet) -> dict[str, float]:
    """The COCO checkpoint tags of ``data`` (see the module docstring)."""
    result = evaluate_coco(data)
    tags = dict(result.tags())
    for name, stats in result.per_class.items():
        tags[CATEGORY_MAP + name] = float(stats["AP"])
        tags[CATEGORY_AP50 + name] = float(stats["AP50"])
    return tags


def _coco_result(data: AnnotatedSet, options: MetricOptions) -> ProtocolResult:
    from tfod_tools.metrics.summary import coco_class_table, coco_summary_lines

    res = evaluate_coco(data, options.iou_type)  # type: ignore[arg-type]
    return ProtocolResult(res.to_dict(), ["\n".join(coco_summary_lines(res)), coco_class_table(res)])


register_protocol(
    MetricProtocol(
        "coco",
        "COCO AP@[.5:.95] and AR, pycocotools-equal (bbox or segm)",
        _coco_result,
        tags=_coco_tags,
        masks=True,
        order=10,
    )
)
