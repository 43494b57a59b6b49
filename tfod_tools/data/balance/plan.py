"""How many times each image is written: repeat-factor sampling or oversampling.

Both strategies take, per image, the set of class ids it contains (empty for a negative image) and
return an integer repeat count per image (``1`` = the original only; ``k`` = original plus ``k - 1``
augmented copies).

``repeat-factor`` (LVIS, Gupta et al. 2019)
    ``f_c`` is the fraction of images that contain class ``c``; ``r_c = max(1, sqrt(t / f_c))``. An
    image takes the largest ``r_c`` of its classes; a negative image takes 1. The fractional part is
    resolved by **stochastic rounding** as LVIS does per epoch, made deterministic: image ``i`` gets
    ``floor(r) + 1`` when ``u_i < r - floor(r)``, with ``u_i`` drawn from
    ``numpy.random.SeedSequence([seed, 0x52465321, i])``, else ``floor(r)``. The expected count is
    exactly ``r`` and does not depend on any other image or on the worker count.
``oversample``
    Every image is keyed by its rarest class (the one in fewest images; ties: the smaller id) or
    ``negative``. Each group is brought up to the size of the largest group: an image of a group of
    ``n`` images with target ``T`` is written ``T // n`` times, and ``T % n`` of them (chosen by a
    seeded permutation) once more, so each group totals exactly ``T``.

**The default leaves a mildly imbalanced set alone, and says so.** ``repeat-factor`` with ``t = 0.3``
repeats only classes found in fewer than 30 % of the images; a 2:1 set (one class in 32 % of the
images, the other in 67 %) gets no copies. That is deliberate: the point of repeat-factor sampling
is a class the model rarely sees in a batch, and a class in a share ``f`` of the images is in
``1 - (1 - f)^B`` of the batches of ``B`` images: 95 % of the batches of 8 at ``f = 0.32`` (94 % at
the threshold itself), against 34 % at ``f = 0.05``. Copies of a class that is already in almost
every batch add epoch time and near-duplicates to memorise, not signal; LVIS itself uses
``t = 0.001``. When a plan adds nothing, :meth:`Plan.no_copies` (the manifest's
``plan.no_copies``, printed by ``tfod balance``) gives each class's image share, the threshold, and
the options that would add copies: ``--threshold`` at the most common class's share, or
``--strategy oversample``, which always equalises the rarest-class groups.

>>> images = [{1}, {1}, {1}, {2}, set()]
>>> plan = make_plan(images, strategy="oversample", seed=0)
>>> plan.repeats
(1, 1, 1, 3, 3)
>>> plan.group_totals()
{'1': 3, '2': 3, 'negative': 3}
>>> rfs = make_plan(images, strategy="repeat-factor", threshold=0.8, seed=0)
>>> round(rfs.class_repeat_factor[2], 3), rfs.repeats[0], rfs.repeats[4]
(2.0, 1, 1)
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfod_tools.errors import TfodError

__all__ = ["STRATEGIES", "Plan", "make_plan", "rarest_class"]

STRATEGIES: tuple[str, ...] = ("repeat-factor", "oversample")
NEGATIVE = "negative"
_ROUNDING_TAG = 0x52465321  # "RFS!": keeps the rounding stream apart from the augmentation seeds
_OVERSAMPLE_TAG = 0x4F564552  # "OVER"


@dataclass(frozen=True)
class Plan:
    """Repeat counts per image and the statistics they came from."""

    strategy: str
    repeats: tuple[int, ...]
    keys: tuple[str, ...]
    """Per image: the group it belongs to (its rarest class id as text, or ``negative``)."""
    class_fraction: dict[int, float]
    class_repeat_factor: dict[int, float]
    threshold: float | None
    seed: int

    @property
    def total(self) -> int:
        """Number of records written (originals and copies)."""
        return sum(self.repeats)

    @property
    def copies(self) -> int:
        """Number of augmented copies."""
        return self.total - len(self.repeats)

    def group_totals(self) -> dict[str, int]:
        """Planned records per group (rarest class or ``negative``)."""
        totals: dict[str, int] = {}
        for key, r in zip(self.keys, self.repeats, strict=True):
            totals[key] = totals.get(key, 0) + r
        return dict(sorted(totals.items()))

    def no_copies(self, names: Mapping[int, str] | None = None) -> dict[str, Any] | None:
        """Why the plan adds nothing, and the option that would (``None`` when it adds copies).

        ``names`` maps class ids to names for the text (default: the ids). For repeat-factor it gives
        each class's image share against the threshold and a ``--threshold`` that repeats the
        rarest class: the share of the most common class, so the rarest gets
        ``r = sqrt(f_max / f_min)``.

        >>> plan = make_plan([{1}] * 32 + [{2}] * 67 + [set()], strategy="repeat-factor", threshold=0.3)
        >>> why = plan.no_copies({1: "nodule", 2: "opacity"})
        >>> why["class_fraction"], why["threshold"], why["options"]
        ({'nodule': 0.32, 'opacity': 0.67}, 0.3, ['--threshold 0.67', '--strategy oversample'])
        >>> print(why["message"])
        no augmented copies: every class is in at least --threshold 0.3 of the images (nodule 32%, \
opacity 67%), so every repeat factor r = max(1, sqrt(t / f)) is 1. To repeat the rarest class, nodule, \
pass --threshold 0.67 (the share of opacity: nodule gets r = 1.45), or --strategy oversample \
(every rarest-class group brought up to the largest).
        """
        if self.copies:
            return None
        label = {c: (names or {}).get(c, str(c)) for c in self.class_fraction}
        fraction = {label[c]: f for c, f in self.class_fraction.items()}
        shares = ", ".join(f"{name} {f:.0%}" for name, f in fraction.items())
        why: dict[str, Any] = {"class_fraction": fraction, "threshold": self.threshold, "rarest": None}
        if not self.class_fraction:
            reason = "no image has a box, so there is no class to balance"
        elif self.strategy == "oversample":
            reason = f"every rarest-class group already has as many images as the largest ({shares})"
        elif any(r > 1.0 for r in self.class_repeat_factor.values()):
            factors = ", ".join(f"{label[c]} {r:.3f}" for c, r in self.class_repeat_factor.items() if r > 1)
            reason = f"the repeat factors above 1 ({factors}) are so close to 1 that rounding drew no copy"
        else:
            reason = (
                f"every class is in at least --threshold {self.threshold:g} of the images ({shares}), "
                "so every repeat factor r = max(1, sqrt(t / f)) is 1"
            )
        options: list[str] = []
        advice = ""
        if self.strategy == "repeat-factor" and len(set(self.class_fraction.values())) > 1:
            rarest = min(self.class_fraction, key=lambda c: (self.class_fraction[c], c))
            common = max(self.class_fraction, key=lambda c: (self.class_fraction[c], -c))
            f_min, f_max = self.class_fraction[rarest], self.class_fraction[common]
            t = _round_down(f_max) if _round_down(f_max) > f_min else f_max
            options = [f"--threshold {t:g}", "--strategy oversample"]
            why["rarest"] = label[rarest]
            advice = (
                f" To repeat the rarest class, {label[rarest]}, pass --threshold {t:g} (the share of "
                f"{label[common]}: {label[rarest]} gets r = {math.sqrt(t / f_min):.2f}), or --strategy "
                "oversample (every rarest-class group brought up to the largest)."
            )
        return {
            **why,
            "reason": reason,
            "options": options,
            "message": f"no augmented copies: {reason}.{advice}",
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (per-image counts are not included)."""
        return {
            "strategy": self.strategy,
            "threshold": self.threshold,
            "rounding": "stochastic (seeded per image)" if self.strategy == "repeat-factor" else "exact",
            "images": len(self.repeats),
            "records": self.total,
            "copies": self.copies,
            "max_repeats": max(self.repeats, default=0),
            "class_fraction": {str(k): v for k, v in self.class_fraction.items()},
            "class_repeat_factor": {str(k): v for k, v in self.class_repeat_factor.items()},
            "group_totals": self.group_totals(),
        }


def _round_down(x: float) -> float:
    """``x`` rounded down to two significant digits (a threshold to type that does not exceed ``x``).

    >>> _round_down(0.678), _round_down(0.29), _round_down(1.0), _round_down(0.0123)
    (0.67, 0.29, 1.0, 0.012)
    """
    digits = 1 - math.floor(math.log10(x))
    return math.floor(x * 10**digits + 1e-9) / 10**digits


def _fractions(images: Sequence[Collection[int]]) -> tuple[dict[int, int], dict[int, float]]:
    counts: dict[int, int] = {}
    for classes in images:
        for c in set(classes):
            counts[c] = counts.get(c, 0) + 1
    n = max(len(images), 1)
    counts = dict(sorted(counts.items()))
    return counts, {c: k / n for c, k in counts.items()}


def rarest_class(classes: Collection[int], image_counts: dict[int, int]) -> str:
    """The group key of an image: its class in fewest images (ties: smaller id), or ``negative``.

    >>> rarest_class({1, 2}, {1: 10, 2: 3}), rarest_class(set(), {})
    ('2', 'negative')
    """
    if not classes:
        return NEGATIVE
    return str(min(set(classes), key=lambda c: (image_counts[c], c)))


def _stochastic_round(value: float, seed: int, index: int) -> int:
    base = math.floor(value)
    frac = value - base
    if frac <= 0.0:
        return int(base)
    u = np.random.default_rng(np.random.SeedSequence([seed, _ROUNDING_TAG, index])).random()
    return int(base) + int(u < frac)


def make_plan(
    images: Sequence[Collection[int]],
    *,
    strategy: str = "repeat-factor",
    threshold: float = 0.3,
    seed: int = 0,
) -> Plan:
    """Repeat counts for ``images`` (one set of class ids per image) with the given strategy."""
    if strategy not in STRATEGIES:
        raise TfodError(f"unknown strategy {strategy!r}", fix=f"use one of {', '.join(STRATEGIES)}")
    if seed < 0:
        raise TfodError(f"seed must be >= 0, got {seed}")
    image_counts, fraction = _fractions(images)
    keys = tuple(rarest_class(c, image_counts) for c in images)
    if strategy == "repeat-factor":
        if not (threshold > 0.0 and math.isfinite(threshold)):
            raise TfodError(f"threshold must be a positive number, got {threshold}")
        factor = {c: max(1.0, math.sqrt(threshold / f)) for c, f in fraction.items()}
        repeats = tuple(
            _stochastic_round(max((factor[c] for c in classes), default=1.0), seed, i)
            for i, classes in enumerate(images)
        )
        return Plan(strategy, repeats, keys, fraction, factor, threshold, seed)
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    target = max((len(m) for m in groups.values()), default=0)
    counts = [0] * len(images)
    for key, members in sorted(groups.items()):
        base, extra = divmod(target, len(members))
        tag = sum(ord(ch) << (8 * (k % 4)) for k, ch in enumerate(key)) & 0xFFFFFFFF
        order = np.random.default_rng(np.random.SeedSequence([seed, _OVERSAMPLE_TAG, tag])).permutation(
            len(members)
        )
        bonus = {members[int(j)] for j in order[:extra]}
        for i in members:
            counts[i] = base + (1 if i in bonus else 0)
    factor = {int(k): target / len(m) for k, m in sorted(groups.items()) if k != NEGATIVE}
    return Plan(strategy, tuple(counts), keys, fraction, factor, None, seed)
