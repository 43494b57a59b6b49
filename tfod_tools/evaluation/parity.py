"""The parity of an exported model with its source checkpoint (``tfod evaluate --model``).

:func:`parity` compares an export's metrics (from :func:`tfod_tools.evaluation.exported.evaluate_exported`)
with the source checkpoint ``export.json`` names: the checkpoint's values from the source model
directory's ledger (opened read-only), the share of detections that agree with its stored detections
(:func:`agreement`: same class, IoU >= 0.99, ``|score delta| <= 1e-3``), and the mAP lost to the
export's post-processing score threshold (:func:`threshold_loss`: the checkpoint's stored detections,
those at or below the threshold removed as the API's NMS removes them, scored again; the checkpoint's
mAP minus that). Every COCO value that dropped by more than the format's tolerance
(:data:`TOLERANCES`, ``--max-drop``) is a finding, with its causes where they can be named: int8
quantisation, the score threshold (when it costs mAP on the checkpoint's own detections; without
stored detections, when it is above the eval config's), detections capped by ``max_total_detections``.

>>> tolerance_for("saved_model", None), tolerance_for("tflite", "none"), tolerance_for("tflite", "int8")
(1e-06, 0.01, 0.03)
>>> a = Detections.from_arrays([1, 1], [[0, 0, 10, 10], [20, 20, 30, 30]], [1, 2], [0.9, 0.5])
>>> b = Detections.from_arrays([1, 1], [[0, 0, 10, 10.01], [20, 20, 30, 30]], [1, 1], [0.9004, 0.5])
>>> agreement(a, b)
0.5
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from tfod_tools.data import store
from tfod_tools.data.model import AnnotatedSet, Detections
from tfod_tools.evaluation.scoring import checkpoint_metrics
from tfod_tools.ledger import Ledger
from tfod_tools.metrics.boxes import iou_matrix
from tfod_tools.metrics.coco import CATEGORY_MAP, COCO_TAGS
from tfod_tools.odapi.exported import ExportedModel

__all__ = [
    "TOLERANCES",
    "Parity",
    "agreement",
    "export_score_threshold",
    "parity",
    "parity_table",
    "same_images",
    "source_step",
    "threshold_loss",
    "tolerance_for",
]

TOLERANCES: dict[str, float] = {"saved_model": 1e-6, "tflite": 0.01, "int8": 0.03}
"""The largest drop of a COCO value that is not a finding, per export format."""


def tolerance_for(kind: str, quantize: str | None) -> float:
    """The default ``--max-drop`` of a model of ``kind`` (``saved_model``/``tflite``) and quantisation."""
    if kind == "tflite" and quantize == "int8":
        return TOLERANCES["int8"]
    return TOLERANCES[kind]


def agreement(checkpoint: Detections, export: Detections, *, iou: float = 0.99, score: float = 1e-3) -> float:
    """The share of detections that agree: same image and class, IoU >= ``iou``, score within ``score``.

    Pairs are matched one to one (greedily, best IoU first); the share is matched pairs over the
    larger of the two counts (1.0 when both are empty).
    """
    total = max(len(checkpoint.scores), len(export.scores))
    if total == 0:
        return 1.0
    matched = 0
    keys = set(zip(checkpoint.image_ids.tolist(), checkpoint.classes.tolist(), strict=True))
    for image_id, cls in keys:
        a = (checkpoint.image_ids == image_id) & (checkpoint.classes == cls)
        b = (export.image_ids == image_id) & (export.classes == cls)
        if not b.any():
            continue
        ious = iou_matrix(checkpoint.boxes[a], export.boxes[b])
        close = np.abs(checkpoint.scores[a][:, None] - export.scores[b][None, :]) <= score
        ious = np.where((ious >= iou) & close, ious, -1.0)
        while ious.size and ious.max() >= 0:
            i, j = np.unravel_index(int(np.argmax(ious)), ious.shape)
            matched += 1
            ious[i, :] = -1.0
            ious[:, j] = -1.0
    return matched / total


@dataclass
class Parity:
    """The export against its source checkpoint (see the module docstring)."""

    checkpoint: str
    step: int
    tolerance: float
    rows: list[dict[str, Any]] = field(default_factory=list)
    """One per COCO value and class AP: ``name``, ``tag``, ``checkpoint``, ``export``, ``delta``."""
    agreement: float | None = None
    """The share of detections that agree (None when the checkpoint's detections are not stored)."""
    findings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    """Per image: ``export`` (the model call) and ``checkpoint`` (its whole ledger evaluation: model
    and scoring, so an upper bound)."""
    score_threshold: float | None = None
    """The export's post-processing score threshold (None when unknown)."""
    threshold_loss: float | None = None
    """The checkpoint's mAP minus the mAP of its stored detections above :attr:`score_threshold`:
    the mAP the threshold alone costs (None without stored detections of these images)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "checkpoint": self.checkpoint,
            "step": self.step,
            "tolerance": self.tolerance,
            "rows": self.rows,
            "agreement": self.agreement,
            "findings": list(self.findings),
            "notes": list(self.notes),
            "latency_ms_per_image": dict(self.latency_ms),
            "score_threshold": self.score_threshold,
            "threshold_loss": self.threshold_loss,
        }


def export_score_threshold(model: ExportedModel) -> float | None:
    """The export's post-processing score threshold: ``export.json``'s, else its pipeline's NMS."""
    post = model.manifest.get("post_processing") if isinstance(model.manifest, dict) else None
    if isinstance(post, dict) and post.get("score_threshold") is not None:
        return float(post["score_threshold"])
    return _nms_threshold(model.config)[0]


def threshold_loss(checkpoint: AnnotatedSet, mean_ap: float, threshold: float) -> float:
    """``mean_ap`` (the checkpoint's mAP) minus the mAP of ``checkpoint``'s detections above ``threshold``.

    The detections the API's NMS would drop at ``threshold`` (``score <= threshold``) are removed and
    the rest scored with the checkpoint metrics engine; 0.0 when none is removed (the same detections).

    >>> from tfod_tools.data.model import GroundTruth, ImageTable
    >>> gt = GroundTruth.from_arrays([1, 1], [[0, 0, 10, 10], [20, 20, 30, 30]], [1, 1])
    >>> det = Detections.from_arrays([1, 1], [[0, 0, 10, 10], [20, 20, 30, 30]], [1, 1], [0.9, 0.2])
    >>> images = ImageTable.from_sizes([1], [40], [40], ["a.jpg"])
    >>> data = AnnotatedSet(images=images, categories={1: "a"}, ground_truth=gt, detections=det)
    >>> threshold_loss(data, 1.0, 0.1), round(threshold_loss(data, 1.0, 0.3), 4)
    (0.0, 0.495)
    """
    assert checkpoint.detections is not None
    keep = checkpoint.detections.scores > threshold
    if keep.all():
        return 0.0
    kept = AnnotatedSet(
        images=checkpoint.images,
        categories=checkpoint.categories,
        ground_truth=checkpoint.ground_truth,
        detections=checkpoint.detections.select(keep),
    )
    return mean_ap - float(checkpoint_metrics(kept, ("coco",))[COCO_TAGS["AP"]])


def _nms_threshold(config: Any) -> tuple[float | None, int | None]:
    """``(score_threshold, max_total_detections)`` of a pipeline's NMS (None, None without one)."""
    if config is None:
        return None, None
    kind = config.model.WhichOneof("model")
    if kind == "ssd":
        nms = config.model.ssd.post_processing.batch_non_max_suppression
    elif kind == "faster_rcnn":
        nms = config.model.faster_rcnn.second_stage_post_processing.batch_non_max_suppression
    else:
        return None, None
    return float(f"{nms.score_threshold:.7g}"), int(nms.max_total_detections)


def _ground_truth_in_order(data: AnnotatedSet) -> tuple[Any, Any, Any]:
    """Each ground-truth box as (image position, class, box), sorted: comparable across numberings."""
    position = {int(i): k for k, i in enumerate(data.images.ids)}
    gt = data.ground_truth
    where = np.array([position.get(int(i), -1) for i in gt.image_ids], dtype=np.int64)
    boxes = np.asarray(gt.boxes, dtype=np.float64).reshape(-1, 4)
    order = np.lexsort((*boxes.T[::-1], gt.classes, where))
    return where[order], np.asarray(gt.classes)[order], boxes[order]


def same_images(a: AnnotatedSet, b: AnnotatedSet) -> bool:
    """Whether two sets are the same eval images in the same order: sizes and ground truth.

    The test for "these metrics are comparable": a checkpoint's stored evaluation and an export's
    evaluation of the same records pass it; an export scored on a test split does not.

    >>> from tfod_tools.data.model import GroundTruth, ImageTable
    >>> images = ImageTable.from_sizes([1, 2], [10, 20], [10, 20])
    >>> gt = GroundTruth.from_arrays([1, 2], [[0, 0, 5, 5], [1, 1, 4, 4]], [1, 2])
    >>> one = AnnotatedSet(images=images, categories={1: "a", 2: "b"}, ground_truth=gt)
    >>> renumbered = AnnotatedSet(ImageTable.from_sizes([7, 8], [10, 20], [10, 20]), {},
    ...                           GroundTruth.from_arrays([8, 7], [[1, 1, 4, 4], [0, 0, 5, 5]], [2, 1]))
    >>> moved = GroundTruth.from_arrays([1, 2], [[0, 0, 5, 5], [1, 1, 4, 5]], [1, 2])
    >>> same_images(one, renumbered), same_images(one, AnnotatedSet(images, {}, moved))
    (True, False)
    """
    if len(a.images.ids) != len(b.images.ids) or len(a.ground_truth) != len(b.ground_truth):
        return False
    sizes = (a.images.widths, b.images.widths), (a.images.heights, b.images.heights)
    if not all(np.array_equal(x, y) for x, y in sizes):
        return False
    (wa, ca, ba), (wb, cb, bb) = _ground_truth_in_order(a), _ground_truth_in_order(b)
    return bool(np.array_equal(wa, wb) and np.array_equal(ca, cb) and np.allclose(ba, bb, atol=1e-6))


def source_step(model: ExportedModel) -> tuple[Path, int, str] | None:
    """``(model_dir, step, checkpoint name)`` of the source ``export.json`` names (None without one)."""
    source = model.manifest.get("source") if isinstance(model.manifest, dict) else None
    if not isinstance(source, dict) or not source.get("model_dir") or source.get("step") is None:
        return None
    return Path(str(source["model_dir"])), int(source["step"]), str(source.get("checkpoint", ""))


def parity(
    model: ExportedModel,
    data: AnnotatedSet,
    metrics: Mapping[str, float],
    *,
    tolerance: float,
    per_image_counts: Sequence[int] = (),
    latency_ms: float | None = None,
) -> Parity | None:
    """Compare with the source checkpoint ``export.json`` names (None when it names none)."""
    found = source_step(model)
    if found is None:
        return None
    model_dir, step, name = found
    result = Parity(checkpoint=name, step=step, tolerance=tolerance)
    result.latency_ms = {"checkpoint": None, "export": latency_ms}
    reference: dict[str, float] | None = None
    seconds = None  # the checkpoint's evaluation time
    if Ledger.path_for(model_dir).is_file():
        with Ledger.open_unchanged(model_dir) as ledger:  # not even SQLite's -shm is created
            rows = [e for e in ledger.evaluations(status="ok") if e.step == step]
        if rows:
            reference = dict(rows[-1].metrics)
            seconds = rows[-1].duration_s
    if reference is None and isinstance(model.manifest.get("metrics"), dict):
        reference = {k: float(v) for k, v in model.manifest["metrics"].items() if v is not None}
        result.notes.append("the checkpoint's values are export.json's (the source ledger has no such step)")
    if reference is None:
        result.notes.append(f"no evaluation of step {step} in {model_dir} (run tfod evaluate there)")
        return result
    det_path = store.detections_path(model_dir, step)
    stored = store.load_detections(model_dir, step) if det_path.is_file() else None
    if stored is not None and not same_images(stored, data):
        result.notes.append(
            f"the checkpoint was scored on other eval images ({len(stored.images.ids)} there, "
            f"{len(data.images.ids)} here): no comparison; give the records the checkpoint was "
            "evaluated on (its pipeline's eval input) to compare"
        )
        return result
    if seconds and len(data.images.ids):  # the same images (or not known to be others)
        result.latency_ms["checkpoint"] = 1000.0 * seconds / len(data.images.ids)
    if stored is None:
        result.notes.append(
            f"no stored detections of step {step} in {model_dir}: not checked that these are the eval "
            "images the checkpoint was scored on"
        )
    tags = [(k, t) for k, t in COCO_TAGS.items()]
    tags += [(f"AP/{n}", CATEGORY_MAP + n) for n in sorted(data.categories.values())]
    dropped: list[str] = []
    for short, tag in tags:
        a, b = reference.get(tag), metrics.get(tag)
        delta = None if a is None or b is None else b - a
        result.rows.append({"name": short, "tag": tag, "checkpoint": a, "export": b, "delta": delta})
        if short in COCO_TAGS and a is not None and b is not None and a >= 0 and a - b > tolerance:
            dropped.append(f"{short} {a:.4f} -> {b:.4f}")
    result.score_threshold = export_score_threshold(model)
    if stored is not None and data.detections is not None:
        assert stored.detections is not None
        result.agreement = agreement(stored.detections, data.detections)
        mean_ap = reference.get(COCO_TAGS["AP"])
        if result.score_threshold is not None and mean_ap is not None and mean_ap >= 0:
            result.threshold_loss = threshold_loss(stored, mean_ap, result.score_threshold)
    if dropped:
        result.findings.append(
            f"drop beyond {tolerance:g}: {', '.join(dropped)}" + _causes(model, per_image_counts, result)
        )
    return result


def parity_table(table: Parity) -> Table:
    """The parity table for the terminal: value, checkpoint, export, delta; the agreement share last."""
    out = Table(title=f"export vs {table.checkpoint} (step {table.step}), tolerance {table.tolerance:g}")
    for name in ("value", "checkpoint", "export", "delta"):
        out.add_column(name, justify="left" if name == "value" else "right")

    def shown(v: float | None, fmt: str = ".4f") -> str:
        return "-" if v is None else format(v, fmt)

    for row in table.rows:
        out.add_row(row["name"], shown(row["checkpoint"]), shown(row["export"]), shown(row["delta"], "+.2e"))
    share = "-" if table.agreement is None else f"{100 * table.agreement:.1f} %"
    out.add_row("detections agreeing", "", share, "")
    if table.score_threshold is not None:
        lost = "-" if table.threshold_loss is None else format(0.0 - table.threshold_loss + 0.0, "+.2e")
        out.add_row(f"mAP lost to score threshold {table.score_threshold:g}", "", "", lost)
    ckpt, export = table.latency_ms.get("checkpoint"), table.latency_ms.get("export")
    out.add_row("ms per image", shown(ckpt, ".1f"), shown(export, ".1f"), "")
    return out


def _causes(model: ExportedModel, per_image_counts: Sequence[int], table: Parity) -> str:
    """The causes of a drop that can be named, as ``"; cause: ..."`` (empty when none).

    The score threshold is named when it costs mAP on the checkpoint's own detections
    (:attr:`Parity.threshold_loss` > 0), with what it costs; without that measure, when it is above
    the eval config's threshold.
    """
    causes: list[str] = []
    options = model.manifest.get("options") or {}
    if model.kind == "tflite" and options.get("tflite_quantize") == "int8":
        causes.append("int8 quantisation")
    export_threshold, cap = _nms_threshold(model.config)
    if table.score_threshold is not None:
        export_threshold = table.score_threshold
    source_pipeline = (model.manifest.get("source") or {}).get("pipeline")
    if table.threshold_loss is not None:
        if table.threshold_loss > 0:
            causes.append(
                f"the export's score threshold {export_threshold:g} "
                f"(costs {table.threshold_loss:.4f} mAP on the checkpoint's own detections)"
            )
    elif source_pipeline and Path(source_pipeline).is_file():
        from tfod_tools.odapi.pipeline import load_pipeline

        eval_threshold, _ = _nms_threshold(load_pipeline(source_pipeline))
        if export_threshold is not None and eval_threshold is not None and export_threshold > eval_threshold:
            causes.append(
                f"the export's score threshold {export_threshold:g} > the eval config's {eval_threshold:g}"
            )
    if cap and per_image_counts and max(per_image_counts) >= cap:
        causes.append(f"detections capped by max_total_detections ({cap})")
    return f"; cause: {', '.join(causes)}" if causes else ""
