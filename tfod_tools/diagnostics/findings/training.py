"""Learning-rate findings: a schedule that does not fit ``train_config.num_steps``, read from
``pipeline.config`` and from the ``learning_rate`` the train event files of any run (stock
``model_main_tf2`` included) log. The loss findings (``loss_nan``, ``loss_divergence``) are in
:mod:`tfod_tools.diagnostics.findings.loss`.

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

Static (:func:`schedule_findings`, the pipeline alone) and observed (:func:`learning_rate_never_decays`,
:func:`learning_rate_ends_early`, the logged ``learning_rate``) findings share ids, thresholds and
:func:`~tfod_tools.diagnostics.schedule.learning_rate`, a pure mirror of the API's
``object_detection/utils/learning_schedules.py`` (:mod:`tfod_tools.diagnostics.schedule`);
:func:`prefer_observed` keeps one finding per id (the one with the logged curve).

>>> from tfod_tools.odapi.pipeline import parse_pipeline_text
>>> cfg = parse_pipeline_text('''train_config { num_steps: 4000 optimizer { momentum_optimizer {
...   learning_rate { cosine_decay_learning_rate { learning_rate_base: 0.08 total_steps: 50000
...   warmup_steps: 0 } } } } }''')
>>> [(f.id, f.evidence["percent_of_peak"]) for f in schedule_findings(cfg)]
[('learning_rate_never_decays', 98.4)]
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from tfod_tools.diagnostics.findings import finding_rule
from tfod_tools.diagnostics.model import Finding, table
from tfod_tools.diagnostics.schedule import Schedule, _sig, learning_rate
from tfod_tools.diagnostics.series import Scalars

__all__ = [
    "ENDED_FRACTION",
    "LEARNING_RATE_TAG",
    "NEVER_DECAYS_FRACTION",
    "SCHEDULE_IDS",
    "WASTED_FRACTION",
    "learning_rate_ends_early",
    "learning_rate_never_decays",
    "prefer_observed",
    "schedule_findings",
]

LEARNING_RATE_TAG = "learning_rate"
"""The tag ``model_main_tf2`` logs the learning rate under (train run, every 100 steps)."""

NEVER_DECAYS_FRACTION = 0.9
"""A decaying schedule "never decays" when its last rate is at least this fraction of its peak."""

ENDED_FRACTION = 0.001
"""A rate at most this fraction of the peak has effectively stopped training (cosine past total_steps: 0)."""

WASTED_FRACTION = 0.1
"""The schedule ended early when the stopped rate lasts for at least this fraction of the steps."""

SCHEDULE_IDS = ("learning_rate_never_decays", "learning_rate_ends_early")
"""The ids both the static and the observed schedule findings use (see :func:`prefer_observed`)."""

_CURVE_ROWS = 30  # rows of a learning-rate curve table
_MIN_POINTS = 5  # logged rates needed before a run without a pipeline is judged


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


# -- the logged learning rate ------------------------------------------------------------------------


def _logged_rates(scalars: Scalars) -> list[tuple[int, float]]:
    return [(s, v) for s, v in scalars.series(scalars.train_run, LEARNING_RATE_TAG) if math.isfinite(v)]


def _thin(
    points: Sequence[tuple[int, float]], keep: Collection[int], limit: int = _CURVE_ROWS
) -> list[tuple[int, float]]:
    """At most ``limit`` points, evenly spread, always with the first, the last and the steps in ``keep``."""
    if len(points) <= limit:
        return list(points)
    last = len(points) - 1
    index = {round(last * k / (limit - 1)) for k in range(limit)}
    index |= {k for k, (s, _) in enumerate(points) if s in keep}
    return [points[k] for k in sorted(index)]


def _rate_curve(points: Sequence[tuple[int, float]], keep: Collection[int] = ()) -> dict[str, Any]:
    peak = max(v for _, v in points)
    rows = [[s, _sig(v), _percent(v, peak)] for s, v in _thin(points, keep)]
    return table(["step", "learning rate", "% of peak"], rows)


def _observed_stop(points: Sequence[tuple[int, float]]) -> int | None:
    """Index of the first logged point from which every rate is at most ``ENDED_FRACTION`` of the peak."""
    peak = max(v for _, v in points)
    k = len(points)
    while k > 0 and points[k - 1][1] <= ENDED_FRACTION * peak:
        k -= 1
    return k if k < len(points) else None


def _with_curve(found: Finding, points: Sequence[tuple[int, float]], note: str, keep: set[int]) -> Finding:
    evidence = {**found.evidence, "learning_rate_curve": _rate_curve(points, keep)}
    return Finding(found.id, found.severity, found.message + note, evidence, found.fix)


@finding_rule(50, call=lambda fn, d: fn(d.scalars, d.config, d.pipeline_path))
def learning_rate_never_decays(
    scalars: Scalars, config: Any = None, pipeline_path: str | None = None
) -> Finding | None:
    """``learning_rate_never_decays`` from the logged ``learning_rate`` (train run).

    With the pipeline: its schedule decays, the run reached ``num_steps`` (90% of it at least) and
    the last logged rate is still :data:`NEVER_DECAYS_FRACTION` of the peak (warning); when the run
    has not got there yet, the static finding with the curve logged so far. Without the pipeline
    (the schedule unknown): the rate changed during the run (so a schedule is in effect), at least
    5 points are logged and the last is still 90% of the peak: info, since the run may not be over.
    A rate that never changed is a constant schedule, most likely intended: nothing is said.

    >>> from tfod_tools.tensorboard.reader import ScalarPoint as P
    >>> rates = [0.01, 0.02, 0.04, 0.0399, 0.0398, 0.0397]
    >>> s = Scalars([P("train", "learning_rate", 100 * (k + 1), r, 0) for k, r in enumerate(rates)])
    >>> f = learning_rate_never_decays(s)
    >>> f.severity, f.evidence["percent_of_peak"], f.evidence["learning_rate_curve"]["rows"][-1]
    ('info', 99.2, [600, 0.0397, 99.2])
    """
    points = _logged_rates(scalars)
    if len(points) < 2:
        return None
    peak = max(v for _, v in points)
    last_step, last = points[-1]
    schedule = Schedule.from_config(config)
    num_steps = _num_steps(config)
    if schedule is not None and num_steps > 0:
        static = _static(config, pipeline_path, "learning_rate_never_decays")
        finished = last_step >= 0.9 * num_steps
        if static is not None and not finished:
            note = (
                f"; logged so far: step {last_step}, rate {_sig(last)} ({_percent(last, peak)}% of its peak)"
            )
            return _with_curve(static, points, note, {last_step})
        if not (finished and schedule.is_decaying() and last >= NEVER_DECAYS_FRACTION * peak):
            return None
        if static is not None:
            note = f"; logged: {_sig(last)} at step {last_step} ({_percent(last, peak)}% of peak)"
            return _with_curve(static, points, note, {last_step})
        message = (
            f"the learning rate never decayed: {schedule.kind} schedule configured, yet the logged rate at "
            f"step {last_step} is {_sig(last)}, {_percent(last, peak)}% of its peak {_sig(peak)} (the run's "
            "steps or schedule differ from the pipeline's?)"
        )
        fix = (
            f"Check the schedule against the steps trained ({_where(pipeline_path)}, and --num_train_steps "
            "if it was passed to model_main_tf2): the rate should decay within the run."
        )
        evidence = _observed_evidence(points, peak)
        evidence["schedule"] = table(["setting", "value"], schedule.settings())
        return Finding("learning_rate_never_decays", "warning", message, evidence, fix)
    if schedule is not None and not schedule.is_decaying():
        return None
    low = min(v for _, v in points)
    changed = peak - low > 0.01 * peak
    if len(points) < _MIN_POINTS or not changed or last < NEVER_DECAYS_FRACTION * peak:
        return None
    message = (
        f"the learning rate changes during the run (from {_sig(points[0][1])} to a peak of {_sig(peak)}) "
        f"but at the last logged step {last_step} it is still {_sig(last)}, {_percent(last, peak)}% of the "
        "peak: if the run is over, its decay never happened (a cosine total_steps or decay_steps longer "
        "than num_steps?)"
    )
    fix = (
        "Pass --pipeline to check the schedule against num_steps; a decaying schedule should end near 0 "
        "(cosine total_steps = train_config.num_steps)."
    )
    return Finding("learning_rate_never_decays", "info", message, _observed_evidence(points, peak), fix)


def _observed_evidence(points: Sequence[tuple[int, float]], peak: float) -> dict[str, Any]:
    last_step, last = points[-1]
    return {
        "last_step": last_step,
        "last_rate": _sig(last),
        "peak_rate": _sig(peak),
        "percent_of_peak": _percent(last, peak),
        "learning_rate_curve": _rate_curve(points, {last_step}),
    }


def _static(config: Any, pipeline_path: str | None, finding_id: str) -> Finding | None:
    return next((f for f in schedule_findings(config, pipeline_path) if f.id == finding_id), None)


@finding_rule(60, call=lambda fn, d: fn(d.scalars, d.config, d.pipeline_path))
def learning_rate_ends_early(
    scalars: Scalars, config: Any = None, pipeline_path: str | None = None
) -> Finding | None:
    """``learning_rate_ends_early`` from the logged ``learning_rate`` (train run): the rate stayed at
    most :data:`ENDED_FRACTION` of its peak over the last :data:`WASTED_FRACTION` of the logged steps
    (two points at least). A warning with or without the pipeline (a rate of 0 trains nothing,
    whatever was intended); with it, the static finding's evidence and fix come along.

    >>> from tfod_tools.tensorboard.reader import ScalarPoint as P
    >>> rates = [0.04, 0.03, 0.01, 0.0, 0.0, 0.0]
    >>> s = Scalars([P("train", "learning_rate", 100 * (k + 1), r, 0) for k, r in enumerate(rates)])
    >>> f = learning_rate_ends_early(s)
    >>> f.id, f.evidence["stopped_from_step"], f.evidence["wasted_steps"]
    ('learning_rate_ends_early', 400, 200)
    """
    points = _logged_rates(scalars)
    if len(points) < 3:
        return None
    peak = max(v for _, v in points)
    k = _observed_stop(points)
    if peak <= 0 or k is None or k == 0:
        return None
    start, (last_step, _) = points[k][0], points[-1]
    wasted = last_step - start
    if len(points) - k < 2 or wasted < WASTED_FRACTION * last_step:
        return None
    static = _static(config, pipeline_path, "learning_rate_ends_early") if config is not None else None
    note = f"; logged: the rate is {_sig(points[k][1])} from step {start} to {last_step}"
    if static is not None:
        return _with_curve(static, points, note, {start, last_step})
    message = (
        f"the learning rate ran out before training did: it is at most {ENDED_FRACTION:.1%} of its peak "
        f"{_sig(peak)} from step {start} to the last logged step {last_step} "
        f"({100 * wasted / last_step:.0f}% of the run), steps that barely change the weights"
    )
    fix = (
        "Make the schedule as long as the run: cosine total_steps = train_config.num_steps (after "
        "total_steps the API's cosine_decay_with_warmup returns 0), or a larger decay_steps / "
        "min_learning_rate for exponential decay; pass --pipeline to check it."
    )
    evidence = {
        "stopped_from_step": start,
        "last_step": last_step,
        "wasted_steps": wasted,
        "peak_rate": _sig(peak),
        "learning_rate_curve": _rate_curve(points, {start, last_step}),
    }
    schedule = Schedule.from_config(config)
    if schedule is not None:
        evidence["schedule"] = table(["setting", "value"], schedule.settings())
    return Finding("learning_rate_ends_early", "warning", message, evidence, fix)


def prefer_observed(findings: Sequence[Finding]) -> list[Finding]:
    """One finding per :data:`SCHEDULE_IDS` id: where the static (pipeline) and the observed (event
    files) versions both fired, keep the observed one, which carries the static evidence as well.

    >>> a = Finding("learning_rate_never_decays", "warning", "static", {}, "f")
    >>> b = Finding("learning_rate_never_decays", "warning", "seen", {"learning_rate_curve": {}}, "f")
    >>> [f.message for f in prefer_observed([a, Finding("x", "info", "m", {}, "f"), b])]
    ['m', 'seen']
    """
    observed = {f.id for f in findings if f.id in SCHEDULE_IDS and "learning_rate_curve" in f.evidence}
    return [f for f in findings if f.id not in observed or "learning_rate_curve" in f.evidence]
