"""A pure mirror of the TF OD API's learning-rate schedules (``optimizer.proto``'s ``LearningRate``,
``object_detection/builders/optimizer_builder.py`` and ``object_detection/utils/learning_schedules.py``):
:class:`Schedule` reads a schedule from ``pipeline.config`` as plain values, :func:`learning_rate` gives
its rate at a step, in float64 and without TensorFlow (a test checks it against the API's own).

The schedule findings (:mod:`tfod_tools.diagnostics.findings.schedule`; the logged-rate ones in
:mod:`tfod_tools.diagnostics.findings.training`) and the learning-rate vs batch
size check (:mod:`tfod_tools.diagnostics.findings.batch_size`) read the config through it.

>>> from tfod_tools.odapi.pipeline import parse_pipeline_text
>>> cfg = parse_pipeline_text('''train_config { num_steps: 4000 optimizer { momentum_optimizer {
...   learning_rate { cosine_decay_learning_rate { learning_rate_base: 0.08 total_steps: 50000
...   warmup_steps: 0 } } } } }''')
>>> s = Schedule.from_config(cfg)
>>> s.kind, s.optimizer, s.total_steps
('cosine_decay', 'momentum_optimizer', 50000)
>>> round(learning_rate(s, 4000), 5), learning_rate(s, 50001)
(0.07874, 0.0)
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Schedule", "learning_rate"]

Kind = Literal["constant", "exponential_decay", "manual_step", "cosine_decay"]
_PROTO_KIND: dict[str, Kind] = {
    "constant_learning_rate": "constant",
    "exponential_decay_learning_rate": "exponential_decay",
    "manual_step_learning_rate": "manual_step",
    "cosine_decay_learning_rate": "cosine_decay",
}


@dataclass(frozen=True)
class Schedule:
    """A ``LearningRate`` message of ``optimizer.proto`` as plain values (one field set per kind).

    ``rate`` is ``learning_rate`` (constant), ``initial_learning_rate`` (exponential decay, manual
    step) or ``learning_rate_base`` (cosine decay).

    >>> Schedule("manual_step", 0.1, boundaries=(100,), rates=(0.01,)).is_decaying()
    True
    >>> Schedule("constant", 0.1).is_decaying()
    False
    """

    kind: Kind
    rate: float
    optimizer: str = ""
    # cosine_decay
    total_steps: int = 0
    warmup_rate: float = 0.0
    warmup_steps: int = 0
    hold_steps: int = 0
    # exponential_decay
    decay_steps: int = 0
    decay_factor: float = 1.0
    staircase: bool = True
    burnin_rate: float = 0.0
    burnin_steps: int = 0
    min_rate: float = 0.0
    # manual_step: the rate after each boundary; warmup interpolates up to the first boundary
    boundaries: tuple[int, ...] = ()
    rates: tuple[float, ...] = ()
    warmup: bool = False

    @classmethod
    def from_config(cls, config: Any) -> Schedule | None:
        """The schedule of ``train_config.optimizer`` (None without an optimizer or a schedule)."""
        if config is None or not config.HasField("train_config"):
            return None
        optimizer = config.train_config.optimizer
        name = optimizer.WhichOneof("optimizer")
        if name is None:
            return None
        message = getattr(optimizer, name).learning_rate
        field = message.WhichOneof("learning_rate")
        if field not in _PROTO_KIND:
            return None
        kind = _PROTO_KIND[field]
        m = getattr(message, field)
        if kind == "constant":
            return cls(kind, _f32(m.learning_rate), name)
        if kind == "exponential_decay":
            return cls(
                kind,
                _f32(m.initial_learning_rate),
                name,
                decay_steps=int(m.decay_steps),
                decay_factor=_f32(m.decay_factor),
                staircase=bool(m.staircase),
                burnin_rate=_f32(m.burnin_learning_rate),
                burnin_steps=int(m.burnin_steps),
                min_rate=_f32(m.min_learning_rate),
            )
        if kind == "manual_step":
            return cls(
                kind,
                _f32(m.initial_learning_rate),
                name,
                boundaries=tuple(int(x.step) for x in m.schedule),
                rates=tuple(_f32(x.learning_rate) for x in m.schedule),
                warmup=bool(m.warmup),
            )
        return cls(
            kind,
            _f32(m.learning_rate_base),
            name,
            total_steps=int(m.total_steps),
            warmup_rate=_f32(m.warmup_learning_rate),
            warmup_steps=int(m.warmup_steps),
            hold_steps=int(m.hold_base_rate_steps),
        )

    @property
    def proto_path(self) -> str:
        """Where the schedule sits in ``pipeline.config``.

        >>> Schedule("cosine_decay", 0.1, "adam_optimizer").proto_path
        'train_config.optimizer.adam_optimizer.learning_rate.cosine_decay_learning_rate'
        """
        field = next(k for k, v in _PROTO_KIND.items() if v == self.kind)
        return f"train_config.optimizer.{self.optimizer or '<optimizer>'}.learning_rate.{field}"

    def is_decaying(self) -> bool:
        """Whether the rate is meant to fall (cosine; exponential with a factor below 1; a manual
        schedule with a rate below an earlier one)."""
        if self.kind == "cosine_decay":
            return True
        if self.kind == "exponential_decay":
            return self.decay_factor < 1.0 and self.decay_steps > 0
        if self.kind == "manual_step":
            sequence = (self.rate, *self.rates)
            return any(r < max(sequence[:k]) for k, r in enumerate(sequence) if k)
        return False

    def warmup_length(self) -> int:
        """Steps before the warm-up reaches the base rate (0 without a warm-up).

        >>> Schedule("cosine_decay", 0.1, total_steps=1000, warmup_steps=100).warmup_length()
        100
        """
        if self.kind == "cosine_decay":
            return self.warmup_steps
        if self.kind == "manual_step" and self.warmup and self.boundaries:
            return self.boundaries[0]
        return 0

    def breakpoints(self) -> list[int]:
        """Steps where the formula changes piece (the rate is monotone between them)."""
        if self.kind == "cosine_decay":
            return [self.warmup_steps, self.warmup_steps + self.hold_steps, self.total_steps]
        if self.kind == "exponential_decay":
            return [self.burnin_steps]
        if self.kind == "manual_step":
            return list(self.boundaries)
        return []

    def problems(self) -> list[str]:
        """Why the API would refuse this schedule (or produce NaN), one line each; empty when fine.

        >>> Schedule("cosine_decay", 0.1, total_steps=100, warmup_steps=500).problems()
        ['cosine total_steps 100 < warmup_steps 500: cosine_decay_with_warmup raises ValueError']
        """
        out: list[str] = []
        if self.kind == "cosine_decay":
            if self.total_steps < self.warmup_steps:
                out.append(
                    f"cosine total_steps {self.total_steps} < warmup_steps {self.warmup_steps}: "
                    "cosine_decay_with_warmup raises ValueError"
                )
            elif self.total_steps == self.warmup_steps + self.hold_steps:
                out.append(
                    f"cosine total_steps {self.total_steps} = warmup_steps + hold_base_rate_steps: the "
                    "cosine divides by zero and the learning rate is NaN at that step"
                )
            if self.warmup_steps > 0 and self.rate < self.warmup_rate:
                out.append(
                    f"warmup_learning_rate {self.warmup_rate:.3g} > learning_rate_base {self.rate:.3g}: "
                    "cosine_decay_with_warmup raises ValueError"
                )
        elif self.kind == "manual_step":
            b = self.boundaries
            if not b:
                out.append(
                    "manual_step_learning_rate has no schedule: the optimizer builder raises ValueError"
                )
            elif b[0] == 0 or any(later <= earlier for earlier, later in itertools.pairwise(b)):
                out.append(
                    f"manual_step_learning_rate steps {list(b)} must be positive and strictly increasing: "
                    "manual_stepping raises ValueError"
                )
        return out

    def settings(self) -> list[list[Any]]:
        """``[name, value]`` rows of the fields that shape the schedule (for evidence)."""
        rows: list[list[Any]] = [["optimizer", self.optimizer], ["schedule", self.kind]]
        if self.kind == "constant":
            rows.append(["learning_rate", _sig(self.rate)])
        elif self.kind == "exponential_decay":
            rows += [
                ["initial_learning_rate", _sig(self.rate)],
                ["decay_steps", self.decay_steps],
                ["decay_factor", _sig(self.decay_factor)],
                ["staircase", self.staircase],
                ["burnin_learning_rate", _sig(self.burnin_rate)],
                ["burnin_steps", self.burnin_steps],
                ["min_learning_rate", _sig(self.min_rate)],
            ]
        elif self.kind == "manual_step":
            rows.append(["initial_learning_rate", _sig(self.rate)])
            rows += [
                [f"schedule step {s}", _sig(r)] for s, r in zip(self.boundaries, self.rates, strict=False)
            ]
            rows.append(["warmup", self.warmup])
        else:
            rows += [
                ["learning_rate_base", _sig(self.rate)],
                ["total_steps", self.total_steps],
                ["warmup_learning_rate", _sig(self.warmup_rate)],
                ["warmup_steps", self.warmup_steps],
                ["hold_base_rate_steps", self.hold_steps],
            ]
        return rows


def learning_rate(schedule: Schedule, step: int) -> float:
    """The learning rate the API's schedule gives at ``step`` (``optimizer_builder`` and
    ``learning_schedules``, evaluated in float64 instead of TensorFlow's float32).

    >>> cos = Schedule("cosine_decay", 0.04, total_steps=1000, warmup_rate=0.004, warmup_steps=100)
    >>> [round(learning_rate(cos, s), 6) for s in (0, 50, 100, 550, 1000, 1001)]
    [0.004, 0.022, 0.04, 0.02, 0.0, 0.0]
    >>> exp = Schedule("exponential_decay", 0.1, decay_steps=100, decay_factor=0.5, min_rate=0.02)
    >>> [learning_rate(exp, s) for s in (0, 99, 100, 250, 900)]
    [0.1, 0.1, 0.05, 0.025, 0.02]
    >>> man = Schedule("manual_step", 0.1, boundaries=(10, 20), rates=(0.01, 0.001), warmup=True)
    >>> [round(learning_rate(man, s), 4) for s in (0, 5, 10, 19, 20)]
    [0.1, 0.055, 0.01, 0.01, 0.001]
    """
    if schedule.kind == "constant":
        return schedule.rate
    if schedule.kind == "exponential_decay":
        return _exponential(schedule, step)
    if schedule.kind == "manual_step":
        return _manual(schedule, step)
    return _cosine(schedule, step)


def _exponential(s: Schedule, step: int) -> float:
    burnin = s.burnin_rate if s.burnin_rate != 0 else s.rate
    if step < s.burnin_steps:
        rate = burnin
    else:
        p = (step - s.burnin_steps) / s.decay_steps if s.decay_steps else math.inf
        rate = s.rate * s.decay_factor ** (math.floor(p) if s.staircase else p)
    return max(rate, s.min_rate)


def _manual(s: Schedule, step: int) -> float:
    if not s.boundaries:
        return s.rate
    first = s.boundaries[0]
    if s.warmup and step < first:
        return s.rate + (s.rates[0] - s.rate) / first * max(step, 0)
    rate = s.rate
    for boundary, value in zip(s.boundaries, s.rates, strict=False):
        if step >= boundary:
            rate = value
    return rate


def _cosine(s: Schedule, step: int) -> float:
    if step > s.total_steps:
        return 0.0
    if s.warmup_steps > 0 and step < s.warmup_steps:
        return (s.rate - s.warmup_rate) / s.warmup_steps * step + s.warmup_rate
    start = s.warmup_steps + s.hold_steps
    if s.hold_steps > 0 and step <= start:
        return s.rate
    span = s.total_steps - start
    if span == 0:
        return math.nan
    return 0.5 * s.rate * (1.0 + math.cos(math.pi * (step - start) / span))


def _f32(value: float) -> float:
    """A proto float field as the float it holds (0.004 rather than 0.004000000189989805)."""
    return float(f"{value:.7g}")


def _sig(value: float, digits: int = 4) -> float | str:
    """``value`` rounded to ``digits`` significant digits; non-finite values as ``"nan"``/``"inf"``."""
    if not math.isfinite(value):
        return str(value)
    return float(f"{value:.{digits}g}")
