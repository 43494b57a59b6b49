"""``tfod evaluate --model``: score an exported model (SavedModel or TFLite) like a checkpoint.

:func:`evaluate_exported` reads the eval records' ground truth as checkpoint evaluation does
(:func:`tfod_tools.data.records.read_annotated_set`; images numbered 1..N in the eval input's key
order, :func:`tfod_tools.evaluation.runner.in_key_order`), runs every image through the export
(:func:`tfod_tools.odapi.exported.detect_images`, images decoded as the API's eval input decodes
them), and scores the detections with the same metrics engine
(:func:`tfod_tools.evaluation.scoring.checkpoint_metrics`: the 12 COCO values, per-class AP) and PR
counts. The outputs go into one directory, replaced as a whole (written under a temporary name,
then renamed): ``metrics.json`` (metrics, per-class AP, latency, the parity table) and
``detections/`` (``groundtruth-*.npz`` and ``step-N.npz`` in the format of
:mod:`tfod_tools.data.store`, readable with ``load_detections(out, step, path=...)``). The default
directory is ``DIR/eval/<format>`` beside the export; the source model directory is never written.

When ``export.json`` names the source checkpoint, :func:`parity` compares with it: the checkpoint's
values from the source model directory's ledger (opened read-only), the share of detections that
agree with its stored detections (same class, IoU >= 0.99, ``|score delta| <= 1e-3``), and every
COCO value that dropped by more than the format's tolerance (:data:`TOLERANCES`) is a finding, with
its cause where it can be named. Not done: the mAP lost to an export score threshold, by rescoring.

>>> tolerance_for("saved_model", None), tolerance_for("tflite", "none"), tolerance_for("tflite", "int8")
(1e-06, 0.01, 0.03)
>>> a = Detections.from_arrays([1, 1], [[0, 0, 10, 10], [20, 20, 30, 30]], [1, 2], [0.9, 0.5])
>>> b = Detections.from_arrays([1, 1], [[0, 0, 10, 10.01], [20, 20, 30, 30]], [1, 1], [0.9004, 0.5])
>>> agreement(a, b)
0.5
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from tfod_tools.data import store
from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
from tfod_tools.data.records import iter_image_records, read_annotated_set
from tfod_tools.errors import TfodError
from tfod_tools.evaluation.runner import in_key_order
from tfod_tools.evaluation.scoring import checkpoint_metrics, pr_counts
from tfod_tools.fsutil import json_ready
from tfod_tools.ledger import Ledger
from tfod_tools.metrics.boxes import iou_matrix
from tfod_tools.metrics.coco import CATEGORY_MAP, COCO_TAGS
from tfod_tools.odapi.exported import ExportedModel, decode_image, detect_images
from tfod_tools.odapi.label_map import LabelMap, read_label_map
from tfod_tools.predict.run import check_classes

__all__ = [
    "TOLERANCES",
    "ExportedEvaluation",
    "Parity",
    "agreement",
    "evaluate_exported",
    "parity",
    "parity_table",
    "tolerance_for",
]

TOLERANCES: dict[str, float] = {"saved_model": 1e-6, "tflite": 0.01, "int8": 0.03}
"""The largest drop of a COCO value that is not a finding, per export format."""

METRICS_JSON = "metrics.json"


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
        }


@dataclass
class ExportedEvaluation:
    """What :func:`evaluate_exported` measured and wrote."""

    model: Path
    kind: str
    out: Path
    images: int
    metrics: dict[str, float]
    per_class_ap: dict[str, float]
    detections: int
    latency_ms: float
    """Mean wall time per image of the model call (decode excluded), milliseconds."""
    detections_path: Path
    parity: Parity | None = None
    elapsed_s: float = 0.0

    @property
    def exit_code(self) -> int:
        """1 when the parity table holds a drop beyond the tolerance, else 0."""
        return 1 if self.parity is not None and self.parity.findings else 0

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document (and ``metrics.json``)."""
        return {
            "model": str(self.model),
            "format": self.kind,
            "out": str(self.out),
            "images": self.images,
            "detections": self.detections,
            "metrics": self.metrics,
            "per_class_ap": self.per_class_ap,
            "latency_ms_per_image": round(self.latency_ms, 3),
            "detections_path": str(self.detections_path),
            "parity": None if self.parity is None else self.parity.to_dict(),
            "elapsed_s": round(self.elapsed_s, 3),
        }


def _inputs(
    model: ExportedModel, records: Sequence[str] | None, label_map: Path | None, pipeline: Path | None
) -> tuple[list[str], LabelMap]:
    """The eval record files and label map: the options, else ``--pipeline``, else the export's config."""
    if records:
        files = [str(r) for r in records]
        if label_map is not None:
            return files, read_label_map(label_map)
        if model.label_map is None:
            raise TfodError("the export has no label_map.pbtxt", path=model.side_dir, fix="pass --label-map")
        return files, model.label_map
    from tfod_tools.odapi.checks import check_inputs

    config = pipeline if pipeline is not None else (model.side_dir or model.path.parent) / "pipeline.config"
    if not config.is_file():
        raise TfodError(
            "no eval records given and no pipeline.config beside the model",
            path=config,
            fix="pass --records and --label-map, or --pipeline",
        )
    checked = check_inputs(config, None, roles=("eval",))
    lm = read_label_map(label_map) if label_map is not None else checked.label_map
    return list(checked.records.get("eval", [])), lm


def _key_ordered(data: AnnotatedSet, keys: Sequence[int]) -> AnnotatedSet:
    """``data`` with its images renumbered 1..N in key order (record order among equal keys)."""
    order = in_key_order([_Key(k, i) for i, k in enumerate(keys)])
    new_id = np.zeros(len(keys) + 1, dtype=np.int64)
    for rank, item in enumerate(order, start=1):
        new_id[item.index + 1] = rank
    pick = [item.index for item in order]
    table = ImageTable.from_sizes(
        np.arange(1, len(keys) + 1),
        data.images.widths[pick],
        data.images.heights[pick],
        [data.images.file_names[i] for i in pick],
    )
    gt = data.ground_truth
    ground_truth = GroundTruth.from_arrays(
        new_id[gt.image_ids],
        gt.boxes,
        gt.classes,
        area=gt.area,
        iscrowd=gt.iscrowd,
        difficult=gt.difficult,
        ignore=gt.ignore,
    )
    return AnnotatedSet(images=table, categories=data.categories, ground_truth=ground_truth)


@dataclass(frozen=True)
class _Key:
    key: int
    index: int


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


def _source_step(model: ExportedModel) -> tuple[Path, int, str] | None:
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
    found = _source_step(model)
    if found is None:
        return None
    model_dir, step, name = found
    result = Parity(checkpoint=name, step=step, tolerance=tolerance)
    result.latency_ms = {"checkpoint": None, "export": latency_ms}
    reference: dict[str, float] | None = None
    if Ledger.path_for(model_dir).is_file():
        with Ledger.open_unchanged(model_dir) as ledger:  # not even SQLite's -shm is created
            rows = [e for e in ledger.evaluations(status="ok") if e.step == step]
        if rows:
            reference = dict(rows[-1].metrics)
            if rows[-1].duration_s and len(data.images.ids):
                result.latency_ms["checkpoint"] = 1000.0 * rows[-1].duration_s / len(data.images.ids)
    if reference is None and isinstance(model.manifest.get("metrics"), dict):
        reference = {k: float(v) for k, v in model.manifest["metrics"].items() if v is not None}
        result.notes.append("the checkpoint's values are export.json's (the source ledger has no such step)")
    if reference is None:
        result.notes.append(f"no evaluation of step {step} in {model_dir} (run tfod evaluate there)")
        return result
    tags = [(k, t) for k, t in COCO_TAGS.items()]
    tags += [(f"AP/{n}", CATEGORY_MAP + n) for n in sorted(data.categories.values())]
    dropped: list[str] = []
    for short, tag in tags:
        a, b = reference.get(tag), metrics.get(tag)
        delta = None if a is None or b is None else b - a
        result.rows.append({"name": short, "tag": tag, "checkpoint": a, "export": b, "delta": delta})
        if short in COCO_TAGS and a is not None and b is not None and a >= 0 and a - b > tolerance:
            dropped.append(f"{short} {a:.4f} -> {b:.4f}")
    det_path = store.detections_path(model_dir, step)
    if det_path.is_file() and data.detections is not None:
        stored = store.load_detections(model_dir, step)
        if len(stored.images.ids) == len(data.images.ids) and np.array_equal(
            stored.images.widths, data.images.widths
        ):
            assert stored.detections is not None
            result.agreement = agreement(stored.detections, data.detections)
        else:
            result.notes.append(
                "the stored checkpoint detections are of other eval images (no agreement share)"
            )
    if dropped:
        result.findings.append(
            f"drop beyond {tolerance:g}: {', '.join(dropped)}" + _causes(model, per_image_counts)
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
    ckpt, export = table.latency_ms.get("checkpoint"), table.latency_ms.get("export")
    out.add_row("ms per image", shown(ckpt, ".1f"), shown(export, ".1f"), "")
    return out


def _causes(model: ExportedModel, per_image_counts: Sequence[int]) -> str:
    """The causes of a drop that can be named, as ``"; cause: ..."`` (empty when none)."""
    causes: list[str] = []
    options = model.manifest.get("options") or {}
    if model.kind == "tflite" and options.get("tflite_quantize") == "int8":
        causes.append("int8 quantisation")
    export_threshold, cap = _nms_threshold(model.config)
    source_pipeline = (model.manifest.get("source") or {}).get("pipeline")
    if source_pipeline and Path(source_pipeline).is_file():
        from tfod_tools.odapi.pipeline import load_pipeline

        eval_threshold, _ = _nms_threshold(load_pipeline(source_pipeline))
        if export_threshold is not None and eval_threshold is not None and export_threshold > eval_threshold:
            causes.append(
                f"the export's score threshold {export_threshold:g} > the eval config's {eval_threshold:g}"
            )
    if cap and per_image_counts and max(per_image_counts) >= cap:
        causes.append(f"detections capped by max_total_detections ({cap})")
    return f"; cause: {', '.join(causes)}" if causes else ""


def default_out(model: ExportedModel) -> Path:
    """``DIR/eval/FORMAT`` beside the export: ``saved_model``, ``tflite`` (another ``.tflite``: its stem)."""
    side = model.side_dir or model.path.parent
    own = model.kind == "saved_model" or model.path.name == "model.tflite"
    return side / "eval" / (model.kind if own else model.path.stem)


def _check_out(out: Path, model: ExportedModel) -> None:
    found = _source_step(model)
    if found is not None:
        source = found[0].resolve()
        target = out.resolve()
        if target == source or source in target.parents:
            raise TfodError(
                "the output directory is inside the source model directory",
                path=out,
                fix="pass another --out (the model directory is never written)",
            )


def evaluate_exported(
    model_path: str | Path,
    *,
    records: Sequence[str] | None = None,
    label_map: str | Path | None = None,
    pipeline: str | Path | None = None,
    out: str | Path | None = None,
    compare: bool | None = None,
    max_drop: float | None = None,
    on_start: Callable[[int], None] | None = None,
    on_image: Callable[[], None] | None = None,
    library_output: Any = None,
) -> ExportedEvaluation:
    """Score the export at ``model_path`` on eval records (see the module docstring).

    ``compare=None`` compares with the source checkpoint when ``export.json`` names one.
    ``on_start(images)`` is called once the inputs are checked, ``on_image()`` after each image.
    Bad input raises :class:`TfodError` before anything is written.
    """
    started = time.monotonic()
    if max_drop is not None and not (max_drop >= 0 and math.isfinite(max_drop)):
        raise TfodError(f"--max-drop {max_drop} is not a drop", fix="pass a number >= 0, e.g. 0.01")
    model = ExportedModel.open(model_path)
    files, lm = _inputs(
        model,
        records,
        None if label_map is None else Path(label_map),
        None if pipeline is None else Path(pipeline),
    )
    check_classes(model, lm, Path(lm.path) if lm.path else model.label_map_path)
    truth = read_annotated_set(files, lm)
    if len(truth.images.ids) == 0:
        raise TfodError("the eval records hold no image", path=", ".join(files), fix="pass eval records")
    target = Path(out) if out is not None else default_out(model)
    _check_out(target, model)
    quantize = (model.manifest.get("options") or {}).get("tflite_quantize")
    tolerance = max_drop if max_drop is not None else tolerance_for(model.kind, quantize)
    source_ids = [str(r.source_id) for _, _, r in iter_image_records(files)]
    with library_output if library_output is not None else contextlib.nullcontext():
        from tfod_tools.odapi.keys import source_keys

        keys = source_keys(source_ids)
        data = _key_ordered(truth, keys)
        model.start()
        if on_start is not None:
            on_start(len(keys))
        order = in_key_order([_Key(k, i) for i, k in enumerate(keys)])
        encoded = [r.encoded for _, _, r in iter_image_records(files)]
        clock = {"began": 0.0, "total": 0.0}  # the model call of each image, decoding left out
        counts: list[int] = []

        def images() -> Any:
            for rank, item in enumerate(order, start=1):
                pixels = decode_image(encoded[item.index])
                clock["began"] = time.perf_counter()
                yield rank, pixels

        def seen(_id: int, _pixels: Any, found: Any) -> None:
            clock["total"] += time.perf_counter() - clock["began"]
            counts.append(len(found))
            if on_image is not None:
                on_image()

        rows = detect_images(model, images(), score_threshold=0.0, on_image=seen)
    data = AnnotatedSet(
        images=data.images,
        categories=data.categories,
        ground_truth=data.ground_truth,
        detections=Detections.from_arrays(*rows.columns()),
    )
    metrics = checkpoint_metrics(data, ("coco",))
    per_class = {
        n: metrics[CATEGORY_MAP + n] for n in sorted(data.categories.values()) if CATEGORY_MAP + n in metrics
    }
    latency = 1000.0 * clock["total"] / max(len(order), 1)
    table = None
    if compare is not False:
        table = parity(model, data, metrics, tolerance=tolerance, per_image_counts=counts, latency_ms=latency)
        if compare and table is None:
            table = Parity(
                checkpoint="", step=-1, tolerance=tolerance, notes=["export.json names no source checkpoint"]
            )
    step = _source_step(model)
    step_n = step[1] if step is not None else 0
    result = ExportedEvaluation(
        model=model.path,
        kind=model.kind,
        out=target,
        images=len(order),
        metrics=metrics,
        per_class_ap=per_class,
        detections=len(rows),
        latency_ms=latency,
        detections_path=target / "detections" / store.detections_path(".", step_n).name,
        parity=table,
    )
    _write(target, data, keys_in_order=[keys[i.index] for i in order], step=step_n, result=result)
    result.elapsed_s = time.monotonic() - started
    return result


def _write(
    out: Path, data: AnnotatedSet, *, keys_in_order: list[int], step: int, result: ExportedEvaluation
) -> None:
    """Write the outputs into a temporary directory beside ``out``, then put it in ``out``'s place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.tmp-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        gt_file = store.save_ground_truth(staging, data, keys_in_order)
        assert data.detections is not None
        store.save_detections(staging, step, data.detections, gt_file, pr_counts(data))
        store.detections_dir(staging).rename(staging / "detections")
        (staging / "eval").rmdir()
        doc = json_ready(result.to_dict())
        (staging / METRICS_JSON).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            out.rename(old)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if old.exists() and not out.exists():
            old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)
