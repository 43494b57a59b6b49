"""``diagnose(model_dir, ...)``: read what a training run left behind and run every finding.

Inputs, each optional except the model directory:

- the event files under ``MODEL_DIR`` (``train``/``eval`` runs; read without TensorFlow);
- ``pipeline`` (``pipeline.config``; parsed with the API's protos, which need protobuf only): the
  post-processing, anchors, resizer, and the input readers' records and label map;
- ``eval_records`` / ``train_records`` / ``label_map``: override the pipeline's, or stand in for it;
- the evaluation ledger (``MODEL_DIR/eval/tfod_ledger.sqlite``) and stored detections
  (``MODEL_DIR/eval/detections``) that ``tfod evaluate`` writes;
- the checkpoints on disk (their global step is read from the files, TF-free).

Whatever is missing only switches off the findings that need it; :attr:`Diagnosis.notes` says which.
Without ``pipeline`` nothing here imports TensorFlow.

>>> import tempfile, pathlib
>>> from tfod_tools.tensorboard.writer import EventWriter
>>> model_dir = pathlib.Path(tempfile.mkdtemp())
>>> with EventWriter(model_dir / "eval") as w:
...     w.add_scalar("DetectionBoxes_Precision/mAP", 0.5, step=1000)
>>> d = diagnose(model_dir)
>>> d.ids(), d.best_checkpoint.step, d.best_checkpoint.exists
(['single_eval_point', 'best_checkpoint'], 1000, False)
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfod_tools.data.model import AnnotatedSet
from tfod_tools.diagnostics.analysis import DetectionAnalysis, analyse_detections
from tfod_tools.diagnostics.datasets import area_bucket_counts
from tfod_tools.diagnostics.findings import curves as curve_findings
from tfod_tools.diagnostics.findings import rules
from tfod_tools.diagnostics.findings import training as training_findings
from tfod_tools.diagnostics.findings.best_checkpoint import best_checkpoint_of
from tfod_tools.diagnostics.model import Diagnosis, Finding
from tfod_tools.diagnostics.series import Scalars
from tfod_tools.errors import TfodError
from tfod_tools.odapi.checkpoints import CheckpointFiles, list_checkpoints

__all__ = ["DiagnosisInputs", "diagnose", "load_inputs"]


@dataclass
class DiagnosisInputs:
    """Everything :func:`diagnose` read (the HTML report draws from it too)."""

    model_dir: Path
    scalars: Scalars
    pipeline_path: str | None = None
    config: Any = None
    label_map: Any = None
    eval_records: list[str] = field(default_factory=list)
    train_records: list[str] = field(default_factory=list)
    eval_set: AnnotatedSet | None = None
    train_set: AnnotatedSet | None = None
    inspections: dict[str, Any] = field(default_factory=dict)
    evaluations: list[Any] = field(default_factory=list)
    kept: list[Any] = field(default_factory=list)
    checkpoints: list[CheckpointFiles] = field(default_factory=list)
    detections_step: int | None = None
    analysis: DetectionAnalysis | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ground_truth_set(self) -> AnnotatedSet | None:
        """The eval ground truth: from the eval records, else from the stored detections."""
        if self.eval_set is not None:
            return self.eval_set
        return None if self.analysis is None else self.analysis.data

    @property
    def area_buckets(self) -> dict[str, int] | None:
        """The eval ground truth's boxes per COCO area bucket (None without ground truth)."""
        gt_set = self.ground_truth_set
        return None if gt_set is None else area_bucket_counts(gt_set.ground_truth)

    @property
    def eval_source(self) -> str | None:
        """Where the eval ground truth came from, for messages: the records, else the stored detections."""
        if self.eval_records:
            return ", ".join(self.eval_records)
        return "stored ground truth" if self.ground_truth_set is not None else None


def _as_list(value: str | Path | Sequence[str | Path] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        return [str(value)]
    return [str(v) for v in value]


def _reader_paths(config: Any, role: str) -> tuple[list[str], str | None]:
    from tfod_tools.odapi.pipeline import input_readers

    for name, reader in input_readers(config):
        if name == role:
            paths = [str(p) for p in reader.tf_record_input_reader.input_path]
            return paths, (str(reader.label_map_path) or None)
    return [], None


def _read_set(paths: list[str], label_map: Any, role: str, notes: list[str]) -> AnnotatedSet | None:
    if not paths:
        return None
    from tfod_tools.data.records import read_annotated_set

    try:
        return read_annotated_set(paths, label_map)
    except TfodError as exc:
        notes.append(f"{role} records not read: {exc.one_line()}")
        return None


def _load_ledger(model_dir: Path, notes: list[str]) -> tuple[list[Any], list[Any]]:
    from tfod_tools.ledger import Ledger

    if not Ledger.path_for(model_dir).is_file():
        return [], []
    try:
        with Ledger.open(model_dir, readonly=True) as ledger:
            return ledger.evaluations(), ledger.kept()
    except TfodError as exc:
        notes.append(f"evaluation ledger not read: {exc.one_line()}")
        return [], []


def _stored_steps(model_dir: Path) -> list[int]:
    folder = model_dir / "eval" / "detections"
    steps = []
    for path in folder.glob("step-*.npz"):
        match = re.fullmatch(r"step-(\d+)\.npz", path.name)
        if match:
            steps.append(int(match.group(1)))
    return sorted(steps)


def _load_analysis(
    inputs: DiagnosisInputs, prefer_step: int | None, step: int | None
) -> tuple[int | None, DetectionAnalysis | None]:
    stored = _stored_steps(inputs.model_dir)
    if not stored:
        inputs.notes.append(
            "no stored detections (MODEL_DIR/eval/detections/step-*.npz): low_class_ap, image_level and the "
            "report's PR curves, confusion matrix, error breakdown and gallery need `tfod evaluate`"
        )
        return None, None
    if step is not None and step not in stored:
        raise TfodError(
            f"no stored detections for step {step}",
            path=inputs.model_dir / "eval" / "detections",
            fix=f"use one of the stored steps: {', '.join(str(s) for s in stored)}",
        )
    chosen = step if step is not None else prefer_step if prefer_step in stored else stored[-1]
    try:
        from tfod_tools.data.store import load_detections
    except ModuleNotFoundError as exc:  # pragma: no cover - the evaluator ships with tfod_tools
        inputs.notes.append(f"stored detections not read ({exc})")
        return None, None
    try:
        data = load_detections(inputs.model_dir, chosen)
    except TfodError as exc:
        inputs.notes.append(f"stored detections not read: {exc.one_line()}")
        return None, None
    return chosen, analyse_detections(data, chosen)


def load_inputs(
    model_dir: str | Path,
    *,
    pipeline: str | Path | None = None,
    eval_records: str | Path | Sequence[str | Path] | None = None,
    train_records: str | Path | Sequence[str | Path] | None = None,
    label_map: str | Path | None = None,
    step: int | None = None,
    inspect: bool = True,
) -> DiagnosisInputs:
    """Read everything :func:`diagnose` uses (see the module docstring)."""
    from tfod_tools.tensorboard.reader import ReadStats, not_an_event_file, read_scalars

    base = Path(model_dir)
    stats = ReadStats()
    scalars = Scalars(read_scalars(base, stats=stats))
    if stats.not_event_files:
        raise not_an_event_file(stats.not_event_files[0])
    inputs = DiagnosisInputs(model_dir=base, scalars=scalars)
    notes = inputs.notes
    notes.extend(f"{path}: ends in a partial or damaged record (read up to it)" for path in stats.ended_early)
    if not scalars.by_key:
        notes.append(f"no event files with scalars under {base}")
    lm_path: str | None = str(label_map) if label_map is not None else None
    if pipeline is not None:
        from tfod_tools.odapi.pipeline import check_configured, load_pipeline

        inputs.pipeline_path = str(pipeline)
        inputs.config = load_pipeline(pipeline)
        check_configured(inputs.config, pipeline)
        eval_paths, eval_lm = _reader_paths(inputs.config, "eval")
        train_paths, train_lm = _reader_paths(inputs.config, "train")
        inputs.eval_records = _as_list(eval_records) or eval_paths
        inputs.train_records = _as_list(train_records) or train_paths
        lm_path = lm_path or eval_lm or train_lm
    else:
        inputs.eval_records = _as_list(eval_records)
        inputs.train_records = _as_list(train_records)
    if lm_path is not None:
        from tfod_tools.odapi.label_map import read_label_map

        try:
            inputs.label_map = read_label_map(lm_path)
        except TfodError as exc:
            notes.append(f"label map not read: {exc.one_line()}")
    jobs: list[tuple[str, list[str]]] = []
    if inspect and inputs.label_map is not None:
        jobs = [
            (role, paths)
            for role, paths in (("train", inputs.train_records), ("eval", inputs.eval_records))
            if paths
        ]
    elif inputs.eval_records or inputs.train_records:
        notes.append("annotation_issue needs a label map (--label-map, or the pipeline's label_map_path)")
    with _Background(jobs, inputs.label_map, inputs.pipeline_path) as inspections:
        inputs.eval_set = _read_set(inputs.eval_records, inputs.label_map, "eval", notes)
        inputs.train_set = _read_set(inputs.train_records, inputs.label_map, "train", notes)
        _load_rest(inputs, step)
        for role, report, error in inspections.results():
            if report is not None:
                inputs.inspections[role] = report
            elif error is not None and getattr(inputs, f"{role}_set") is not None:
                notes.append(f"{role} records not inspected: {error}")
    return inputs


def _load_rest(inputs: DiagnosisInputs, step: int | None) -> None:
    """The ledger, the checkpoints on disk and the stored detections."""
    base, notes = inputs.model_dir, inputs.notes
    inputs.evaluations, inputs.kept = _load_ledger(base, notes)
    ledger_steps = {e.checkpoint: int(e.step) for e in inputs.evaluations}
    inputs.checkpoints = list_checkpoints(base, ledger_steps)
    best = curve_findings.best_step(inputs.scalars)
    inputs.detections_step, inputs.analysis = _load_analysis(inputs, best[0] if best else None, step)


def _inspect_job(
    role: str, paths: list[str], label_map: Any, pipeline: str | None
) -> tuple[str, Any, str | None]:
    """``tfod inspect`` of one record set: ``(role, report or None, error line or None)``."""
    from tfod_tools.data.inspect import inspect_records

    try:
        return role, inspect_records(paths, label_map, pipeline=pipeline), None
    except TfodError as exc:
        return role, None, exc.one_line()


class _Background:
    """Run the record inspections in one forked worker process while the caller reads the rest.

    Inspecting re-reads every record (CRC, decode, image header), which is most of a diagnosis'
    time; on a 2-core machine it overlaps with reading the records and analysing detections. Where
    ``fork`` is not available, TensorFlow is loaded, or the worker dies, the inspections run in this
    process instead.
    """

    def __init__(self, jobs: list[tuple[str, list[str]]], label_map: Any, pipeline: str | None) -> None:
        self.jobs = jobs
        self.args = (label_map, pipeline)
        self.pool: Any = None
        self.futures: list[Any] = []

    def __enter__(self) -> _Background:
        import multiprocessing

        # Forking a process that runs TensorFlow's thread pools is unsafe: then stay in-process.
        forkable = "fork" in multiprocessing.get_all_start_methods() and "tensorflow" not in sys.modules
        if self.jobs and forkable:
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
            self.futures = [
                self.pool.submit(_inspect_job, role, paths, *self.args) for role, paths in self.jobs
            ]
        return self

    def results(self) -> list[tuple[str, Any, str | None]]:
        """Each job's ``(role, report, error)``, in job order."""
        if self.pool is not None:
            from concurrent.futures.process import BrokenProcessPool

            try:
                return [future.result() for future in self.futures]
            except BrokenProcessPool:
                pass
        return [_inspect_job(role, paths, *self.args) for role, paths in self.jobs]

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def diagnose(
    model_dir: str | Path,
    *,
    pipeline: str | Path | None = None,
    eval_records: str | Path | Sequence[str | Path] | None = None,
    train_records: str | Path | Sequence[str | Path] | None = None,
    label_map: str | Path | None = None,
    step: int | None = None,
    inputs: DiagnosisInputs | None = None,
) -> Diagnosis:
    """Run every finding on ``model_dir`` (see the module docstring); ``step`` picks the stored
    detections to analyse (default: the best step's, else the newest)."""
    if inputs is None:
        inputs = load_inputs(
            model_dir,
            pipeline=pipeline,
            eval_records=eval_records,
            train_records=train_records,
            label_map=label_map,
            step=step,
        )
    findings: list[Finding] = []
    notes = inputs.notes
    best = best_checkpoint_of(inputs)[0]
    for rule in rules():
        try:
            findings.extend(rule.findings(inputs))
        except TfodError as exc:
            notes.append(exc.one_line())
    findings = training_findings.prefer_observed(findings)
    diagnosis = Diagnosis(findings=findings, best_checkpoint=best, notes=notes)
    diagnosis.inputs = inputs
    return diagnosis
