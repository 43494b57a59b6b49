"""``tfod train --eval continuous``: the evaluator as a second supervised process beside training.

:func:`start_continuous_evaluator` starts ``tfod evaluate --follow`` for a training process: it
protects every checkpoint as it appears (:mod:`tfod_tools.evaluation.follow`), evaluates them in
order, keeps the best, and exits after the checkpoint of the final step, or once the training
process is gone and nothing is left to evaluate. Its whole output (TensorFlow's included, with
``--verbose``) goes to ``MODEL_DIR/logs/eval.log``.
With ``on_record``, the child also reports each checkpoint it evaluated, skipped or failed as a
typed record on a pipe of its own (``--events-fd``; :mod:`tfod_tools.evaluation.channel`), read
by :class:`ContinuousEvaluator` and handed to ``on_record`` (nothing is parsed from its log).
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfod_tools.errors import TfodError
from tfod_tools.evaluation.channel import RecordCallback, RecordReader
from tfod_tools.odapi.runner import ProcessResult, SupervisedProcess, child_environment

__all__ = [
    "DEVICES",
    "MODES",
    "ContinuousEvaluation",
    "ContinuousEvaluator",
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


class ContinuousEvaluator(SupervisedProcess):
    """The evaluator child; with ``on_record``, its record channel is read beside its log.

    With ``on_record``, ``--events-fd`` and the write end of the channel's pipe are added to
    ``argv`` (the child inherits that one descriptor).

    :meth:`wait` (so :meth:`run` and :meth:`stop` too) returns once the child has exited and
    every record it wrote was handed to ``on_record``; an exception raised by ``on_record`` is
    raised there, as a line callback's is.

    >>> import tempfile
    >>> from tfod_tools.evaluation.channel import EvaluationFailed, RecordWriter
    >>> child = (
    ...     "import sys; from tfod_tools.evaluation.channel import *; print('human line');"
    ...     "RecordWriter.open_fd(int(sys.argv[2])).write(EvaluationFailed('ckpt-2', None, 'gone'))"
    ... )
    >>> seen = []
    >>> log = Path(tempfile.mkdtemp()) / "eval.log"
    >>> evaluator = ContinuousEvaluator([sys.executable, "-c", child], log, env=child_environment(),
    ...                                 on_record=seen.append)
    >>> evaluator.run().returncode, seen, log.read_text()
    (0, [EvaluationFailed(checkpoint='ckpt-2', step=None, reason='gone')], 'human line\\n')
    """

    def __init__(
        self,
        argv: Sequence[str],
        log_path: str | Path,
        *,
        env: dict[str, str],
        on_record: RecordCallback | None = None,
    ) -> None:
        self.reader = None if on_record is None else RecordReader(on_record)
        argv = list(argv)
        fds: tuple[int, ...] = ()
        if self.reader is not None:
            fds = (self.reader.write_fd,)
            argv += ["--events-fd", str(self.reader.write_fd)]
        super().__init__(argv, log_path, name="evaluate", env=env, pass_fds=fds)

    def start(self) -> ContinuousEvaluator:
        """Start the child, then read its records; returns self."""
        try:
            super().start()
        except BaseException:
            if self.reader is not None:
                self.reader.close()
            raise
        if self.reader is not None:
            self.reader.start()
        return self

    def wait(self, timeout: float | None = None) -> ProcessResult:
        """Wait for the child to exit and its records to be delivered."""
        result = super().wait(timeout)
        if self.reader is not None:
            self.reader.join()
            if self.reader.error is not None:
                raise self.reader.error
        return result


def start_continuous_evaluator(
    pipeline: str | Path,
    model_dir: str | Path,
    *,
    final_step: int | None,
    train_pid: int | None,
    device: str = "cpu",
    metrics: str = "coco",
    on_record: RecordCallback | None = None,
) -> ContinuousEvaluator:
    """Start ``tfod evaluate --follow`` for the training process ``train_pid``; return the child.

    ``on_record`` receives each record of the child's channel (see the module docstring).
    """
    log_path = Path(model_dir) / "logs" / "eval.log"
    argv = evaluator_argv(pipeline, model_dir, final_step=final_step, train_pid=train_pid, metrics=metrics)
    return ContinuousEvaluator(argv, log_path, env=evaluator_env(device), on_record=on_record).start()


def finish_continuous_evaluator(process: SupervisedProcess, *, stop: bool = False) -> ContinuousEvaluation:
    """Wait until the evaluator has evaluated what is left (or stop it, ``stop=True``)."""
    result = process.stop() if stop else process.run()
    return ContinuousEvaluation(result=result, log_path=process.log_path)
