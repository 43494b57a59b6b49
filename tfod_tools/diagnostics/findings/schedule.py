"""Learning-rate schedule findings from ``pipeline.config`` alone (static): a schedule that does not
fit ``train_config.num_steps``. The same ids from the ``learning_rate`` the train event files log
are in :mod:`tfod_tools.diagnostics.findings.training`, with the thresholds defined here.

Finding ids (stable):

- ``learning_rate_never_decays`` (warning; info from the event files without a pipeline): a decaying
  schedule still gives :data:`NEVER_DECAYS_FRACTION` (90%) or more of its peak rate at ``num_steps``
  (a cosine ``total_steps: 50000`` with ``num_steps: 4000`` is at 98% of its base at the end).
- ``learning_rate_ends_early`` (warning): the rate is at most :data:`ENDED_FRACTION` (0.1%) of its
  peak for the last :data:`WASTED_FRACTION` (10%) or more of the steps; past ``total_steps`` the
  API's ``cosine_decay_with_warmup`` returns exactly 0, so those steps change nothing.
- ``warmup_exceeds_training`` (warning): the warm-up (cosine ``warmup_steps``, a manual schedule's
  first step with ``warmup: true``) does not end before ``num_steps``: the base rate is never reached.
- ``learning_rate_schedule_invalid`` (error): the API refuses the schedule when it builds the optimizer
  (cosine ``total_steps < warmup_steps``, ``warmup_learning_rate > learning_rate_base``, a manual
  schedule with an empty, unordered or step-0 boundary list), or the cosine divides by zero.

:func:`schedule_findings` registers no rule of its own: ``config_findings``
(:mod:`tfod_tools.diagnostics.findings.config`) lists them, and the observed rules of
:mod:`~tfod_tools.diagnostics.findings.training` carry them along. The schedule is evaluated with
:func:`~tfod_tools.diagnostics.schedule.learning_rate`, a pure mirror of the API's
``object_detection/utils/learning_schedules.py`` (:mod:`tfod_tools.diagnostics.schedule`).

>>> from tfod_tools.odapi.pipeline import parse_pipeline_text
>>> cfg = parse_pipeline_text('''train_config { num_steps: 4000 optimizer { momentum_optimizer {
...   learning_rate { cosine_decay_learning_rate { learning_rate_base: 0.08 total_steps: 50000
...   warmup_steps: 0 } } } } }''')
>>> [(f.id, f.evidence["percent_of_peak"]) for f in schedule_findings(cfg)]
[('learning_rate_never_decays', 98.4)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tfod_tools.diagnostics.model import Finding, table
from tfod_tools.diagnostics.schedule import Schedule, _sig, learning_rate

__all__ = ["ENDED_FRACTION", "NEVER_DECAYS_FRACTION", "WASTED_FRACTION", "schedule_findings"]

NEVER_DECAYS_FRACTION = 0.9
"""A decaying schedule "never decays" when its last rate is at least this fraction of its peak."""

ENDED_FRACTION = 0.001
"""A rate at most this fraction of the peak has effectively stopped training (cosine past total_steps: 0)."""

WASTED_FRACTION = 0.1
"""The schedule ended early when the stopped rate lasts for at least this fraction of the steps."""


def _percent(value: float, peak: float) -> float | None:
    return round(100.0 * value / peak, 1) if peak > 0 and math.isfinite(value) else None


# -- the schedule over a training run ----------------------------------------------------------------


def _probe_steps(schedule: Schedule, last: int, count: int = 400) -> list[int]:
    grid = {round(last * k / count) for k in range(count + 1)}
    for b in schedule.breakpoints():
        grid |= {b - 1, b, b + 1}
    return sorted(s for s in grid if 0 <= s <= last)


def _peak(schedule: Schedule, last: int) -> float:
    values = [learning_rate(schedule, s) for s in _probe_steps(schedule, last)]
    return max((v for v in values if math.isfinite(v)), default=0.0)


def _stopped_from(schedule: Schedule, last: int, peak: float) -> int | None:
    """The first step from which the rate stays at or below ``ENDED_FRACTION * peak`` up to ``last``."""
    limit = ENDED_FRACTION * peak
    steps = _probe_steps(schedule, last)
    above = [s for s in steps if not learning_rate(schedule, s) <= limit]
    if not above:
        return 0
    lo = above[-1]
    if lo == last:
        return None
    hi = min(s for s in steps if s > lo)
    while hi - lo > 1:  # the rate is monotone between probe steps: bisect to the exact crossing
        mid = (lo + hi) // 2
        if learning_rate(schedule, mid) <= limit:
            hi = mid
        else:
            lo = mid
    return hi


@dataclass(frozen=True)
class _Plan:
    """What a schedule does over ``num_steps``."""

    schedule: Schedule
    num_steps: int
    peak: float
    end: float
    stopped_from: int | None

    @classmethod
    def of(cls, schedule: Schedule, num_steps: int) -> _Plan:
        peak = _peak(schedule, num_steps)
        return cls(
            schedule,
            num_steps,
            peak,
            learning_rate(schedule, num_steps),
            _stopped_from(schedule, num_steps, peak),
        )

    @property
    def never_decays(self) -> bool:
        return self.schedule.is_decaying() and self.peak > 0 and self.end >= NEVER_DECAYS_FRACTION * self.peak

    @property
    def wasted_steps(self) -> int:
        return 0 if self.stopped_from is None else self.num_steps - self.stopped_from

    @property
    def ends_early(self) -> bool:
        return (
            self.schedule.is_decaying()
            and self.stopped_from is not None
            and self.wasted_steps >= WASTED_FRACTION * self.num_steps
        )

    def horizon(self) -> int:
        """How far the planned curve is drawn: the schedule's own end if later than num_steps (capped)."""
        s = self.schedule
        end = {"cosine_decay": s.total_steps, "manual_step": max(s.boundaries, default=0)}.get(s.kind, 0)
        return max(self.num_steps, min(end, 20 * self.num_steps))

    def curve(self) -> dict[str, Any]:
        last = self.horizon()
        steps = {round(last * k / 20) for k in range(21)} | {self.num_steps}
        steps |= {b for b in self.schedule.breakpoints() if 0 <= b <= last}
        peak = max(self.peak, _peak(self.schedule, last))
        rows = []
        for step in sorted(steps):
            value = learning_rate(self.schedule, step)
            rows.append([step, _sig(value), _percent(value, peak)])
        return table(["step", "learning rate", "% of peak"], rows)

    def evidence(self) -> dict[str, Any]:
        return {
            "num_steps": self.num_steps,
            "rate_at_num_steps": _sig(self.end),
            "peak_rate": _sig(self.peak),
            "percent_of_peak": _percent(self.end, self.peak),
            "schedule": table(["setting", "value"], self.schedule.settings()),
            "planned_learning_rate_curve": self.curve(),
        }


def _num_steps(config: Any) -> int:
    return int(config.train_config.num_steps) if config is not None else 0


def _where(pipeline_path: str | None) -> str:
    return pipeline_path or "pipeline.config"


def _never_decays_text(plan: _Plan, pipeline_path: str | None) -> tuple[str, str]:
    s, n = plan.schedule, plan.num_steps
    pct = _percent(plan.end, plan.peak)
    if s.kind == "cosine_decay":
        why = f"cosine total_steps {s.total_steps} is {s.total_steps / max(n, 1):.1f}x num_steps {n}"
        fix = (
            f"In {_where(pipeline_path)} set {s.proto_path} total_steps: {n} (= train_config.num_steps; keep "
            f"warmup_steps about a tenth of it), or train for {s.total_steps} steps."
        )
    elif s.kind == "exponential_decay":
        drops = max(n - s.burnin_steps, 0) / max(s.decay_steps, 1)
        why = (
            f"exponential decay_steps {s.decay_steps} (factor {s.decay_factor:.3g}) decays "
            f"{drops:.2g} times within num_steps {n}"
        )
        fix = (
            f"In {_where(pipeline_path)} lower {s.proto_path} decay_steps so the rate decays within "
            f"num_steps {n} (decay_steps: {max(n // 4, 1)} decays 4 times), or lower decay_factor."
        )
    else:
        later = [b for b in s.boundaries if b > n]
        why = f"the manual schedule's lower rates start at steps {later}, after num_steps {n}"
        fix = (
            f"In {_where(pipeline_path)} move the {s.proto_path} schedule steps below num_steps {n} "
            f"(e.g. at {int(n * 0.6)} and {int(n * 0.8)})."
        )
    message = (
        f"the learning rate never decays: {why}, so at the last step the rate is {_sig(plan.end)} "
        f"({pct}% of its peak {_sig(plan.peak)}); the low-rate end of training that refines the weights "
        "never happens"
    )
    return message, fix


def _ends_early_text(plan: _Plan, pipeline_path: str | None) -> tuple[str, str]:
    s, n = plan.schedule, plan.num_steps
    start = plan.stopped_from or 0
    wasted = f"steps {start}-{n} ({100 * plan.wasted_steps / max(n, 1):.0f}% of training)"
    if s.kind == "cosine_decay":
        why = (
            f"cosine total_steps {s.total_steps} < num_steps {n}: the API's cosine_decay_with_warmup "
            f"returns 0.0 after total_steps"
        )
        fix = (
            f"In {_where(pipeline_path)} set {s.proto_path} total_steps: {n} (= train_config.num_steps), "
            f"or lower num_steps to {s.total_steps}."
        )
    elif s.kind == "exponential_decay":
        why = (
            f"exponential decay_steps {s.decay_steps} with factor {s.decay_factor:.3g} and "
            f"min_learning_rate {s.min_rate:.3g}"
        )
        fix = (
            f"In {_where(pipeline_path)} raise {s.proto_path} decay_steps (or decay_factor), or set "
            f"min_learning_rate (e.g. {_sig(s.rate / 100)}, 1% of the initial rate)."
        )
    else:
        why = "the manual schedule's last rates"
        fix = f"In {_where(pipeline_path)} raise the last rates of {s.proto_path} or move its steps later."
    message = (
        f"the learning-rate schedule ends before training does: {why}; the rate is at most "
        f"{ENDED_FRACTION:.1%} of its peak {_sig(plan.peak)} for {wasted}, which barely change the weights"
    )
    return message, fix


def _warmup_text(plan: _Plan, pipeline_path: str | None) -> tuple[str, str]:
    s, n = plan.schedule, plan.num_steps
    length = s.warmup_length()
    name = "warmup_steps" if s.kind == "cosine_decay" else "the first schedule step (warmup: true)"
    message = (
        f"the warm-up never ends: {name} {length} >= num_steps {n}, so the rate climbs for the whole run "
        f"and ends at {_sig(plan.end)} ({_percent(plan.end, s.rate)}% of the base rate {_sig(s.rate)})"
    )
    fix = (
        f"In {_where(pipeline_path)} set {s.proto_path} "
        f"{'warmup_steps' if s.kind == 'cosine_decay' else 'first step'} to about a tenth of num_steps "
        f"({max(n // 10, 1)})."
    )
    return message, fix


def schedule_findings(config: Any, pipeline_path: str | None = None) -> list[Finding]:
    """Learning-rate schedule findings from the pipeline alone (static): ``learning_rate_schedule_invalid``,
    ``warmup_exceeds_training``, ``learning_rate_never_decays``, ``learning_rate_ends_early``.

    Silent for a constant rate, for ``num_steps: 0`` (train until stopped) and without a config.

    >>> from tfod_tools.odapi.pipeline import parse_pipeline_text
    >>> cfg = parse_pipeline_text('''train_config { num_steps: 50000 optimizer { adam_optimizer {
    ...   learning_rate { cosine_decay_learning_rate { learning_rate_base: 0.004 total_steps: 25000
    ...   warmup_steps: 100 warmup_learning_rate: 0.0004 } } } } }''')
    >>> f = schedule_findings(cfg, "p.config")[0]
    >>> f.id, f.evidence["rate_at_num_steps"], "total_steps: 50000" in f.fix
    ('learning_rate_ends_early', 0.0, True)
    >>> schedule_findings(None)
    []
    """
    schedule = Schedule.from_config(config)
    num_steps = _num_steps(config)
    if schedule is None or num_steps <= 0:
        return []
    problems = schedule.problems()
    if problems:
        evidence: dict[str, Any] = {
            "num_steps": num_steps,
            "schedule": table(["setting", "value"], schedule.settings()),
        }
        message = "the API refuses this learning-rate schedule: " + "; ".join(problems)
        fix = (
            f"In {_where(pipeline_path)} fix {schedule.proto_path}: total_steps above warmup_steps + "
            "hold_base_rate_steps, warmup_learning_rate at most learning_rate_base, manual schedule steps "
            "positive and increasing."
        )
        return [Finding("learning_rate_schedule_invalid", "error", message, evidence, fix)]
    plan = _Plan.of(schedule, num_steps)
    if schedule.warmup_length() >= num_steps:
        message, fix = _warmup_text(plan, pipeline_path)
        return [Finding("warmup_exceeds_training", "warning", message, plan.evidence(), fix)]
    if plan.never_decays:
        message, fix = _never_decays_text(plan, pipeline_path)
        return [Finding("learning_rate_never_decays", "warning", message, plan.evidence(), fix)]
    if plan.ends_early:
        message, fix = _ends_early_text(plan, pipeline_path)
        return [Finding("learning_rate_ends_early", "warning", message, plan.evidence(), fix)]
    return []
