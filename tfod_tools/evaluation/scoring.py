"""One checkpoint's metrics under the stock TF OD API TensorBoard tags, and its PR curves.

:func:`checkpoint_metrics` turns an evaluated :class:`AnnotatedSet` (plus the eval losses) into
``{tag: value}``:

- COCO (``coco``): the 12 ``DetectionBoxes_Precision/...`` and ``DetectionBoxes_Recall/...``
  statistics of :func:`tfod_tools.metrics.coco.evaluate_coco`, and per class
  ``DetectionBoxes_PerformanceByCategory/mAP/<name>`` (the stock per-category tag) and
  ``DetectionBoxes_PerformanceByCategory/AP@.50IOU/<name>``;
- Pascal VOC (``voc``): ``PascalBoxes_Precision/mAP@0.5IOU`` and
  ``PascalBoxes_PerformanceByCategory/AP@0.5IOU/<name>`` (every-point AP, as the API's
  ``pascal_voc_detection_metrics``);
- the losses (``Loss/...``) as given.

:func:`pr_counts` gives each class's PR curve at IoU 0.5 (COCO matching) as TensorBoard's PR Curves
plugin counts (tp, fp, tn, fn per threshold; fn includes ground truth never detected).

Every metric protocol is a :class:`MetricProtocol` in :data:`PROTOCOL_REGISTRY`, added by
:func:`register_protocol`: ``tfod metrics --protocol`` offers every registered one, ``tfod evaluate
--metrics`` (and :func:`checkpoint_metrics`) those with checkpoint tags. A new protocol is one
``register_protocol(...)`` call; nothing else is edited.

>>> protocol_names(), checkpoint_protocol_names()
(('coco', 'voc07', 'voc'), ('coco', 'voc'))

>>> from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
>>> data = AnnotatedSet(
...     images=ImageTable.from_sizes([1], [100], [100]), categories={1: "cat"},
...     ground_truth=GroundTruth.from_arrays([1, 1], [[0, 0, 50, 50], [60, 60, 90, 90]], [1, 1]),
...     detections=Detections.from_arrays([1], [[0, 0, 50, 50]], [1], [0.9]))
>>> tags = checkpoint_metrics(data, ("coco", "voc"), {"Loss/total_loss": 1.5})
>>> round(tags["DetectionBoxes_Precision/mAP@.50IOU"], 4), tags["PascalBoxes_Precision/mAP@0.5IOU"]
(0.505, 0.5)
>>> round(tags["DetectionBoxes_PerformanceByCategory/mAP/cat"], 4), tags["Loss/total_loss"]
(0.505, 1.5)
>>> counts = pr_counts(data, num_thresholds=3)["cat"]
>>> counts[0].tolist(), counts[3].tolist()  # tp and fn at thresholds 0, 0.5, 1
([1.0, 1.0, 0.0], [1.0, 1.0, 2.0])
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tfod_tools.data.model import AnnotatedSet
from tfod_tools.errors import TfodError
from tfod_tools.metrics.coco import evaluate_coco
from tfod_tools.metrics.curves import pr_curves
from tfod_tools.metrics.voc import evaluate_voc
from tfod_tools.tensorboard.pr_curves import DEFAULT_NUM_THRESHOLDS, PRCurveSummary, compute_pr_curve

__all__ = [
    "PROTOCOL_REGISTRY",
    "MetricOptions",
    "MetricProtocol",
    "ProtocolResult",
    "checkpoint_metrics",
    "checkpoint_protocol_names",
    "get_protocol",
    "parse_protocols",
    "pr_counts",
    "pr_tag",
    "protocol_names",
    "register_protocol",
    "unregister_protocol",
]

CATEGORY_MAP = "DetectionBoxes_PerformanceByCategory/mAP/"
CATEGORY_AP50 = "DetectionBoxes_PerformanceByCategory/AP@.50IOU/"
VOC_MAP = "PascalBoxes_Precision/mAP@0.5IOU"
VOC_CATEGORY = "PascalBoxes_PerformanceByCategory/AP@0.5IOU/"
PR_TAG = "DetectionBoxes_PR@.50IOU/"


@dataclass(frozen=True)
class MetricOptions:
    """The ``tfod metrics`` settings a protocol may read."""

    iou_type: str = "bbox"
    iou: float = 0.5
    pixel_convention: str = "continuous"


@dataclass
class ProtocolResult:
    """One protocol's result: the JSON document and the blocks printed for people."""

    document: dict[str, Any]
    human: list[Any]
    """Printed one after the other (``str`` or a rich renderable such as a table)."""


@dataclass(frozen=True)
class MetricProtocol:
    """A metric protocol: ``evaluate`` serves ``tfod metrics``; ``tags`` (optional) ``tfod evaluate``.

    ``masks``: the protocol reads masks when ``--iou-type segm`` (the COCO file's masks are loaded).
    """

    name: str
    description: str
    evaluate: Callable[[AnnotatedSet, MetricOptions], ProtocolResult]
    tags: Callable[[AnnotatedSet], dict[str, float]] | None = None
    masks: bool = False


PROTOCOL_REGISTRY: dict[str, MetricProtocol] = {}
"""Every registered protocol by name, in registration order (the order results are listed in)."""


def register_protocol(protocol: MetricProtocol) -> MetricProtocol:
    """Add ``protocol`` to :data:`PROTOCOL_REGISTRY` (a description is required); returns it."""
    if not protocol.description.strip():
        raise ValueError(f"metric protocol {protocol.name!r} needs a description")
    PROTOCOL_REGISTRY[protocol.name] = protocol
    return protocol


def unregister_protocol(name: str) -> None:
    """Remove a protocol (tests use it to undo a registration)."""
    PROTOCOL_REGISTRY.pop(name, None)


def protocol_names() -> tuple[str, ...]:
    """Every registered protocol (``tfod metrics --protocol``)."""
    return tuple(PROTOCOL_REGISTRY)


def checkpoint_protocol_names() -> tuple[str, ...]:
    """The protocols that give checkpoint tags (``tfod evaluate --metrics``)."""
    return tuple(name for name, p in PROTOCOL_REGISTRY.items() if p.tags is not None)


def get_protocol(name: str) -> MetricProtocol:
    """The registered protocol ``name``; an unknown one is a :class:`TfodError`.

    >>> get_protocol("voc07").description
    'Pascal VOC 2007 AP: 11-point interpolation'
    """
    if name not in PROTOCOL_REGISTRY:
        raise TfodError(f"unknown protocol {name!r}", fix=f"use one of {', '.join(PROTOCOL_REGISTRY)}")
    return PROTOCOL_REGISTRY[name]


def parse_protocols(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"coco,voc"`` -> ``("coco", "voc")``; unknown names are a :class:`TfodError`.

    >>> parse_protocols("voc, coco")
    ('coco', 'voc')
    """
    known = checkpoint_protocol_names()
    items = text.split(",") if isinstance(text, str) else list(text)
    names = {item.strip().lower() for item in items if item.strip()}
    unknown = sorted(names - set(known))
    if unknown or not names:
        raise TfodError(
            f"unknown metrics {', '.join(unknown) or '(none)'}", fix=f"use --metrics {','.join(known)}"
        )
    return tuple(p for p in known if p in names)


def pr_tag(name: str) -> str:
    """The PR-curve tag of a class.

    >>> pr_tag("cat")
    'DetectionBoxes_PR@.50IOU/cat'
    """
    return PR_TAG + name


def checkpoint_metrics(
    data: AnnotatedSet, protocols: Sequence[str], losses: Mapping[str, float] | None = None
) -> dict[str, float]:
    """``{tag: value}`` for one checkpoint (see the module docstring)."""
    tags: dict[str, float] = {}
    for name, protocol in PROTOCOL_REGISTRY.items():
        if name in protocols and protocol.tags is not None:
            tags.update(protocol.tags(data))
    for key, value in (losses or {}).items():
        tags[key] = float(value)
    return tags


def _coco_tags(data: AnnotatedSet) -> dict[str, float]:
    result = evaluate_coco(data)
    tags = dict(result.tags())
    for name, stats in result.per_class.items():
        tags[CATEGORY_MAP + name] = float(stats["AP"])
        tags[CATEGORY_AP50 + name] = float(stats["AP50"])
    return tags


def _voc_tags(data: AnnotatedSet) -> dict[str, float]:
    voc = evaluate_voc(data, method="voc")
    tags = {VOC_MAP: float(voc.mAP)}
    for name, stats in voc.per_class.items():
        # The API's Pascal evaluator NFKD-normalises category names in its tags (COCO's does not).
        tags[VOC_CATEGORY + unicodedata.normalize("NFKD", name)] = float(stats["AP"])
    return tags


def _coco_result(data: AnnotatedSet, options: MetricOptions) -> ProtocolResult:
    from tfod_tools.metrics.summary import coco_class_table, coco_summary_lines

    res = evaluate_coco(data, options.iou_type)  # type: ignore[arg-type]
    return ProtocolResult(res.to_dict(), ["\n".join(coco_summary_lines(res)), coco_class_table(res)])


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
    MetricProtocol(
        "coco",
        "COCO AP@[.5:.95] and AR, pycocotools-equal (bbox or segm)",
        _coco_result,
        tags=_coco_tags,
        masks=True,
    )
)
register_protocol(MetricProtocol("voc07", "Pascal VOC 2007 AP: 11-point interpolation", _voc_result("voc07")))
register_protocol(
    MetricProtocol("voc", "Pascal VOC AP: every point (VOC 2010+)", _voc_result("voc"), tags=_voc_tags)
)


def pr_counts(
    data: AnnotatedSet, iou: float = 0.5, num_thresholds: int = DEFAULT_NUM_THRESHOLDS
) -> dict[str, npt.NDArray[np.float64]]:
    """Per class, a ``(4, num_thresholds)`` array: tp, fp, tn, fn at thresholds ``i/(T-1)``."""
    out: dict[str, npt.NDArray[np.float64]] = {}
    for name, curve in pr_curves(data, iou).items():
        hits = np.diff(curve.tp, prepend=0).astype(bool)
        binned = compute_pr_curve(hits, curve.scores, num_thresholds=num_thresholds)
        fn = curve.num_gt - binned.tp
        out[name] = np.stack([binned.tp, binned.fp, binned.tn, fn]).astype(np.float64)
    return out


def curve_from_counts(counts: npt.NDArray[np.float64]) -> PRCurveSummary:
    """The PR Curves plugin curve of a ``(4, T)`` counts array."""
    return PRCurveSummary.from_counts(counts[0], counts[1], counts[2], counts[3])
