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

When ``export.json`` names the source checkpoint, :func:`~tfod_tools.evaluation.parity.parity`
compares with it (the checkpoint's values from its ledger, the share of agreeing detections, the mAP
lost to the export's score threshold, the drops beyond the format's tolerance as findings with their
causes; :mod:`tfod_tools.evaluation.parity`, whose public names this module also exports).

TensorFlow's own output (C++ logs, ``tf.logging`` / absl notices, Python warnings) goes where
``library_output`` sends it; ``tfod evaluate --model`` sends it to :func:`log_path` (``OUT.log``,
beside the output directory, which is replaced as a whole), ``--verbose`` to stderr.

>>> log_path(Path("/x/eval/saved_model"))
PosixPath('/x/eval/saved_model.log')
>>> tolerance_for("saved_model", None)
1e-06
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tfod_tools.data import store
from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
from tfod_tools.data.records import iter_image_records, read_annotated_set
from tfod_tools.errors import TfodError
from tfod_tools.evaluation.parity import (
    TOLERANCES,
    Parity,
    agreement,
    export_score_threshold,
    parity,
    parity_table,
    source_step,
    threshold_loss,
    tolerance_for,
)
from tfod_tools.evaluation.runner import in_key_order
from tfod_tools.evaluation.scoring import checkpoint_metrics, pr_counts
from tfod_tools.fsutil import json_ready
from tfod_tools.metrics.coco import CATEGORY_MAP
from tfod_tools.odapi.exported import DetectionRows, ExportedModel, decode_image, detect_images
from tfod_tools.odapi.label_map import LabelMap, read_label_map
from tfod_tools.predict.run import check_classes

__all__ = [
    "TOLERANCES",
    "ExportedEvaluation",
    "Parity",
    "agreement",
    "default_out",
    "evaluate_exported",
    "export_score_threshold",
    "log_path",
    "parity",
    "parity_table",
    "source_step",
    "threshold_loss",
    "tolerance_for",
]

METRICS_JSON = "metrics.json"

Detector = Callable[[ExportedModel, Sequence[str], Sequence[int]], tuple[DetectionRows, list[int], float]]
"""Model calls done elsewhere: ``(model, eval record files, the index among all their records of
each image in rank order) -> (the detection rows of images 1..N in rank order, detections per image
in that order, seconds in the model calls)``, what the local loop makes."""

LibraryOutput = AbstractContextManager[Any] | Callable[[Path], AbstractContextManager[Any]] | None
"""Where :func:`evaluate_exported` sends TensorFlow's own output (see there)."""


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


def pipeline_config(model: ExportedModel, pipeline: Path | None) -> Path:
    """The pipeline.config that names the eval inputs when no ``--records`` is given: ``--pipeline``,
    else the one beside the export (which may not exist)."""
    return pipeline if pipeline is not None else (model.side_dir or model.path.parent) / "pipeline.config"


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

    config = pipeline_config(model, pipeline)
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


def default_out(model: ExportedModel) -> Path:
    """``DIR/eval/FORMAT`` beside the export: ``saved_model``, ``tflite`` (another ``.tflite``: its stem)."""
    side = model.side_dir or model.path.parent
    own = model.kind == "saved_model" or model.path.name == "model.tflite"
    return side / "eval" / (model.kind if own else model.path.stem)


def log_path(out: Path) -> Path:
    """Where ``tfod evaluate --model`` keeps TensorFlow's own output: ``OUT.log`` beside ``out``."""
    return out.parent / f"{out.name}.log"


def _check_out(out: Path, model: ExportedModel) -> None:
    found = source_step(model)
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
    library_output: LibraryOutput = None,
    detect: Detector | None = None,
) -> ExportedEvaluation:
    """Score the export at ``model_path`` on eval records (see the module docstring).

    ``compare=None`` compares with the source checkpoint when ``export.json`` names one.
    ``on_start(images)`` is called once the inputs are checked, ``on_image()`` after each image.
    ``library_output`` holds TensorFlow's part: a context manager, or a function of the log path
    (:func:`log_path` of the output directory) returning one. Bad input raises :class:`TfodError`
    before anything is written. ``detect`` replaces the local model calls (``tfod evaluate --beam``:
    :func:`tfod_tools.beam.evaluate.beam_detector`; see :data:`Detector`).
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
    diverted: AbstractContextManager[Any] = contextlib.nullcontext()
    if isinstance(library_output, AbstractContextManager):
        diverted = library_output
    elif library_output is not None:  # a function of the log path
        diverted = library_output(log_path(target))
    with diverted:
        from tfod_tools.odapi.keys import source_keys

        keys = source_keys(source_ids)
        data = _key_ordered(truth, keys)
        if detect is None:
            model.start()
        if on_start is not None:
            on_start(len(keys))
        order = in_key_order([_Key(k, i) for i, k in enumerate(keys)])
        clock = {"began": 0.0, "total": 0.0}  # the model call of each image, decoding left out
        counts: list[int] = []
        if detect is not None:
            rows, counts, clock["total"] = detect(model, files, [item.index for item in order])
        encoded = [] if detect is not None else [r.encoded for _, _, r in iter_image_records(files)]

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

        if detect is None:
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
    step = source_step(model)
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
