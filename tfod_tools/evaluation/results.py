"""What ``tfod evaluate`` reports: an evaluated or skipped checkpoint, progress callbacks, the run's result.

The types :mod:`tfod_tools.evaluation.runner` (one run), :mod:`tfod_tools.evaluation.selection`
(which checkpoints) and :mod:`tfod_tools.evaluation.follow` (the follow loop) share.

>>> Skipped("ckpt-3", "missing ckpt-3.index").to_dict()
{'checkpoint': 'ckpt-3', 'reason': 'missing ckpt-3.index', 'step': None, 'up_to_date': False}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfod_tools.ledger import Evaluation, Ledger

__all__ = ["EvalEvents", "EvaluateResult", "Skipped"]


@dataclass(frozen=True)
class Skipped:
    """A checkpoint that was not evaluated in this run, and why.

    ``up_to_date`` marks one skipped because the ledger already holds its evaluation (not a failure).
    """

    checkpoint: str
    reason: str
    step: int | None = None
    up_to_date: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "checkpoint": self.checkpoint,
            "reason": self.reason,
            "step": self.step,
            "up_to_date": self.up_to_date,
        }


@dataclass
class EvalEvents:
    """Callbacks for progress: a checkpoint starts (name, step, images), a batch ends (images), ..."""

    on_start: Callable[[str, int | None, int], None] | None = None
    on_batch: Callable[[int], None] | None = None
    on_done: Callable[[Evaluation], None] | None = None
    on_skip: Callable[[Skipped], None] | None = None
    on_note: Callable[[str], None] | None = None
    on_warn: Callable[[str], None] | None = None


@dataclass
class EvaluateResult:
    """What one ``tfod evaluate`` did, and the ledger's full state after it."""

    model_dir: Path
    evaluated: list[Evaluation] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    all_evaluations: list[Evaluation] = field(default_factory=list)
    best: Evaluation | None = None
    elapsed_s: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Skipped]:
        """The skipped checkpoints that were skipped for a failure (not because already evaluated)."""
        return [s for s in self.skipped if not s.up_to_date]

    @property
    def exit_code(self) -> int:
        """1 when every requested checkpoint failed (none evaluated now or before), else 0.

        >>> EvaluateResult(Path("m"), skipped=[Skipped("ckpt-2", "missing ckpt-2.index")]).exit_code
        1
        >>> EvaluateResult(Path("m"), skipped=[Skipped("ckpt-2", "already evaluated", 100, True)]).exit_code
        0
        """
        done = self.evaluated or any(s.up_to_date for s in self.skipped)
        return 1 if self.failed and not done else 0

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document."""
        return {
            "evaluated": [
                {"step": e.step, "checkpoint": e.checkpoint, "metrics": dict(e.metrics)}
                for e in self.evaluated
            ],
            "skipped": [s.to_dict() for s in self.skipped],
            "best": None
            if self.best is None
            else {"step": self.best.step, "checkpoint": self.best.checkpoint},
            "ledger": str(Ledger.path_for(self.model_dir)),
            "elapsed_s": round(self.elapsed_s, 3),
            "warnings": list(self.warnings),
        }
