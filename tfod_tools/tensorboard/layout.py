"""The custom-scalars layout for TF OD API runs.

TensorBoard's Custom Scalars dashboard draws one chart per entry of a ``Layout`` proto; each chart
plots every tag (of every run) matching one of its regular expressions. :func:`odapi_layout`
puts ``Loss/total_loss`` of ``train`` and ``eval`` on one chart and groups the COCO precision
(``DetectionBoxes_Precision/...``) and recall (``DetectionBoxes_Recall/...``) tags.
Write it with :meth:`tfod_tools.tensorboard.writer.EventWriter.add_custom_scalars_layout`.

>>> layout = odapi_layout()
>>> [c.title for c in layout.category]
['Loss', 'COCO precision (mAP)', 'COCO recall (AR)']
>>> tags = ["Loss/total_loss", "DetectionBoxes_Recall/AR@100", "steps_per_sec"]
>>> matching_tags(layout, tags)["COCO recall (AR)"]
['DetectionBoxes_Recall/AR@100']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from tensorboard.plugins.custom_scalar import layout_pb2

__all__ = ["chart", "matching_tags", "odapi_layout"]


def chart(title: str, patterns: Sequence[str]) -> layout_pb2.Chart:
    """A multi-line chart of every tag matching one of ``patterns`` (regular expressions)."""
    for pattern in patterns:
        re.compile(pattern)
    return layout_pb2.Chart(title=title, multiline=layout_pb2.MultilineChartContent(tag=list(patterns)))


def odapi_layout() -> layout_pb2.Layout:
    """Loss (train vs eval on one chart), mAP and AR groups for ``model_main_tf2``'s tags."""
    loss = layout_pb2.Category(
        title="Loss",
        chart=[
            chart("Total loss: train vs eval", [r"^Loss/total_loss$"]),
            chart(
                "Loss components",
                [r"^Loss/localization_loss$", r"^Loss/classification_loss$", r"^Loss/regularization_loss$"],
            ),
            chart("Learning rate", [r"^learning_rate$"]),
        ],
    )
    precision = layout_pb2.Category(
        title="COCO precision (mAP)",
        chart=[
            chart("mAP, mAP@.50IOU, mAP@.75IOU", [r"^DetectionBoxes_Precision/mAP(@\.\d+IOU)?$"]),
            chart("mAP by object size", [r"^DetectionBoxes_Precision/mAP \((small|medium|large)\)$"]),
            chart("All precision tags", [r"^DetectionBoxes_Precision/.*"]),
        ],
    )
    recall = layout_pb2.Category(
        title="COCO recall (AR)",
        chart=[
            chart("AR@1, AR@10, AR@100", [r"^DetectionBoxes_Recall/AR@\d+$"]),
            chart("AR@100 by object size", [r"^DetectionBoxes_Recall/AR@100 \((small|medium|large)\)$"]),
            chart("All recall tags", [r"^DetectionBoxes_Recall/.*"]),
        ],
    )
    return layout_pb2.Layout(category=[loss, precision, recall])


def matching_tags(layout: layout_pb2.Layout, tags: Iterable[str]) -> dict[str, list[str]]:
    """For each category of ``layout``, the ``tags`` its charts would show (as the dashboard
    matches them: a regular-expression search)."""
    names = sorted(set(tags))
    result: dict[str, list[str]] = {}
    for category in layout.category:
        patterns = [re.compile(p) for c in category.chart for p in c.multiline.tag]
        result[category.title] = [t for t in names if any(p.search(t) for p in patterns)]
    return result
