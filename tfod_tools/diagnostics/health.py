"""Training health: when a run's loss is non-finite or has diverged. One rule, two readers.

``tfod train`` applies it live to the losses ``model_main_tf2`` logs every 100 steps (and stops the
run); ``tfod diagnose`` applies it afterwards to the ``Loss/*`` scalars of the train event files, of
any run, stock ``model_main_tf2`` included. Both go through :class:`LossMonitor`, so the two can
never disagree about the step or the term.

The rule, per logged step (the terms are the ``Loss/*`` values: ``Loss/localization_loss``,
``Loss/classification_loss``, ``Loss/regularization_loss``, ``Loss/total_loss``, ...):

- **non-finite** (``loss_nan``): any term is NaN or +-Inf. The term named is the first component
  that is non-finite (the total is named only when every component is finite), since NaN in one
  term makes the total NaN too.
- **divergence** (``loss_divergence``): the total loss is :data:`DIVERGENCE_FACTOR` (1000x, three
  orders of magnitude) above the lowest total loss logged before it, or above
  :data:`IMPLAUSIBLE_LOSS` (1e4) at any step. A working TF OD API detector's total loss lies
  between about 0.05 and 20 (focal / softmax classification + localization + L2 regularisation),
  so 1e4 is never reached by a healthy run, while a learning rate orders of magnitude too high
  puts it there within the first 100 steps (before a "growth" could be seen). The term named is
  the one that grew most against its own lowest value (at the first logged step, the largest one).

>>> m = LossMonitor()
>>> m.update(100, {"Loss/total_loss": 1.2, "Loss/localization_loss": 0.4})
>>> m.update(200, {"Loss/total_loss": 0.9, "Loss/localization_loss": 0.3})
>>> p = m.update(300, {"Loss/total_loss": 2100.0, "Loss/localization_loss": 2000.0})
>>> p.kind, p.step, p.term, round(p.ratio)
('loss_divergence', 300, 'Loss/localization_loss', 6667)
>>> p = LossMonitor().update(100, {"Loss/total_loss": float("nan"),
...                                "Loss/classification_loss": float("nan"),
...                                "Loss/localization_loss": 0.5})
>>> p.kind, p.term, p.describe()
('loss_nan', 'Loss/classification_loss', 'loss is NaN at step 100 (Loss/classification_loss)')
>>> p = LossMonitor().update(100, {"Loss/total_loss": 2.6e9, "Loss/regularization_loss": 2.6e9,
...                                "Loss/localization_loss": 5e5})
>>> p.term, p.describe().split(",")[0]
('Loss/regularization_loss', 'loss diverged at step 100: Loss/regularization_loss 2.6e+09')
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from tfod_tools.odapi.trainlog import LOSS_PREFIX, TOTAL_LOSS

__all__ = [
    "DIVERGENCE_FACTOR",
    "IMPLAUSIBLE_LOSS",
    "LIKELY_CAUSES",
    "TOTAL_LOSS",
    "LossMonitor",
    "LossProblem",
    "first_loss_problem",
    "is_loss_tag",
]

DIVERGENCE_FACTOR = 1000.0
"""The total loss has diverged when it is this many times its lowest logged value so far."""

IMPLAUSIBLE_LOSS = 1e4
"""A total loss above this has diverged whatever came before (no healthy detector gets there)."""

_FLOOR = 1e-6  # lowest values below this count as this, so a loss of 0 cannot make every ratio infinite

LossKind = Literal["loss_nan", "loss_divergence"]

LIKELY_CAUSES: tuple[tuple[str, str], ...] = (
    (
        "the learning rate is too high for this batch size (zoo configs are tuned for batch 64-128 "
        "on 8 TPU cores)",
        "scale learning_rate_base and warmup_learning_rate by your batch / the config's batch (linear "
        "scaling), e.g. 0.08 at batch 128 -> 0.0025 at batch 4; `tfod inspect --pipeline` checks it",
    ),
    (
        "boxes out of range: coordinates outside [0, 1] or ymin > ymax in the records",
        "run `tfod inspect RECORDS --label-map L` and fix the records it flags (box_out_of_range, "
        "box_inverted)",
    ),
    (
        "an empty or degenerate box set: zero-area boxes, or crops/augmentations that remove every box",
        "drop zero-area boxes (`tfod inspect` flags box_degenerate) and check data_augmentation_options "
        "such as random_crop_image with a high min_object_covered",
    ),
)
"""The usual causes of a NaN or diverging detection loss, each with its fix (shown by train and diagnose)."""


def is_loss_tag(tag: str) -> bool:
    """Whether a scalar tag or logged key is a loss term (``Loss/...``).

    >>> is_loss_tag("Loss/total_loss"), is_loss_tag("learning_rate")
    (True, False)
    """
    return tag.startswith(LOSS_PREFIX)


@dataclass(frozen=True)
class LossProblem:
    """What went wrong first: ``loss_nan`` or ``loss_divergence``, at which step, in which term."""

    kind: LossKind
    step: int
    term: str
    value: float
    terms: dict[str, float] = field(default_factory=dict)
    """Every loss term logged at ``step``."""
    baseline: float | None = None
    """The lowest total loss logged before ``step`` (divergence only)."""
    baseline_step: int | None = None
    last_good_step: int | None = None
    """The last logged step whose losses were all finite and not diverged."""

    @property
    def ratio(self) -> float | None:
        """How many times the named term grew against its own lowest value (divergence only)."""
        return None if self.baseline is None else self.value / max(self.baseline, _FLOOR)

    def describe(self) -> str:
        """One line: what, where, which term.

        >>> LossProblem("loss_divergence", 200, "Loss/total_loss", 8.8e8, baseline=1.1,
        ...             baseline_step=100).describe()
        'loss diverged at step 200: Loss/total_loss 8.8e+08, 8e+08x its lowest value 1.1 (step 100)'
        """
        if self.kind == "loss_nan":
            what = "NaN" if math.isnan(self.value) else "infinite"
            return f"loss is {what} at step {self.step} ({self.term})"
        text = f"loss diverged at step {self.step}: {self.term} {self.value:.3g}"
        if self.baseline is not None and self.ratio is not None and self.ratio >= DIVERGENCE_FACTOR:
            text += f", {self.ratio:.0e}x its lowest value {self.baseline:.3g} (step {self.baseline_step})"
        else:
            text += f", above {IMPLAUSIBLE_LOSS:g} (no healthy detector's loss gets there)"
        return text

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (non-finite values as strings, ``"nan"`` / ``"inf"``)."""
        return {
            "kind": self.kind,
            "step": self.step,
            "term": self.term,
            "value": _plain(self.value),
            "terms": {k: _plain(v) for k, v in self.terms.items()},
            "baseline": self.baseline,
            "baseline_step": self.baseline_step,
            "last_good_step": self.last_good_step,
            "message": self.describe(),
        }


def _plain(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


class LossMonitor:
    """Feed the loss terms of each logged step in order; :meth:`update` returns the first problem."""

    def __init__(self, factor: float = DIVERGENCE_FACTOR, ceiling: float = IMPLAUSIBLE_LOSS) -> None:
        self.factor = factor
        self.ceiling = ceiling
        self.lowest: dict[str, tuple[float, int]] = {}
        self.last_good_step: int | None = None
        self.problem: LossProblem | None = None

    def update(self, step: int, losses: Mapping[str, float]) -> LossProblem | None:
        """Check one step's losses (non-loss keys are ignored); the problem once one is found."""
        if self.problem is not None:
            return self.problem
        terms = {k: float(v) for k, v in losses.items() if is_loss_tag(k)}
        if not terms:
            return None
        bad = [k for k, v in terms.items() if not math.isfinite(v)]
        if bad:
            components = [k for k in bad if k != TOTAL_LOSS]
            term = components[0] if components else bad[0]
            self.problem = LossProblem(
                "loss_nan", step, term, terms[term], terms, last_good_step=self.last_good_step
            )
            return self.problem
        total_key = TOTAL_LOSS if TOTAL_LOSS in terms else max(terms, key=lambda k: terms[k])
        total = terms[total_key]
        before = self.lowest.get(total_key)
        grew = before is not None and total >= self.factor * max(before[0], _FLOOR)
        if grew or total > self.ceiling:
            self.problem = self._divergence(step, terms, total_key)
            return self.problem
        for key, value in terms.items():
            if key not in self.lowest or value < self.lowest[key][0]:
                self.lowest[key] = (value, step)
        self.last_good_step = step
        return None

    def _divergence(self, step: int, terms: dict[str, float], total_key: str) -> LossProblem:
        def growth(key: str) -> float:
            low = self.lowest.get(key)
            return terms[key] / max(low[0], _FLOOR) if low is not None else 0.0

        components = [k for k in terms if k != total_key and k in self.lowest]
        term = max(components, key=growth) if components else total_key
        if term != total_key and growth(term) < 1.0:
            term = total_key
        if not components:  # the first logged step: no history, name the largest component
            others = [k for k in terms if k != total_key]
            term = max(others, key=lambda k: terms[k]) if others else total_key
        low = self.lowest.get(term)
        return LossProblem(
            "loss_divergence",
            step,
            term,
            terms[term],
            terms,
            baseline=None if low is None else low[0],
            baseline_step=None if low is None else low[1],
            last_good_step=self.last_good_step,
        )


def first_loss_problem(series: Mapping[str, Sequence[tuple[int, float]]]) -> LossProblem | None:
    """The first problem in ``{tag: [(step, value), ...]}`` (a train run's scalars), else None.

    Steps are merged across tags; non-loss tags are ignored.

    >>> first_loss_problem({"Loss/total_loss": [(100, 1.0), (200, float("inf"))],
    ...                     "learning_rate": [(100, 0.1), (200, 0.1)]}).describe()
    'loss is infinite at step 200 (Loss/total_loss)'
    >>> first_loss_problem({"Loss/total_loss": [(100, 1.0), (200, 0.8)]}) is None
    True
    """
    by_step: dict[int, dict[str, float]] = {}
    for tag, points in series.items():
        if is_loss_tag(tag):
            for step, value in points:
                by_step.setdefault(int(step), {})[tag] = float(value)
    monitor = LossMonitor()
    for step in sorted(by_step):
        problem = monitor.update(step, by_step[step])
        if problem is not None:
            return problem
    return None


def format_causes(causes: Iterable[tuple[str, str]] = LIKELY_CAUSES) -> list[str]:
    """``"cause: fix"`` lines for a message.

    >>> format_causes([("lr too high", "lower it")])
    ['lr too high -> lower it']
    """
    return [f"{cause} -> {fix}" for cause, fix in causes]
