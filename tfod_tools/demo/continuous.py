"""Train with the continuous evaluator beside, as ``tfod train --eval continuous`` does.

The run is :func:`tfod_tools.training.session.train_with_evaluation`, exactly what ``tfod train
--eval continuous`` runs: ``model_main_tf2`` in a supervised child with its loss watched, and the
evaluator child (``tfod evaluate --follow``) protecting and evaluating every checkpoint as it
appears, so ``MODEL_DIR/eval`` holds one point per checkpoint (a curve, not TensorBoard's single
dot) when training ends. The evaluator's typed records (:mod:`tfod_tools.evaluation.channel`)
become progress notes (:func:`evaluation_note`; nothing is parsed from its human output).
Ctrl-C stops both children cleanly; the demo then raises :class:`KeyboardInterrupt`. This module
does not import TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfod_tools.errors import TfodError

if TYPE_CHECKING:
    from tfod_tools.evaluation.continuous import ContinuousEvaluation
    from tfod_tools.odapi.training import TrainResult
    from tfod_tools.training.session import TrainingEvent

__all__ = ["TrainEvalResult", "evaluation_note", "train_and_evaluate"]


def evaluation_note(event: TrainingEvent) -> str | None:
    """The demo's progress note for an evaluator event, None for the others (and no finite mAP).

    >>> from tfod_tools.training.session import Evaluated, EvaluationFailed, MalformedRecord
    >>> evaluation_note(Evaluated(200, "ckpt-3", {"DetectionBoxes_Precision/mAP": 0.1234}, 4.0))
    '  evaluated step 200: mAP 0.123'
    >>> evaluation_note(Evaluated(200, "ckpt-3", {"PascalBoxes_Precision/mAP@0.5IOU": 0.5}, 4.0)) is None
    True
    >>> evaluation_note(EvaluationFailed("ckpt-2", None, "missing ckpt-2.index")) is None
    True
    >>> evaluation_note(MalformedRecord("{", "cut off"))
    "  warning: unreadable record from the evaluator (cut off): '{'"
    """
    from tfod_tools.training.session import Evaluated, MalformedRecord

    if isinstance(event, Evaluated) and event.map is not None and math.isfinite(event.map):
        return f"  evaluated step {event.step}: mAP {event.map:.3f}"
    if isinstance(event, MalformedRecord):
        return f"  warning: {event.describe()}"
    return None  # skipped and failed checkpoints: the ledger check after training explains them


@dataclass
class TrainEvalResult:
    """The training child's result and how the evaluator child ended."""

    train: TrainResult
    evaluation: ContinuousEvaluation | None


def train_and_evaluate(
    pipeline: str | Path,
    model_dir: str | Path,
    *,
    num_steps: int,
    checkpoint_every: int,
    on_note: Callable[[str], None] | None = None,
    what: str = "training",
) -> TrainEvalResult:
    """Train ``pipeline`` into ``model_dir`` with the continuous evaluator beside (see module doc).

    ``on_note`` receives the :func:`evaluation_note` of each evaluator event. Input problems
    raise :class:`tfod_tools.errors.TfodError` before anything starts; so does a run stopped for
    a NaN or diverging loss (after it stopped), naming the step and the log.
    """
    from tfod_tools.training.session import train_with_evaluation

    def on_event(event: TrainingEvent) -> None:
        note = evaluation_note(event)
        if note is not None and on_note is not None:
            on_note(note)

    outcome = train_with_evaluation(
        pipeline,
        model_dir,
        num_steps=num_steps,
        checkpoint_every=checkpoint_every,
        evaluate=True,
        eval_device="cpu",
        on_event=on_event,
    )
    check_outcome(outcome, what)
    return TrainEvalResult(train=outcome.train, evaluation=outcome.evaluation)


def check_outcome(outcome: Any, what: str) -> None:
    """The demo's one reading of a training session's outcome: Ctrl-C comes back as
    ``KeyboardInterrupt``, a run stopped for its loss or a failed trainer as a
    :class:`~tfod_tools.errors.TfodError` naming ``what`` and the log.

    >>> from types import SimpleNamespace as NS
    >>> train = NS(ok=False, error_lines=["OOM"], returncode=1, log_path="m/logs/train.log")
    >>> check_outcome(NS(interrupted=False, stopped_for_loss=False, problem=None, train=train), "training")
    Traceback (most recent call last):
    ...
    tfod_tools.errors.TfodError: m/logs/train.log: training failed: OOM (fix: read the log; run \
`tfod doctor` to check the environment)
    """
    if outcome.interrupted:
        raise KeyboardInterrupt
    trained = outcome.train
    if outcome.stopped_for_loss and outcome.problem is not None:
        raise TfodError(
            f"{what} stopped: {outcome.problem.describe()}",
            path=trained.log_path,
            fix="lower the learning rate in the demo's pipeline (see tfod_tools/demo/settings.py)",
        )
    if not trained.ok:
        detail = "; ".join(trained.error_lines[-3:]) or f"exit code {trained.returncode}"
        raise TfodError(
            f"{what} failed: {detail}",
            path=trained.log_path,
            fix="read the log; run `tfod doctor` to check the environment",
        )
