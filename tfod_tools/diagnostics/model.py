"""What a diagnosis is made of: findings (id, severity, message, evidence, fix) and the result.

Evidence is a small dict; a table inside it is ``{"columns": [...], "rows": [[...], ...]}``
(built with :func:`table`), so JSON, the terminal and the HTML report all render it the same way.

>>> f = Finding("single_eval_point", "warning", "one eval point per tag",
...             {"points": table(["tag", "steps"], [["mAP", 1]])}, "run tfod evaluate")
>>> f.to_dict()["evidence"]["points"]["rows"]
[['mAP', 1]]
>>> d = Diagnosis(findings=[f, Finding("x", "error", "broken", {}, "fix it")])
>>> [x.id for x in d.sorted_findings()], d.counts()
(['x', 'single_eval_point'], {'error': 1, 'warning': 1, 'info': 0})
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["info", "warning", "error"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")
"""Severities, most severe first (the order findings are shown in)."""


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """An evidence table: column names and rows of plain values.

    >>> table(["a", "b"], [(1, 2)])
    {'columns': ['a', 'b'], 'rows': [[1, 2]]}
    """
    return {"columns": list(columns), "rows": [list(r) for r in rows]}


def is_table(value: Any) -> bool:
    """Whether an evidence value is a :func:`table`.

    >>> is_table(table(["a"], [])), is_table({"a": 1})
    (True, False)
    """
    return isinstance(value, dict) and set(value) == {"columns", "rows"}


@dataclass(frozen=True)
class Finding:
    """One diagnosis: a stable ``id``, a ``severity``, what is wrong, the evidence and the fix."""

    id: str
    severity: Severity
    message: str
    evidence: dict[str, Any]
    fix: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "severity": self.severity,
            "message": self.message,
            "evidence": self.evidence,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class BestCheckpoint:
    """The evaluated step with the best metric and whether its checkpoint files still exist."""

    step: int | None
    metric: str | None
    value: float | None
    exists: bool
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``step, metric, value, exists, path``)."""
        return {
            "step": self.step,
            "metric": self.metric,
            "value": self.value,
            "exists": self.exists,
            "path": self.path,
        }


@dataclass
class Diagnosis:
    """Every finding of one ``tfod diagnose`` run, the best checkpoint and what could not be read."""

    findings: list[Finding] = field(default_factory=list)
    best_checkpoint: BestCheckpoint = field(default_factory=lambda: BestCheckpoint(None, None, None, False))
    notes: list[str] = field(default_factory=list)
    inputs: Any = field(default=None, repr=False, compare=False)
    """What the engine read (:class:`tfod_tools.diagnostics.engine.DiagnosisInputs`); not serialised."""

    def sorted_findings(self) -> list[Finding]:
        """Findings by severity (error, warning, info), stable within a severity."""
        rank = {s: i for i, s in enumerate(SEVERITIES)}
        return sorted(self.findings, key=lambda f: rank[f.severity])

    def counts(self) -> dict[str, int]:
        """Number of findings per severity."""
        return {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}

    def ids(self) -> list[str]:
        """The ids of the findings, in order."""
        return [f.id for f in self.findings]

    def get(self, finding_id: str) -> list[Finding]:
        """All findings with this id."""
        return [f for f in self.findings if f.id == finding_id]

    def to_dict(self) -> dict[str, Any]:
        """``{"findings": [...], "best_checkpoint": {...}, "notes": [...]}``."""
        return {
            "findings": [f.to_dict() for f in self.sorted_findings()],
            "best_checkpoint": self.best_checkpoint.to_dict(),
            "notes": list(self.notes),
        }
