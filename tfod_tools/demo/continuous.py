"""Train with the continuous evaluator beside, as ``tfod train --eval continuous`` does.

Training is ``model_main_tf2`` in a supervised child (:func:`tfod_tools.odapi.training.train`); as soon
as it starts, the evaluator child (:func:`tfod_tools.evaluation.continuous.start_continuous_evaluator`,
``tfod evaluate --follow``) protects and evaluates every checkpoint as it appears, so ``MODEL_DIR/eval``
holds one point per checkpoint (a curve, not TensorBoard's single dot) when training ends. Each
evaluator output line is passed to ``on_eval_line`` (progress). Ctrl-C stops both children cleanly;
the demo then raises :class:`KeyboardInterrupt`. This module does not import TensorFlow.

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
from typing import TYPE_CHECKING, Any

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

    Input problems raise :class:`tfod_tools.errors.TfodError` before anything starts.
    """
    from tfod_tools.evaluation.continuous import finish_continuous_evaluator, start_continuous_evaluator
    from tfod_tools.odapi.training import train

    box: dict[str, Any] = {}

    def on_start(process: Any, target: int | None) -> None:
        evaluator = start_continuous_evaluator(
            pipeline, model_dir, final_step=target, train_pid=process.pid, device="cpu"
        )
        if on_eval_line is not None:
            evaluator.callbacks.append(on_eval_line)
        box["evaluator"] = evaluator

    try:
        trained = train(
            pipeline, model_dir, num_steps=num_steps, checkpoint_every=checkpoint_every, on_start=on_start
        )
    except BaseException:
        if "evaluator" in box:
            finish_continuous_evaluator(box["evaluator"], stop=True)
        raise
    evaluation = None
    if "evaluator" in box:
        evaluation = finish_continuous_evaluator(box["evaluator"], stop=trained.interrupted or not trained.ok)
    if trained.interrupted:
        raise KeyboardInterrupt
    return TrainEvalResult(train=trained, evaluation=evaluation)
