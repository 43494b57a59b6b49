"""Repeat-factor sampling and oversampling plans."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfod_tools.data.balance.plan import NEGATIVE, make_plan, rarest_class
from tfod_tools.errors import TfodError

_images = st.lists(st.sets(st.integers(1, 5), max_size=3), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(_images, st.floats(0.01, 2.0), st.integers(0, 2**31))
def test_repeat_factor_follows_the_formula(images: list[set[int]], t: float, seed: int) -> None:
    plan = make_plan(images, strategy="repeat-factor", threshold=t, seed=seed)
    n = len(images)
    for c, f in plan.class_fraction.items():
        assert f == sum(c in s for s in images) / n
        assert plan.class_repeat_factor[c] == max(1.0, math.sqrt(t / f))
    for classes, repeats in zip(images, plan.repeats, strict=True):
        r = max((plan.class_repeat_factor[c] for c in classes), default=1.0)
        assert repeats in (math.floor(r), math.ceil(r))
        assert repeats >= 1
        if not classes:
            assert repeats == 1
    assert plan.total == sum(plan.repeats) and plan.copies == plan.total - n
    assert make_plan(images, strategy="repeat-factor", threshold=t, seed=seed) == plan


def test_stochastic_rounding_is_unbiased_and_seeded() -> None:
    # 100 of 2000 images have class 2: f = 0.05, r = sqrt(0.1125 / 0.05) = 1.5; class 1: r = 1.
    images = [{1}] * 1900 + [{2}] * 100
    plan = make_plan(images, strategy="repeat-factor", threshold=0.1125, seed=0)
    assert plan.class_repeat_factor[2] == pytest.approx(1.5)
    rare = [r for s, r in zip(images, plan.repeats, strict=True) if 2 in s]
    assert set(rare) == {1, 2}
    assert abs(sum(rare) / len(rare) - 1.5) < 0.15  # expected value 1.5, 100 draws
    other = make_plan(images, strategy="repeat-factor", threshold=0.1125, seed=1)
    assert other.repeats != plan.repeats


@settings(max_examples=60, deadline=None)
@given(_images, st.integers(0, 2**31))
def test_oversample_brings_every_group_to_the_largest(images: list[set[int]], seed: int) -> None:
    plan = make_plan(images, strategy="oversample", seed=seed)
    counts = {c: sum(c in s for s in images) for s in images for c in s}
    groups: dict[str, int] = {}
    for s in images:
        key = rarest_class(s, counts)
        groups[key] = groups.get(key, 0) + 1
    target = max(groups.values())
    assert plan.group_totals() == {k: target for k in sorted(groups)}
    for key, r in zip(plan.keys, plan.repeats, strict=True):
        assert r in (target // groups[key], target // groups[key] + 1)
    assert (NEGATIVE in plan.keys) == any(not s for s in images)


def test_rarest_class_breaks_ties_by_id() -> None:
    assert rarest_class({3, 2}, {2: 5, 3: 5}) == "2"
    assert rarest_class({3, 2}, {2: 6, 3: 5}) == "3"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "smote"}, "unknown strategy"),
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": float("nan")}, "threshold"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(TfodError, match=message):
        make_plan([{1}], **kwargs)  # type: ignore[arg-type]


def test_no_copies_is_explained_only_when_the_plan_adds_nothing() -> None:
    names = {1: "a", 2: "b"}
    rare = make_plan([{1}] * 19 + [{2}], strategy="repeat-factor", threshold=0.3)
    assert rare.copies > 0 and rare.no_copies(names) is None
    mild = make_plan([{1}] * 6 + [{2}] * 4, strategy="repeat-factor", threshold=0.3)
    why = mild.no_copies(names)
    assert why is not None and why["class_fraction"] == {"a": 0.6, "b": 0.4}
    assert why["rarest"] == "b" and why["options"] == ["--threshold 0.6", "--strategy oversample"]
    assert make_plan([{1}] * 6 + [{2}] * 4, threshold=0.6).copies > 0  # the advice adds copies
    # b's r = sqrt(0.5 / (29/59)) = 1.0086 and no copy drawn (0.25 expected): the text says rounding
    near = make_plan([{1}] * 30 + [{2}] * 29, strategy="repeat-factor", threshold=0.5, seed=0)
    assert near.copies == 0 and near.class_repeat_factor[2] > 1.0
    near_why = near.no_copies(names)
    assert (
        near_why is not None
        and "rounding drew no copy" in near_why["reason"]
        and "b 1.009" in near_why["reason"]
    )
    equal = make_plan([{1}, {2}], strategy="repeat-factor", threshold=0.3).no_copies(names)
    assert equal is not None and equal["options"] == [] and equal["rarest"] is None
    balanced = make_plan([{1}, {2}, set()], strategy="oversample").no_copies(names)
    assert balanced is not None and "already has as many images" in balanced["reason"]
    nothing = make_plan([set(), set()], strategy="repeat-factor").no_copies(names)
    assert nothing is not None and nothing["reason"].startswith("no image has a box")
