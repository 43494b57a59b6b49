"""``tfod export``: one checkpoint to a SavedModel (and a TFLite model), written whole or not at all.

:func:`plan_export` does every check that needs no TensorFlow (the pipeline parses, the formats and
quantization are known, the model can go to TFLite, ``int8`` has representative records, the
checkpoint exists, the output directory is new, empty, or an export that ``force`` replaces) and
returns an :class:`ExportPlan`; :func:`run_export` then exports into a temporary directory beside
the output and renames it into place. The model directory is only read: the exporters get a
staging directory of their own with links to the chosen checkpoint (:mod:`tfod_tools.odapi.export`).

The output directory holds ``saved_model/``, ``model.tflite`` (when asked), ``pipeline.config`` (the
exported pipeline: the stated post-processing score threshold, label maps pointing at the copy),
``label_map.pbtxt``, ``export.json`` (what was exported, from what, how, file hashes) and
``export.log`` (TensorFlow's own output).

When TensorFlow fails mid-export (a checkpoint that does not fit the pipeline's model, a converter
error), nothing is left under the output's name and the log is kept beside it as
``OUT.failed.log`` (TensorFlow's output, then the traceback): :class:`ExportFailed` names the stage
that failed and that log (the CLI: one line, exit 1).

>>> parse_formats("saved_model,tflite"), parse_formats("tflite")
(('saved_model', 'tflite'), ('tflite',))
>>> parse_formats("onnx")
Traceback (most recent call last):
...
tfod_tools.errors.TfodError: unknown --format 'onnx' (fix: use saved_model, tflite or saved_model,tflite)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tfod_tools import __version__
from tfod_tools.data.records import input_record_files, iter_image_records
from tfod_tools.errors import TfodError
from tfod_tools.export.choice import ChosenCheckpoint, choose_checkpoint, parse_checkpoint_spec
from tfod_tools.fsutil import json_ready, output_parents, sha256_file
from tfod_tools.odapi.export import QUANTIZATIONS, tflite_problem
from tfod_tools.odapi.pipeline import input_readers, load_pipeline, model_config, save_pipeline

__all__ = [
    "EXPORT_JSON",
    "FORMATS",
    "ExportFailed",
    "ExportPlan",
    "ExportResult",
    "failed_log_path",
    "parse_formats",
    "plan_export",
    "post_processing",
    "run_export",
]

FORMATS = ("saved_model", "tflite")
"""``--format`` values."""

EXPORT_JSON = "export.json"
REPRESENTATIVE_IMAGES = 64
"""How many training images calibrate an ``int8`` model (fewer when the records hold fewer)."""

Stage = Callable[[str], None]


class ExportFailed(Exception):
    """TensorFlow failed during ``stage``; ``log`` keeps its output and the traceback.

    >>> str(ExportFailed("exporting the SavedModel", Path("out.failed.log"), ValueError("bad shape")))
    'export failed while exporting the SavedModel (ValueError: bad shape); the log: out.failed.log'
    >>> ExportFailed("x", Path("l"), ValueError("in user code:\\n  File ...\\n  ValueError: bad shape")).cause
    'ValueError: bad shape'
    """

    def __init__(self, stage: str, log: Path, cause: BaseException) -> None:
        self.stage, self.log = stage, log
        lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
        first = lines[0] if lines else ""
        if first.endswith(":") and len(lines) > 1:  # a traced function's "in user code:" preamble
            first = lines[-1].removeprefix(f"{type(cause).__name__}: ")
        if len(first) > 200:
            first = first[:197] + "..."
        self.cause = f"{type(cause).__name__}: {first}" if first else type(cause).__name__
        super().__init__(f"export failed while {stage} ({self.cause}); the log: {log}")


def failed_log_path(out: Path) -> Path:
    """Where a failed export's log is kept: ``OUT.failed.log`` beside ``OUT``.

    >>> failed_log_path(Path("exports/ssd"))
    PosixPath('exports/ssd.failed.log')
    """
    return out.with_name(f"{out.name}.failed.log")


def _keep_log(log: Path, out: Path) -> Path:
    """Move the staging directory's ``log`` to :func:`failed_log_path` and append the traceback."""
    kept = failed_log_path(out)
    if log.is_file():
        os.replace(log, kept)
    else:
        kept.write_text("", encoding="utf-8")
    with open(kept, "a", encoding="utf-8") as handle:
        handle.write("\n" + traceback.format_exc())
    return kept


def parse_formats(text: str) -> tuple[str, ...]:
    """``saved_model``, ``tflite`` or both, comma-separated, in :data:`FORMATS` order."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    for name in names:
        if name not in FORMATS:
            raise TfodError(f"unknown --format {name!r}", fix="use saved_model, tflite or saved_model,tflite")
    if not names:
        raise TfodError("--format is empty", fix="use saved_model, tflite or saved_model,tflite")
    return tuple(f for f in FORMATS if f in names)


def _nms(config: Any) -> Any:
    """The pipeline's ``batch_non_max_suppression`` message (None when the model has none)."""
    kind = config.model.WhichOneof("model")
    model = model_config(config)
    if kind == "ssd":
        return model.post_processing.batch_non_max_suppression
    if kind == "faster_rcnn":
        return model.second_stage_post_processing.batch_non_max_suppression
    return None


def _f32(value: float) -> float:
    """A float32 field as the decimal it was written as (``0.6``, not ``0.600000024``)."""
    return float(f"{float(value):.7g}")


def post_processing(config: Any) -> dict[str, Any] | None:
    """The post-processing settings the export uses: NMS thresholds, caps and the score converter.

    >>> from tfod_tools.odapi.pipeline import parse_pipeline_text
    >>> post_processing(parse_pipeline_text("model { ssd { post_processing { batch_non_max_suppression {"
    ...     " score_threshold: 0.25 iou_threshold: 0.6 max_total_detections: 50 }"
    ...     " score_converter: SIGMOID } } }"))
    {'score_threshold': 0.25, 'iou_threshold': 0.6, 'max_detections_per_class': 100, \
'max_total_detections': 50, 'score_converter': 'SIGMOID'}
    """
    nms = _nms(config)
    if nms is None:
        return None
    owner = model_config(config)
    holder = (
        owner.post_processing
        if config.model.WhichOneof("model") == "ssd"
        else owner.second_stage_post_processing
    )
    return {
        "score_threshold": _f32(nms.score_threshold),
        "iou_threshold": _f32(nms.iou_threshold),
        "max_detections_per_class": int(nms.max_detections_per_class),
        "max_total_detections": int(nms.max_total_detections),
        "score_converter": holder.ScoreConverter.Name(holder.score_converter),
    }


@dataclass
class ExportPlan:
    """Everything checked before TensorFlow starts."""

    pipeline: Path
    model_dir: Path
    out: Path
    config: Any
    chosen: ChosenCheckpoint
    formats: tuple[str, ...]
    quantize: str
    representative_records: list[Path]
    label_map: Path
    score_threshold: float | None
    replace: bool

    def options(self) -> dict[str, Any]:
        """The options as ``export.json`` records them."""
        return {
            "checkpoint": self.chosen.spec,
            "formats": list(self.formats),
            "tflite_quantize": self.quantize if "tflite" in self.formats else None,
            "representative_records": [str(p) for p in self.representative_records] or None,
            "score_threshold": self.score_threshold,
            "force": self.replace,
        }


@dataclass
class ExportResult:
    """What :func:`run_export` wrote."""

    out: Path
    manifest: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the CLI's ``--json``)."""
        return {"out": str(self.out), **self.manifest}


def _check_out(out: Path, model_dir: Path, force: bool) -> bool:
    """Whether ``out`` is an existing export to replace; :class:`TfodError` when it may not be written."""
    resolved, model = out.resolve(), model_dir.resolve()
    if resolved == model or model.is_relative_to(resolved):
        raise TfodError(
            "the export directory would hold the model directory", path=out, fix="choose another --out"
        )
    if not out.exists():
        return False
    if not out.is_dir():
        raise TfodError("--out is a file, not a directory", path=out, fix="choose a new directory")
    if (out / EXPORT_JSON).is_file():
        if not force:
            raise TfodError(
                "the directory already holds an export", path=out, fix="choose a new --out or pass --force"
            )
        return True
    if any(out.iterdir()):
        raise TfodError(
            "the directory is not empty and holds no export", path=out, fix="choose a new or empty --out"
        )
    return False


def _label_map_path(config: Any, pipeline: Path) -> Path:
    for role, reader in input_readers(config):
        if reader.label_map_path:
            path = Path(reader.label_map_path)
            if not path.is_file():
                raise TfodError(
                    f"{role}_input_reader label_map_path does not exist",
                    path=path,
                    fix="correct label_map_path",
                )
            return path
    raise TfodError("the pipeline names no label_map_path", path=pipeline, fix="set label_map_path")


def plan_export(
    pipeline: str | Path,
    model_dir: str | Path,
    out: str | Path,
    *,
    checkpoint: str = "best",
    formats: str | tuple[str, ...] = ("saved_model",),
    quantize: str = "none",
    representative_records: str | Path | None = None,
    score_threshold: float | None = None,
    force: bool = False,
) -> ExportPlan:
    """Check the request without TensorFlow (see the module docstring); nothing is written."""
    pipeline_path, model_path, out_path = Path(pipeline), Path(model_dir), Path(out)
    chosen_formats = parse_formats(formats) if isinstance(formats, str) else parse_formats(",".join(formats))
    if quantize not in QUANTIZATIONS:
        raise TfodError(
            f"unknown --tflite-quantize {quantize!r}", fix=f"use one of {', '.join(QUANTIZATIONS)}"
        )
    spec = parse_checkpoint_spec(checkpoint)
    config = load_pipeline(pipeline_path)
    if "tflite" in chosen_formats:
        problem = tflite_problem(config)
        if problem is not None:
            raise TfodError(problem, path=pipeline_path, fix="export a SavedModel only: --format saved_model")
    elif quantize != "none":
        raise TfodError("--tflite-quantize needs --format tflite", fix="add tflite to --format")
    records: list[Path] = []
    if quantize == "int8":
        if representative_records is None:
            raise TfodError(
                "int8 quantization needs representative images",
                fix="pass --representative-records TRAIN_RECORDS (the training records)",
            )
        records = input_record_files(str(representative_records))
    elif representative_records is not None:
        records = input_record_files(str(representative_records))
    if score_threshold is not None:
        if not 0.0 <= score_threshold <= 1.0:
            raise TfodError(
                f"--score-threshold must be in [0, 1], not {score_threshold}", fix="pass e.g. 0.3"
            )
        nms = _nms(config)
        if nms is None:
            raise TfodError(
                f"the {config.model.WhichOneof('model')} model has no batch_non_max_suppression "
                "score threshold",
                path=pipeline_path,
                fix="leave --score-threshold out",
            )
        nms.score_threshold = score_threshold
    label_map = _label_map_path(config, pipeline_path)
    chosen = choose_checkpoint(model_path, spec)
    replace = _check_out(out_path, model_path, force)
    return ExportPlan(
        pipeline=pipeline_path,
        model_dir=model_path,
        out=out_path,
        config=config,
        chosen=chosen,
        formats=chosen_formats,
        quantize=quantize,
        representative_records=records,
        label_map=label_map,
        score_threshold=score_threshold,
        replace=replace,
    )


def _representative(
    plan: ExportPlan, prepare: Callable[[Any], npt.NDArray[np.float32]]
) -> Callable[[], Iterator[Any]]:
    from tfod_tools.odapi.export import decode_image

    def images() -> Iterator[npt.NDArray[np.float32]]:
        for count, (_, _, record) in enumerate(iter_image_records(plan.representative_records)):
            if count >= REPRESENTATIVE_IMAGES:
                return
            yield prepare(decode_image(record.encoded))

    return images


def _files(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): sha256_file(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name not in (EXPORT_JSON, "export.log")
    }


def _readable(directory: Path) -> None:
    """The permissions a plain ``mkdir`` / ``open`` gives (temporary files are 0o700 / 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [directory, *directory.rglob("*")]:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def _replace_dir(staging: Path, out: Path, replace: bool) -> None:
    """Rename ``staging`` onto ``out``; an old export is moved aside first and removed after."""
    if not replace:
        os.rename(staging, out)
        return
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    os.rename(out, old)
    try:
        os.rename(staging, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def run_export(
    plan: ExportPlan,
    *,
    on_stage: Stage | None = None,
    library_output: Callable[[Path], AbstractContextManager[Any]] | None = None,
) -> ExportResult:
    """Export ``plan`` (see the module docstring). ``on_stage(text)`` reports each step as it starts.

    ``library_output(log_path)`` wraps the TensorFlow work (the CLI diverts TensorFlow's output
    into the export's ``export.log``).
    """
    from tfod_tools.odapi import export as odapi_export

    stage = "staging the checkpoint"

    def report(text: str) -> None:
        nonlocal stage
        stage = text
        if on_stage is not None:
            on_stage(text)

    out = plan.out
    seconds: dict[str, float] = {}
    with output_parents(out) as parent:
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".work", dir=parent))
        try:
            log = staging / "export.log"
            wrap = library_output(log) if library_output is not None else contextlib.nullcontext()
            with wrap:
                staged = odapi_export.stage_checkpoint(plan.chosen.checkpoint, work / "checkpoint")
                if "saved_model" in plan.formats:
                    report("exporting the SavedModel")
                    started = time.perf_counter()
                    saved = odapi_export.export_saved_model(plan.config, staged, work / "saved_model_export")
                    shutil.move(str(saved), staging / "saved_model")
                    seconds["saved_model"] = time.perf_counter() - started
                if "tflite" in plan.formats:
                    report(f"exporting the TFLite model ({plan.quantize})")
                    started = time.perf_counter()
                    representative = None
                    if plan.quantize == "int8":
                        representative = _representative(plan, odapi_export.tflite_input(plan.config))
                    nms = post_processing(plan.config) or {}
                    flatbuffer = odapi_export.export_tflite(
                        plan.config,
                        staged,
                        work / "tflite_graph",
                        quantize=plan.quantize,
                        representative=representative,
                        max_detections=int(nms.get("max_total_detections") or 100),
                    )
                    (staging / "model.tflite").write_bytes(flatbuffer)
                    seconds["tflite"] = time.perf_counter() - started
                versions = odapi_export.library_versions()
            report("writing pipeline.config, label_map.pbtxt, export.json")
            shutil.copyfile(plan.label_map, staging / "label_map.pbtxt")
            final_map = str((out / "label_map.pbtxt").resolve())
            for _, reader in input_readers(plan.config):
                reader.label_map_path = final_map
            save_pipeline(plan.config, staging / "pipeline.config")
            evaluation = plan.chosen.evaluation
            manifest: dict[str, Any] = {
                "source": {
                    "pipeline": str(plan.pipeline),
                    "model_dir": str(plan.model_dir),
                    **plan.chosen.to_dict(),
                },
                "metrics": None if evaluation is None else json_ready(dict(evaluation.metrics)),
                "post_processing": {
                    **(post_processing(plan.config) or {}),
                    "tflite_nms": "regular (multi-class)" if "tflite" in plan.formats else None,
                },
                "options": plan.options(),
                "versions": {"tfod_tools": __version__, **versions},
                "seconds": {k: round(v, 3) for k, v in seconds.items()},
                "files": _files(staging),
                "exported_at": time.time(),
            }
            (staging / EXPORT_JSON).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            _readable(staging)
            _replace_dir(staging, out, plan.replace)
        except TfodError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        except Exception as exc:
            kept = _keep_log(staging / "export.log", out)
            shutil.rmtree(staging, ignore_errors=True)
            raise ExportFailed(stage, kept, exc) from exc
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return ExportResult(out=out, manifest=manifest, seconds=seconds)
