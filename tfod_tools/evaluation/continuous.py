"""``tfod train --eval continuous``: the evaluator as a second supervised process beside training.

:func:`start_continuous_evaluator` starts ``tfod evaluate --follow`` for a training process: it
protects every checkpoint as it appears (:mod:`tfod_tools.evaluation.follow`), evaluates them in
order, keeps the best, and exits after the checkpoint of the final step, or once the training
process is gone and nothing is left to evaluate. Its whole output (TensorFlow's included, with
``--verbose``) goes to ``MODEL_DIR/logs/eval.log``.
``device="cpu"`` hides the GPUs from it (``CUDA_VISIBLE_DEVICES=-1``: the usual fix when training
and evaluation do not fit on one GPU together); ``"auto"`` lets TensorFlow choose.

>>> argv = evaluator_argv("p.config", "runs/m", final_step=300, train_pid=42)
>>> argv[3:5], argv[-6:]
(['evaluate', '--pipeline'], ['--follow', '--final-step', '300', '--until-pid', '42', '--json'])
>>> evaluator_env("cpu")["CUDA_VISIBLE_DEVICES"]
'-1'
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfod_tools.errors import TfodError
from tfod_tools.odapi.runner import ProcessResult, SupervisedProcess, child_environment

__all__ = [
    "DEVICES",
    "MODES",
    "ContinuousEvaluation",
    "check_eval_options",
    "evaluator_argv",
    "evaluator_env",
    "finish_continuous_evaluator",
    "start_continuous_evaluator",
]

DEVICES: tuple[str, ...] = ("cpu", "auto")
MODES: tuple[str, ...] = ("none", "continuous")


def check_eval_options(mode: str, device: str) -> None:
    """``--eval`` and ``--eval-device`` of ``tfod train``; :class:`TfodError` (exit 2) when unknown.

    >>> check_eval_options("continuous", "gpu")
    Traceback (most recent call last):
    ...
    tfod_tools.errors.TfodError: unknown --eval-device 'gpu' (fix: use cpu or auto)
    """
    if mode not in MODES:
        raise TfodError(f"unknown --eval {mode!r}", fix="use none or continuous")
    if device not in DEVICES:
        raise TfodError(f"unknown --eval-device {device!r}", fix="use cpu or auto")


def evaluator_argv(
    pipeline: str | Path,
    model_dir: str | Path,
    *,
    final_step: int | None,
    train_pid: int | None,
    metrics: str = "coco",
) -> list[str]:
    """The evaluator child's command line."""
    argv = [sys.executable, "-m", "tfod_tools", "evaluate", "--pipeline", os.path.abspath(pipeline)]
    # --verbose: TensorFlow's own output stays in the child's output, which is all in eval.log already
    argv += ["--model-dir", os.path.abspath(model_dir), "--metrics", metrics, "--verbose", "--follow"]
    if final_step is not None:
        argv += ["--final-step", str(final_step)]
    if train_pid is not None:
        argv += ["--until-pid", str(train_pid)]
    return [*argv, "--json"]


def evaluator_env(device: str) -> dict[str, str]:
    """The evaluator child's environment for ``device`` (``cpu`` or ``auto``)."""
    check_eval_options("continuous", device)
    return child_environment({"CUDA_VISIBLE_DEVICES": "-1"} if device == "cpu" else None)


@dataclass
class ContinuousEvaluation:
    """How the evaluator child ended."""

    result: ProcessResult
    log_path: Path

    def print_summary(self, console: Any, model_dir: str | Path) -> None:
        """The step -> mAP, AP50, AR@100, eval loss table from the ledger (and a failure line)."""
        from tfod_tools.evaluation.summary import summary_rows, summary_table
        from tfod_tools.ledger import Ledger

        if Ledger.path_for(model_dir).is_file():
            with Ledger.open(model_dir, readonly=True) as ledger:
                rows = summary_rows(ledger.evaluations(status="ok"))
                best = ledger.best()
            if rows:
                step = None if best is None else best.step
                console.print(summary_table(rows, best_step=step, title=f"{model_dir}/eval (* best)"))
        if not self.result.ok:
            console.print(
                f"continuous evaluation ended with exit code {self.result.returncode}: see {self.log_path}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ok": self.result.ok,
            "returncode": self.result.returncode,
            "log": str(self.log_path),
            "error_lines": [] if self.result.ok else self.result.error_lines(),
        }


def start_continuous_evaluator(
    pipeline: str | Path,
    model_dir: str | Path,
    *,
    final_step: int | None,
    train_pid: int | None,
    device: str = "cpu",
    metrics: str = "coco",
) -> SupervisedProcess:
    """Start ``tfod evaluate --follow`` for the training process ``train_pid``; return the child."""
    log_path = Path(model_dir) / "logs" / "eval.log"
    argv = evaluator_argv(pipeline, model_dir, final_step=final_step, train_pid=train_pid, metrics=metrics)
    process = SupervisedProcess(argv, log_path, name="evaluate", env=evaluator_env(device))
    return process.start()


def finish_continuous_evaluator(process: SupervisedProcess, *, stop: bool = False) -> ContinuousEvaluation:
    """Wait until the evaluator has evaluated what is left (or stop it, ``stop=True``)."""
    result = process.stop() if stop else process.run()
    return ContinuousEvaluation(result=result, log_path=process.log_path)
