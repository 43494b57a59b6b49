"""Learning-rate findings from the ``learning_rate`` the train event files of any run (stock
``model_main_tf2`` included) log: a schedule that does not fit the run. The static findings (the
pipeline alone) are in :mod:`tfod_tools.diagnostics.findings.schedule`, the loss findings
(``loss_nan``, ``loss_divergence``) in :mod:`tfod_tools.diagnostics.findings.loss`.

Finding ids (stable; described in :mod:`~tfod_tools.diagnostics.findings.schedule`):
``learning_rate_never_decays`` (:func:`learning_rate_never_decays`) and ``learning_rate_ends_early``
(:func:`learning_rate_ends_early`).

Static (:func:`~tfod_tools.diagnostics.findings.schedule.schedule_findings`) and observed findings
share ids, thresholds and :func:`~tfod_tools.diagnostics.schedule.learning_rate`, a pure mirror of
the API's ``object_detection/utils/learning_schedules.py`` (:mod:`tfod_tools.diagnostics.schedule`);
:func:`prefer_observed` keeps one finding per id (the one with the logged curve).

>>> from tfod_tools.tensorboard.reader import ScalarPoint as P
>>> rates = [0.04, 0.04, 0.04, 0.04, 0.04]
>>> s = Scalars([P("train", LEARNING_RATE_TAG, 100 * (k + 1), r, 0) for k, r in enumerate(rates)])
>>> learning_rate_never_decays(s) is None  # a constant rate: most likely intended
True
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

from tfod_tools.diagnostics.findings import finding_rule
from tfod_tools.diagnostics.findings.schedule import (
    ENDED_FRACTION,
    NEVER_DECAYS_FRACTION,
    WASTED_FRACTION,
    _num_steps,
    _percent,
    _where,
    schedule_findings,
)
from tfod_tools.diagnostics.model import Finding, table
from tfod_tools.diagnostics.schedule import Schedule, _sig
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

SCHEDULE_IDS = ("learning_rate_never_decays", "learning_rate_ends_early")
"""The ids both the static and the observed schedule findings use (see :func:`prefer_observed`)."""

_CURVE_ROWS = 30  # rows of a learning-rate curve table
_MIN_POINTS = 5  # logged rates needed before a run without a pipeline is judged


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
