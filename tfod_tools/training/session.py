"""One training run as ``tfod train`` and the demo run it: checks, trainer, loss watch, evaluator.

:func:`train_with_evaluation`:

1. checks the inputs (:func:`tfod_tools.odapi.checks.check_inputs`; a bad input raises
   :class:`~tfod_tools.errors.TfodError` and nothing starts), takes the model directory's lock, and
   runs the pipeline's config checks (:func:`tfod_tools.diagnostics.findings.config.config_findings`)
   as pre-flight warnings, with the plan's notes (rounded steps, the final save);
2. starts the trainer (``model_main_tf2`` under the compatibility layer) and, with
   ``evaluate=True``, the continuous evaluator beside it;
3. watches the logged losses (:class:`~tfod_tools.training.watch.LossWatch`): on the first NaN,
   Inf or divergence it stops the trainer and the evaluator (unless ``stop_on_problem=False``);
4. returns a :class:`TrainingOutcome` whose :attr:`~TrainingOutcome.exit_code` is 0 (done),
   1 (training failed or was stopped for its loss), or 128 + the signal (130 Ctrl-C, 143 SIGTERM,
   129 SIGHUP: those two are handled like Ctrl-C while it runs).

Progress reaches the caller as events (:data:`TrainingEvent`), never as text to scrape: the
trainer's log is parsed into :class:`Progress` (:mod:`tfod_tools.odapi.trainlog`), and the
evaluator reports each checkpoint on a record channel of its own
(:mod:`tfod_tools.evaluation.channel`), passed on as :class:`Evaluated`,
:class:`EvaluationSkipped` (already in the ledger), :class:`EvaluationFailed` and, for a line of
that channel that is not a record, :class:`MalformedRecord`. The evaluator's human output stays
in its log (``MODEL_DIR/logs/eval.log``). This module does not import TensorFlow.

>>> TrainingOutcome.exit_code_for(ok=True, interrupt_signal=None, stopped_for_loss=False)
0
>>> TrainingOutcome.exit_code_for(ok=False, interrupt_signal=None, stopped_for_loss=True)
1
>>> TrainingOutcome.exit_code_for(ok=False, interrupt_signal=15, stopped_for_loss=False)
143
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfod_tools.diagnostics.health import LossProblem, format_causes
from tfod_tools.diagnostics.model import Finding
from tfod_tools.evaluation.channel import Evaluated, EvaluationFailed, EvaluationSkipped, MalformedRecord
from tfod_tools.odapi.runner import SupervisedProcess, interrupt_exit_code, termination_as_interrupt
from tfod_tools.odapi.trainlog import TrainProgress
from tfod_tools.training.watch import LossWatch, checkpoints_around, describe_checkpoints

if TYPE_CHECKING:
    from tfod_tools.evaluation.continuous import ContinuousEvaluation
    from tfod_tools.odapi.checks import CheckedInputs
    from tfod_tools.odapi.training import TrainPlan, TrainResult

__all__ = [
    "Evaluated",
    "EvaluationFailed",
    "EvaluationSkipped",
    "LossTrouble",
    "MalformedRecord",
    "Planned",
    "Progress",
    "Started",
    "TrainingEvent",
    "TrainingOutcome",
    "eval_max_boxes",
    "train_with_evaluation",
]

EVAL_SCAN_LIMIT_BYTES = 256 * 2**20
"""Pre-flight reads the eval records (boxes per image) only when they hold at most this many bytes."""


@dataclass(frozen=True)
class Planned:
    """Before the trainer starts: what it will do, and the config checks' warnings."""

    plan: TrainPlan
    notes: list[str]
    warnings: list[Finding]


@dataclass(frozen=True)
class Started:
    """The trainer (and the evaluator) started."""

    pid: int | None
    target_steps: int | None
    log_path: Path
    evaluator_log: Path | None


@dataclass(frozen=True)
class Progress:
    """A parsed update of the trainer's log."""

    progress: TrainProgress


@dataclass(frozen=True)
class LossTrouble:
    """The first NaN / Inf / divergence; ``stopping`` when the run is being stopped for it."""

    problem: LossProblem
    stopping: bool


TrainingEvent = (
    Planned
    | Started
    | Progress
    | LossTrouble
    | Evaluated
    | EvaluationSkipped
    | EvaluationFailed
    | MalformedRecord
)
"""What :func:`train_with_evaluation` reports while it runs.

:class:`Planned` and :class:`Started` come from the calling thread; :class:`Progress` and
:class:`LossTrouble` from the thread reading the trainer's log; the evaluator's records from
the thread reading its channel. Every record has arrived when :func:`train_with_evaluation` returns.
"""


@dataclass
class TrainingOutcome:
    """How a training run ended (see the module docstring)."""

    train: TrainResult
    evaluation: ContinuousEvaluation | None
    problem: LossProblem | None = None
    stopped_for_loss: bool = False
    warnings: list[Finding] = field(default_factory=list)
    checkpoint_lines: list[str] = field(default_factory=list)
    """With a problem: the last good checkpoint and the ones saved at or after the problem step."""
    interrupt_signal: int | None = None

    @staticmethod
    def exit_code_for(*, ok: bool, interrupt_signal: int | None, stopped_for_loss: bool) -> int:
        """0 done; 1 failed or stopped for its loss; 128 + signal when interrupted."""
        if interrupt_signal is not None:
            return interrupt_exit_code(signum=interrupt_signal)
        return 0 if ok and not stopped_for_loss else 1

    @property
    def exit_code(self) -> int:
        """The process exit code for this outcome."""
        return self.exit_code_for(
            ok=self.train.ok, interrupt_signal=self.interrupt_signal, stopped_for_loss=self.stopped_for_loss
        )

    @property
    def interrupted(self) -> bool:
        """Stopped by Ctrl-C, SIGTERM or SIGHUP."""
        return self.interrupt_signal is not None

    def problem_lines(self) -> list[str]:
        """The explanation of a loss problem: likely causes with fixes, this config's warnings first."""
        if self.problem is None:
            return []
        lines = list(self.checkpoint_lines)
        related = [w for w in self.warnings if w.id.startswith(("learning_rate", "lr_", "warmup"))]
        lines += [f"this config: {w.message} -> {w.fix}" for w in related]
        lines += [f"likely: {line}" for line in format_causes()]
        return lines

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the training result plus the evaluation, the problem and the warnings."""
        data = self.train.to_dict()
        data["exit_code"] = self.exit_code
        data["loss_problem"] = None if self.problem is None else self.problem.to_dict()
        data["stopped_for_loss"] = self.stopped_for_loss
        data["config_warnings"] = [w.to_dict() for w in self.warnings]
        if self.problem is not None:
            data["problem_explanation"] = self.problem_lines()
        if self.evaluation is not None:
            data["evaluation"] = self.evaluation.to_dict()
        return data


def eval_max_boxes(checked: CheckedInputs, limit_bytes: int = EVAL_SCAN_LIMIT_BYTES) -> int | None:
    """The largest number of boxes in one eval image, when the eval records are small enough to scan.

    None for remote, missing or larger record sets (the check then waits for ``tfod diagnose``).
    """
    from tfod_tools.data.records import iter_image_records

    files = [Path(f) for role, found in checked.records.items() if role.startswith("eval") for f in found]
    if not files or any("://" in str(f) or not f.is_file() for f in files):
        return None
    if sum(f.stat().st_size for f in files) > limit_bytes:
        return None
    return max((len(record.xmin) for _, _, record in iter_image_records(files)), default=0)


def _config_warnings(checked: CheckedInputs) -> list[Finding]:
    from tfod_tools.diagnostics.findings.config import config_findings

    return config_findings(checked.config, str(checked.pipeline_path), eval_max_boxes=eval_max_boxes(checked))


def train_with_evaluation(
    pipeline: str | Path,
    model_dir: str | Path,
    *,
    num_steps: int | None = None,
    checkpoint_every: int | None = None,
    evaluate: bool = False,
    eval_device: str = "cpu",
    stop_on_problem: bool = True,
    extra_flags: Sequence[str] = (),
    on_event: Callable[[TrainingEvent], None] | None = None,
) -> TrainingOutcome:
    """Train ``pipeline`` into ``model_dir`` (see the module docstring)."""
    from tfod_tools.evaluation.continuous import (
        check_eval_options,
        finish_continuous_evaluator,
        start_continuous_evaluator,
    )
    from tfod_tools.odapi.training import train

    check_eval_options("continuous" if evaluate else "none", eval_device)
    emit = on_event or (lambda event: None)
    watch = LossWatch(stop=stop_on_problem)
    box: dict[str, Any] = {"warnings": []}

    def on_plan(plan: TrainPlan, checked: CheckedInputs) -> None:
        box["warnings"] = _config_warnings(checked)
        emit(Planned(plan=plan, notes=list(plan.notes), warnings=box["warnings"]))

    def on_start(process: SupervisedProcess, target: int | None) -> None:
        watch.attach(process)
        evaluator_log = None
        if evaluate:
            evaluator = start_continuous_evaluator(
                pipeline,
                model_dir,
                final_step=target,
                train_pid=process.pid,
                device=eval_device,
                on_record=emit,
            )
            box["evaluator"] = evaluator
            evaluator_log = evaluator.log_path
        emit(Started(process.pid, target, process.log_path, evaluator_log))

    def on_progress(update: TrainProgress) -> None:
        emit(Progress(update))
        problem = watch.feed(update)
        if problem is not None:
            emit(LossTrouble(problem, stopping=watch.stopped))

    with termination_as_interrupt():
        try:
            trained = train(
                pipeline,
                model_dir,
                num_steps=num_steps,
                checkpoint_every=checkpoint_every,
                extra_flags=extra_flags,
                on_progress=on_progress,
                on_start=on_start,
                on_plan=on_plan,
            )
        except BaseException:
            if "evaluator" in box:
                finish_continuous_evaluator(box["evaluator"], stop=True)
            raise
        signum = trained.interrupt_signal if trained.interrupted and not watch.stopped else None
        if trained.interrupted and signum is None and not watch.stopped:
            signum = signal.SIGINT
        evaluation = None
        if "evaluator" in box:
            evaluator: SupervisedProcess = box["evaluator"]
            evaluation = finish_continuous_evaluator(evaluator, stop=trained.interrupted or not trained.ok)
            if signum is None and evaluator.interrupt_signal is not None:
                signum = evaluator.interrupt_signal
    outcome = TrainingOutcome(
        train=trained,
        evaluation=evaluation,
        problem=watch.problem,
        stopped_for_loss=watch.stopped,
        warnings=box["warnings"],
        interrupt_signal=signum,
    )
    if watch.problem is not None:
        good, bad = checkpoints_around(trained.model_dir, watch.problem.step)
        outcome.checkpoint_lines = describe_checkpoints(good, bad)
    return outcome
