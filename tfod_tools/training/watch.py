"""Watch a training's logged losses and stop it on the first NaN, Inf or divergence.

``model_main_tf2`` logs its loss terms every 100 steps; :class:`LossWatch` receives the parsed
updates (:class:`~tfod_tools.odapi.trainlog.TrainProgress`), checks each completed step once with
:class:`~tfod_tools.diagnostics.health.LossMonitor` (the same rule ``tfod diagnose`` applies to the
event files) and, when ``stop`` is set, asks the trainer to stop (``request_stop``: SIGINT, then
SIGTERM and SIGKILL). The checkpoints already written are left alone: :func:`checkpoints_around`
says which one is the last good one and which hold weights from the bad steps.

>>> from tfod_tools.odapi.trainlog import TrainProgress
>>> watch = LossWatch(stop=False)
>>> watch.feed(TrainProgress(100, losses={"Loss/total_loss": 1.1}, complete=True)) is None
True
>>> watch.feed(TrainProgress(200, losses={"Loss/total_loss": float("nan")}, complete=False)) is None
True
>>> watch.feed(TrainProgress(200, losses={"Loss/total_loss": float("nan")}, complete=True)).describe()
'loss is NaN at step 200 (Loss/total_loss)'
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from tfod_tools.diagnostics.health import LossMonitor, LossProblem
from tfod_tools.odapi.checkpoints import CheckpointFiles, list_checkpoints
from tfod_tools.odapi.trainlog import TrainProgress

__all__ = ["LossWatch", "checkpoints_around", "describe_checkpoints"]


class _Stoppable(Protocol):
    def request_stop(self, grace_s: float = ...) -> None: ...


class LossWatch:
    """The loss watch of one training (see the module docstring)."""

    def __init__(self, *, stop: bool = True) -> None:
        self.stop = stop
        self.monitor = LossMonitor()
        self.process: _Stoppable | None = None
        self.problem: LossProblem | None = None
        self.stopped = False
        """True when the watch asked the trainer to stop."""
        self._checked: set[int] = set()

    def attach(self, process: _Stoppable) -> None:
        """The trainer to stop when a problem is found."""
        self.process = process

    def feed(self, update: TrainProgress) -> LossProblem | None:
        """Check ``update`` once its step is complete; the problem the first time one is found."""
        if not update.complete or update.step in self._checked or self.problem is not None:
            return None
        self._checked.add(update.step)
        problem = self.monitor.update(update.step, update.losses)
        if problem is None:
            return None
        self.problem = problem
        if self.stop and self.process is not None:
            self.process.request_stop()
            self.stopped = True
        return problem


def checkpoints_around(
    model_dir: str | Path, problem_step: int
) -> tuple[CheckpointFiles | None, list[CheckpointFiles]]:
    """The newest checkpoint saved before ``problem_step``, and those saved at or after it.

    Steps are read from the checkpoint files (no TensorFlow); a checkpoint whose step cannot be
    read is left out of both.

    >>> import tempfile
    >>> checkpoints_around(tempfile.mkdtemp(), 300)
    (None, [])
    """
    here = Path(model_dir).resolve()
    found = [
        c for c in list_checkpoints(model_dir) if c.step is not None and c.prefix.parent.resolve() == here
    ]
    good = [c for c in found if c.step is not None and c.step < problem_step]
    bad = [c for c in found if c.step is not None and c.step >= problem_step]
    last = max(good, key=lambda c: c.step or 0) if good else None
    return last, sorted(bad, key=lambda c: c.step or 0)


def describe_checkpoints(good: CheckpointFiles | None, bad: Sequence[CheckpointFiles]) -> list[str]:
    """Lines naming the last good checkpoint and the ones not to use.

    >>> describe_checkpoints(None, [])
    ['no checkpoint was saved before the problem step']
    """
    lines = []
    if good is None:
        lines.append("no checkpoint was saved before the problem step")
    else:
        lines.append(f"last good checkpoint: {good.name} (step {good.step}) at {good.prefix}")
    for c in bad:
        lines.append(f"{c.name} (step {c.step}) was saved at or after the problem step: do not export it")
    return lines
