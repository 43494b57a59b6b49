"""The demo's ``export`` step: ship the balanced run's best checkpoint, prove the export, predict with it.

Three library calls, as the matching commands would make them:

1. ``tfod export --checkpoint best`` (:func:`tfod_tools.export.run.run_export`) into
   ``WORKDIR/export/``: the SavedModel, and in the full demo the float TFLite model too (the quick
   demo leaves TFLite out: its conversion adds minutes, see :data:`QUICK_NOTE`);
2. ``tfod evaluate --model`` (:func:`tfod_tools.evaluation.exported.evaluate_exported`) of each
   export on the eval records, compared with the checkpoint it came from (the parity table:
   the 12 COCO values of both, deltas, the share of agreeing detections, latency, the verdict
   against the format's tolerance) into ``WORKDIR/export/eval/<format>/``;
3. ``tfod predict`` (:func:`tfod_tools.predict.run.predict`) with the SavedModel on the first few
   eval images (written to ``WORKDIR/export/inputs/``), annotated copies in
   ``WORKDIR/export/predict/images/``.

TensorFlow's output goes to ``WORKDIR/export/export.log`` and ``WORKDIR/export/verify.log``.

>>> verdict({"findings": [], "rows": [{"delta": 0.0}]}), verdict({"findings": ["drop"], "rows": []})
('ok', 'drop')
>>> verdict(None), verdict({"findings": [], "rows": [], "notes": ["no evaluation"]})
('unknown', 'unknown')
>>> input_name(3, "img_007", "png")
'03-img_007.png'
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "QUICK_NOTE",
    "ShipInputs",
    "export_summary",
    "input_name",
    "predict_some",
    "ship",
    "ship_summary",
    "verdict",
    "verify",
]

QUICK_NOTE = "TFLite float is exported in the full demo only (its conversion adds minutes to --quick)"
MAP = "DetectionBoxes_Precision/mAP"


@dataclass(frozen=True)
class ShipInputs:
    """What the step works on (all paths absolute or relative to the current directory)."""

    workdir: Path
    pipeline: Path
    model_dir: Path
    eval_record: Path
    label_map: Path
    formats: tuple[str, ...]
    predict_images: int
    score_threshold: float


def verdict(parity: Mapping[str, Any] | None) -> str:
    """``ok`` (no COCO value dropped beyond the tolerance), ``drop``, or ``unknown`` (nothing compared)."""
    if parity is None:
        return "unknown"
    if parity.get("findings"):
        return "drop"
    compared = [r for r in parity.get("rows", []) if r.get("delta") is not None]
    return "ok" if compared else "unknown"


def input_name(index: int, source_id: str, fmt: str) -> str:
    """The file name of the ``index``-th eval image copied out for ``tfod predict``."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", source_id).strip("._") or "image"
    suffix = "png" if fmt.lower() == "png" else "jpg"
    return f"{index:02d}-{stem}.{suffix}"


def _write_inputs(eval_record: Path, target: Path, count: int) -> list[Path]:
    from tfod_tools.data.records import iter_image_records

    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for index, (_, _, record) in enumerate(iter_image_records(eval_record), start=1):
        if index > count:
            break
        path = target / input_name(index, str(record.source_id or index), str(record.format))
        path.write_bytes(record.encoded)
        written.append(path)
    return written


def _rel(workdir: Path, path: Path) -> str:
    return path.resolve().relative_to(workdir.resolve()).as_posix()


def _parity_rows(parity: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in parity.get("rows", [])]


def verify(inputs: ShipInputs, out: Path, note: Callable[[str], None]) -> dict[str, Any]:
    """``tfod evaluate --model`` of each export in ``out`` against its checkpoint: ``{format: parity}``."""
    from tfod_tools.evaluation.exported import evaluate_exported
    from tfod_tools.odapi.quiet import divert_stderr

    w = inputs.workdir
    models: dict[str, Any] = {}
    targets = [("saved_model", out / "saved_model")]
    if "tflite" in inputs.formats:
        targets.append(("tflite", out / "model.tflite"))
    for kind, path in targets:
        note(f"  evaluating the {kind} export on the eval records against its checkpoint")
        with divert_stderr(out / "verify.log", header=f"tfod demo: evaluate --model {kind}"):
            evaluation = evaluate_exported(
                path, records=[str(inputs.eval_record)], label_map=inputs.label_map, compare=True
            )
        doc = evaluation.to_dict()
        parity = doc["parity"] or {}
        checkpoint_map = next((r["checkpoint"] for r in parity.get("rows", []) if r["tag"] == MAP), None)
        models[kind] = {
            "path": _rel(w, path),
            "metrics_json": _rel(w, evaluation.out / "metrics.json"),
            "mAP": evaluation.metrics.get(MAP),
            "checkpoint_mAP": checkpoint_map,
            "verdict": verdict(doc["parity"]),
            "tolerance": parity.get("tolerance"),
            "agreement": parity.get("agreement"),
            "latency_ms": parity.get("latency_ms_per_image") or {"export": doc["latency_ms_per_image"]},
            "findings": list(parity.get("findings", [])),
            "notes": list(parity.get("notes", [])),
            "rows": _parity_rows(parity),
            "seconds": round(evaluation.elapsed_s, 1),
        }
    return models


def predict_some(inputs: ShipInputs, out: Path, note: Callable[[str], None]) -> dict[str, Any]:
    """``tfod predict`` with the SavedModel in ``out`` on the first eval images, annotated copies kept."""
    from tfod_tools.odapi.quiet import divert_stderr
    from tfod_tools.predict.run import PredictOptions, predict

    w = inputs.workdir
    images = _write_inputs(inputs.eval_record, out / "inputs", inputs.predict_images)
    note(
        f"  predicting with the SavedModel on {len(images)} eval images (score >= {inputs.score_threshold:g})"
    )
    with divert_stderr(out / "verify.log", header="tfod demo: predict"):
        predicted = predict(
            PredictOptions(
                model=out / "saved_model",
                out=out / "predict",
                images=str(out / "inputs"),
                score_threshold=inputs.score_threshold,
                label_map=inputs.label_map,
            )
        )
    annotated = sorted(p for p in (out / "predict" / "images").iterdir() if p.is_file())
    return {
        "dir": _rel(w, out / "predict"),
        "score_threshold": inputs.score_threshold,
        "inputs": [_rel(w, p) for p in images],
        "images": [_rel(w, p) for p in annotated],
        "detections": predicted.detections,
        "detections_json": _rel(w, out / "predict" / "detections.json"),
        "seconds": round(predicted.seconds.get("total", 0.0), 1),
    }


def ship(inputs: ShipInputs, note: Callable[[str], None]) -> tuple[dict[str, Any], list[str]]:
    """Export, verify and predict (see the module docstring); returns the step's result and outputs."""
    from tfod_tools.export.run import plan_export, run_export
    from tfod_tools.odapi.quiet import divert_stderr

    w = inputs.workdir
    out = w / "export"
    if out.exists():  # an interrupted earlier attempt: start the step over
        shutil.rmtree(out)
    plan = plan_export(inputs.pipeline, inputs.model_dir, out, checkpoint="best", formats=inputs.formats)
    source = plan.chosen.to_dict()
    note(
        f"  exporting the best checkpoint (step {plan.chosen.step}) as {', '.join(inputs.formats)} -> "
        f"{_rel(w, out)} (log: {_rel(w, out)}/export.log)"
    )
    exported = run_export(plan, library_output=lambda log: divert_stderr(log, header="tfod demo: export"))
    models = verify(inputs, out, note)
    predicted = predict_some(inputs, out, note)
    result: dict[str, Any] = {
        "dir": _rel(w, out),
        "checkpoint": source["checkpoint"],
        "chosen_by": source["chosen_by"],
        "step": plan.chosen.step,
        "source": _rel(w, inputs.model_dir),
        "formats": list(inputs.formats),
        "export_json": _rel(w, out / "export.json"),
        "export_seconds": {k: round(v, 1) for k, v in exported.seconds.items()},
        "post_processing": exported.manifest.get("post_processing"),
        "models": models,
        "predict": predicted,
        "note": None if "tflite" in inputs.formats else QUICK_NOTE,
    }
    outputs: Sequence[str] = [
        result["export_json"],
        *(m["path"] for m in models.values()),
        *(m["metrics_json"] for m in models.values()),
        predicted["detections_json"],
        *predicted["images"],
    ]
    return result, list(outputs)


def export_summary(workdir: Path, export: Mapping[str, Any]) -> dict[str, Any]:
    """The ``export`` section of the ``--json`` summary: paths, formats, parity verdicts, mAP of each."""
    return {
        "dir": str(workdir / export["dir"]),
        "step": export["step"],
        "checkpoint": export["checkpoint"],
        "formats": export["formats"],
        "export_json": str(workdir / export["export_json"]),
        "export_seconds": export["export_seconds"],
        "models": {
            kind: {
                "path": str(workdir / m["path"]),
                "metrics_json": str(workdir / m["metrics_json"]),
                "mAP": m["mAP"],
                "checkpoint_mAP": m["checkpoint_mAP"],
                "verdict": m["verdict"],
                "tolerance": m["tolerance"],
                "agreement": m["agreement"],
                "findings": m["findings"],
            }
            for kind, m in export["models"].items()
        },
        "predict": {
            "dir": str(workdir / export["predict"]["dir"]),
            "images": [str(workdir / p) for p in export["predict"]["images"]],
            "detections": export["predict"]["detections"],
        },
        "note": export["note"],
    }


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def ship_summary(result: Mapping[str, Any]) -> str:
    """The ``export`` step's progress line: each export's mAP and parity verdict, the predictions."""
    parts = [
        f"{kind} mAP {_score(m['mAP'])} (checkpoint {_score(m['checkpoint_mAP'])}, parity {m['verdict']})"
        for kind, m in result["models"].items()
    ]
    pred = result["predict"]
    summary = (
        f"step {result['step']} exported: {'; '.join(parts)}; {pred['detections']} detection(s) on "
        f"{len(pred['inputs'])} eval images in {pred['dir']}/images"
    )
    if result["note"]:
        summary += f"; {result['note']}"
    return summary
