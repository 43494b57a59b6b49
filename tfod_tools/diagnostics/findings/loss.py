"""Loss findings: a NaN or diverged loss, read from the train event files of any run (stock
``model_main_tf2`` included).

Finding ids (stable):

- ``loss_nan`` (error): a ``Loss/*`` term is NaN or +-Inf; first step, term, last good step.
- ``loss_divergence`` (error): the total loss grew :data:`~tfod_tools.diagnostics.health.DIVERGENCE_FACTOR`
  times over its lowest value, or passed :data:`~tfod_tools.diagnostics.health.IMPLAUSIBLE_LOSS`.
  Both loss findings apply the rule of :mod:`tfod_tools.diagnostics.health`, the one ``tfod train``
  watches live, and list its likely causes with their fixes.

>>> from tfod_tools.tensorboard.reader import ScalarPoint as P
>>> s = Scalars([P("train", "Loss/total_loss", 100, 1.0, 0),
...              P("train", "Loss/total_loss", 200, float("nan"), 0)])
>>> f = loss_problem(s)
>>> f.id, f.evidence["term"], f.evidence["last_good_step"]
('loss_nan', 'Loss/total_loss', 100)
"""

from __future__ import annotations

import math
from typing import Any

from tfod_tools.diagnostics.findings import finding_rule
from tfod_tools.diagnostics.findings.training import LEARNING_RATE_TAG, _rate_curve
from tfod_tools.diagnostics.health import (
    LIKELY_CAUSES,
    LossProblem,
    first_loss_problem,
    is_loss_tag,
)
from tfod_tools.diagnostics.model import Finding, table
from tfod_tools.diagnostics.schedule import _sig
from tfod_tools.diagnostics.series import Scalars

__all__ = ["loss_problem"]

_LOSS_ROWS_BEFORE = 10  # logged points kept before a loss problem (plus the first one)
_LOSS_ROWS_AFTER = 3  # logged points kept after it


@finding_rule(40, call=lambda fn, d: fn(d.scalars))
def loss_problem(scalars: Scalars) -> Finding | None:
    """``loss_nan`` or ``loss_divergence`` from the train run's ``Loss/*`` scalars (the first problem,
    by the rule of :mod:`tfod_tools.diagnostics.health`), else None.

    >>> from tfod_tools.tensorboard.reader import ScalarPoint as P
    >>> s = Scalars([P("train", "Loss/total_loss", 100, 1.2, 0),
    ...              P("train", "Loss/total_loss", 200, 3.5e8, 0)])
    >>> f = loss_problem(s)
    >>> f.id, f.severity, f.evidence["step"], f.evidence["last_good_step"]
    ('loss_divergence', 'error', 200, 100)
    >>> f.evidence["loss_curves"]["rows"]
    [[100, 1.2], [200, 350000000.0]]
    """
    run = scalars.train_run
    series = {tag: scalars.series(run, tag) for tag in scalars.tags(run) if is_loss_tag(tag)}
    problem = first_loss_problem(series)
    if problem is None:
        return None
    rates = scalars.series(run, LEARNING_RATE_TAG)
    evidence: dict[str, Any] = {
        "step": problem.step,
        "term": problem.term,
        "value": _sig(problem.value),
        "last_good_step": problem.last_good_step,
    }
    if problem.kind == "loss_divergence":
        evidence["lowest_value"] = None if problem.baseline is None else _sig(problem.baseline)
        evidence["lowest_step"] = problem.baseline_step
    rate_at = dict(rates)
    if problem.step in rate_at:
        evidence["learning_rate"] = _sig(rate_at[problem.step])
    evidence["loss_curves"] = _loss_table(series, problem.step)
    if rates:
        steps = {row[0] for row in evidence["loss_curves"]["rows"]}
        near = [(s, v) for s, v in rates if s in steps and math.isfinite(v)]
        if near:
            evidence["learning_rate_curve"] = _rate_curve(near)
    evidence["likely_causes"] = table(["likely cause", "fix"], LIKELY_CAUSES)
    return Finding(problem.kind, "error", _loss_message(problem), evidence, _loss_fix(problem))


def _loss_table(series: dict[str, list[tuple[int, float]]], at: int) -> dict[str, Any]:
    tags = sorted(series, key=lambda t: (t == "Loss/total_loss", t))
    values = {tag: dict(points) for tag, points in series.items()}
    steps = sorted({s for points in series.values() for s, _ in points})
    before = [s for s in steps if s < at]
    after = [s for s in steps if s >= at][: _LOSS_ROWS_AFTER + 1]
    if len(before) > _LOSS_ROWS_BEFORE + 1:
        before = [before[0], *before[-_LOSS_ROWS_BEFORE:]]
    rows = [[s, *(_sig(values[t][s]) if s in values[t] else None for t in tags)] for s in before + after]
    return table(["step", *tags], rows)


def _loss_message(problem: LossProblem) -> str:
    good = problem.last_good_step
    tail = (
        f"; the last step with healthy losses is {good}, later checkpoints hold broken weights"
        if good is not None
        else "; no logged step before it was healthy"
    )
    return f"{problem.describe()}{tail}. Most often the learning rate is too high (see likely_causes)"


def _loss_fix(problem: LossProblem) -> str:
    restart = (
        f"restart from a checkpoint at or before step {problem.last_good_step} (or from scratch)"
        if problem.last_good_step is not None
        else "train again from scratch"
    )
    fixes = " Else: ".join(fix[0].upper() + fix[1:] + "." for _, fix in LIKELY_CAUSES)
    return f"Fix the cause, then {restart}. Most often the learning rate: {fixes}"
