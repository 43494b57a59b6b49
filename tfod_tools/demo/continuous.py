"""Train with the continuous evaluator beside, as ``tfod train --eval continuous`` does.

The run is :func:`tfod_tools.training.session.train_with_evaluation`, exactly what ``tfod train
--eval continuous`` runs: ``model_main_tf2`` in a supervised child with its loss watched, and the
evaluator child (``tfod evaluate --follow``) protecting and evaluating every checkpoint as it
appears, so ``MODEL_DIR/eval`` holds one point per checkpoint (a curve, not TensorBoard's single
dot) when training ends. Each evaluator output line is passed to ``on_eval_line`` (progress).
Ctrl-C stops both children cleanly; the demo then raises :class:`KeyboardInterrupt`. This module
does not import TensorFlow.

>>> parse_evaluated("evaluated ckpt-3 (step 200): mAP 0.1234")
(200, 0.1234)
>>> parse_evaluated("something else") is None
True
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tfod_tools.errors import TfodError

if TYPE_CHECKING:
    from tfod_tools.evaluation.continuous import ContinuousEvaluation
    from tfod_tools.odapi.training import TrainResult

__all__ = ["TrainEvalResult", "parse_evaluated", "train_and_evaluate"]

_EVALUATED = re.compile(r"evaluated ckpt-\d+ \(step (\d+)\): mAP ([-\d.eE]+)")


def parse_evaluated(line: str) -> tuple[int, float] | None:
    """``(step, mAP)`` from the evaluator's "evaluated ckpt-N (step S): mAP V" line, else None."""
    match = _EVALUATED.search(line)
    return None if match is None else (int(match.group(1)), float(match.group(2)))


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
    on_eval_line: Callable[[str], None] | None = None,
) -> TrainEvalResult:
    """Train ``pipeline`` into ``model_dir`` with the continuous evaluator beside (see module doc).

    Input problems raise :class:`tfod_tools.errors.TfodError` before anything starts; so does a
    run stopped for a NaN or diverging loss (after it stopped), naming the step and the log.
    """
    from tfod_tools.training.session import EvaluatorLine, TrainingEvent, train_with_evaluation

    def on_event(event: TrainingEvent) -> None:
        if isinstance(event, EvaluatorLine) and on_eval_line is not None:
            on_eval_line(event.line)

    outcome = train_with_evaluation(
        pipeline,
        model_dir,
        num_steps=num_steps,
        checkpoint_every=checkpoint_every,
        evaluate=True,
        eval_device="cpu",
        on_event=on_event,
    )
    if outcome.interrupted:
        raise KeyboardInterrupt
    if outcome.stopped_for_loss and outcome.problem is not None:
        raise TfodError(
            f"training stopped: {outcome.problem.describe()}",
            path=outcome.train.log_path,
            fix="lower the learning rate in the demo's pipeline (see tfod_tools/demo/settings.py)",
        )
    return TrainEvalResult(train=outcome.train, evaluation=outcome.evaluation)
