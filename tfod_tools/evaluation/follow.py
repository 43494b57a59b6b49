"""Continuous evaluation beside training: every checkpoint, once, in order, none lost.

Two parts run in the evaluator process:

- :class:`CheckpointGuard` (here), a thread that scans ``MODEL_DIR`` every ``interval_s`` (0.5 s) and
  hard-links each new complete checkpoint (its ``.index`` ends in the SSTable magic and every data
  shard is there; TensorFlow writes the index last) under ``MODEL_DIR/eval/protected``. From then
  on ``CheckpointManager(max_to_keep=...)`` deleting the original frees nothing the evaluator needs.
  It starts before TensorFlow is imported, and takes over links a killed earlier run left behind.
- :func:`follow_training` (here too), the loop that evaluates the protected
  checkpoints in order (each is released after its evaluation; the best stays linked under
  ``eval/best``), and stops after the checkpoint of the final step, or, when following a training
  process (``until_pid``), once that process is gone and nothing is left to evaluate. No idle
  waiting after the last checkpoint. It drives a
  :class:`tfod_tools.evaluation.runner.EvaluationSession` (typed here as :class:`FollowedSession`:
  the runner imports this module, not the other way round).

**Residual window.** A checkpoint the manager deletes within ``interval_s`` of its creation (it
would need ``max_to_keep`` newer checkpoints to be saved in that time) is lost before it can be
linked; the run then reports it as skipped with that reason. With ``max_to_keep >= 2`` and the
API's checkpoints at least 100 steps apart this needs training faster than ~200 steps/s.

>>> import tempfile, pathlib
>>> from tfod_tools.odapi.checkpoints import TABLE_MAGIC
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "ckpt-1.index").write_bytes(TABLE_MAGIC)
>>> _ = (d / "ckpt-1.data-00000-of-00001").write_bytes(b"w")
>>> guard = CheckpointGuard(d, d / "eval" / "protected")
>>> guard.scan_once()
>>> (d / "ckpt-1.index").unlink()  # the manager deletes it: the link keeps it
>>> [(c.name, c.problem) for c in guard.take()]
[('ckpt-1', None)]
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Protocol

from tfod_tools.errors import TfodError
from tfod_tools.evaluation.results import EvalEvents, EvaluateResult, Skipped
from tfod_tools.ledger import Evaluation
from tfod_tools.odapi.checkpoints import CheckpointFiles, protect, release, scan_checkpoints

__all__ = ["POLL_INTERVAL_S", "CheckpointGuard", "FollowedSession", "follow_training", "pid_alive"]

POLL_INTERVAL_S = 0.5


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a zombie counts until its parent reaps it).

    >>> pid_alive(os.getpid())
    True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class CheckpointGuard:
    """Hard-link each new complete checkpoint of ``model_dir`` into ``protected_dir`` (a thread)."""

    def __init__(self, model_dir: str | Path, protected_dir: str | Path, interval_s: float = POLL_INTERVAL_S):
        self.model_dir = Path(model_dir)
        self.protected_dir = Path(protected_dir)
        self.interval_s = interval_s
        self.seen: set[str] = set()
        self.lost: dict[str, str] = {}
        self._pending: dict[str, CheckpointFiles] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        for leftover in scan_checkpoints(self.protected_dir):  # a killed earlier run's links
            if leftover.problem is None:
                self._pending[leftover.name] = leftover
                self.seen.add(leftover.name)
            else:
                release(leftover)

    def scan_once(self) -> None:
        """Protect every complete checkpoint not seen before."""
        for ckpt in scan_checkpoints(self.model_dir):
            if ckpt.name in self.seen or ckpt.problem is not None:
                continue  # an incomplete one may still be being written: look again next time
            try:
                kept = protect(ckpt, self.protected_dir)
            except TfodError:
                if not ckpt.index.exists():
                    with self._lock:
                        self.lost[ckpt.name] = (
                            "deleted by CheckpointManager (max_to_keep) before it could be protected"
                        )
                        self.seen.add(ckpt.name)
                continue
            with self._lock:
                self._pending[ckpt.name] = kept
                self.seen.add(ckpt.name)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.scan_once()
                self._stop.wait(self.interval_s)
        except BaseException as exc:  # reported by the follow loop
            self.error = exc

    def start(self) -> CheckpointGuard:
        """Scan once now, then keep scanning in a daemon thread; returns self."""
        self.scan_once()
        self._thread = threading.Thread(target=self._run, name="checkpoint-guard", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop scanning and release links nobody took."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            for ckpt in self._pending.values():
                release(ckpt)
            self._pending.clear()

    def take(self) -> list[CheckpointFiles]:
        """The protected checkpoints not yet taken, by checkpoint number."""
        with self._lock:
            items = sorted(self._pending.values(), key=lambda c: c.number)
            self._pending.clear()
        return items

    def has_pending(self) -> bool:
        """Whether protected checkpoints are waiting."""
        with self._lock:
            return bool(self._pending)


class FollowedSession(Protocol):
    """What :func:`follow_training` uses of :class:`tfod_tools.evaluation.runner.EvaluationSession`."""

    pipeline: Path
    model_dir: Path
    events: EvalEvents

    def process(self, checkpoint: CheckpointFiles, *, step: int | None = None) -> Evaluation | Skipped:
        """Evaluate one protected checkpoint; its ledger row, or why it was skipped."""
        ...


def _final_step(session: FollowedSession) -> int | None:
    from tfod_tools.odapi.pipeline import load_pipeline
    from tfod_tools.odapi.training import effective_steps

    return effective_steps(int(load_pipeline(session.pipeline).train_config.num_steps))


def follow_training(
    session: FollowedSession,
    guard: CheckpointGuard,
    result: EvaluateResult,
    *,
    final_step: int | None = None,
    until_pid: int | None = None,
) -> None:
    """Evaluate checkpoints as they appear until the final step (see the module docstring)."""
    final = final_step if final_step is not None else _final_step(session)
    if not guard.seen and session.events.on_note is not None:
        until = "" if final is None else f" (until step {final})"
        session.events.on_note(f"no checkpoint in {session.model_dir} yet: waiting for training{until}")
    reached = False
    while not reached:
        if guard.error is not None:
            raise guard.error
        batch = guard.take()
        for ckpt in batch:
            try:
                outcome = session.process(ckpt)
            finally:
                release(ckpt)
            if isinstance(outcome, Skipped):
                result.skipped.append(outcome)
            else:
                result.evaluated.append(outcome)
            if final is not None and outcome.step is not None and outcome.step >= final:
                reached = True
        if reached:
            break
        if until_pid is not None and not pid_alive(until_pid):
            guard.scan_once()  # a last look after training ended
            if not guard.has_pending():
                break
            continue
        if not batch:
            time.sleep(guard.interval_s)
    for name, reason in sorted(guard.lost.items()):
        skipped = Skipped(name, reason)
        result.skipped.append(skipped)
        if session.events.on_skip is not None:
            session.events.on_skip(skipped)
    with contextlib.suppress(OSError):
        for ckpt in scan_checkpoints(session.model_dir):
            if ckpt.name not in guard.seen and ckpt.problem is not None:
                result.skipped.append(Skipped(ckpt.name, ckpt.problem))
