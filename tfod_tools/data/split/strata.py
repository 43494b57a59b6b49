"""Iterative stratification of whole groups into splits (after Sechidis, Tsoumakas and Vlahavas, 2011).

Each :class:`Group` (a patient, a study, a site, or one image when nothing groups them) carries its
number of images and, per label, how many of its images have that label; a label is a class, or the
``negative`` stratum of images without boxes. Groups are never cut: a group lands in one split.

The algorithm, in the spirit of the paper's Algorithm 1 but over groups weighted by their images:

1. Each split ``j`` wants ``fraction_j * total`` images, and of each label ``l`` ``fraction_j * n_l``
   of the images that have it.
2. While groups are left, take the label with the fewest images left among unassigned groups (the
   most constrained one; ties by name), and place every unassigned group that has it, the largest
   first (ties in a seeded random order): each goes to the split that still wants the most of that
   label; ties by the most images still wanted, then seeded at random. What a group brings is taken
   off every label's and the images' wants of its split.

Large groups go first because they are the hardest to fit; the small ones then even out what they
left. With large groups this greedy pass can leave a small split's class mix off, so :func:`refine`
then moves single groups, or swaps pairs of groups, between splits while that lowers
``sum_j TVD_j + sum_j |images_j - target_j| / target_j`` (a group is still never cut, and no split
is emptied). The result depends only on the groups, the fractions and the seed.

>>> groups = [Group(f"g{i}", 1, {"cat" if i % 4 else "negative": 1}) for i in range(8)]
>>> assignment = stratify(groups, [0.5, 0.5], seed=0)
>>> sorted(assignment.count(j) for j in (0, 1))
[4, 4]
>>> sorted({assignment[0], assignment[4]})  # the two negatives go to different splits
[0, 1]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Group", "refine", "stratify", "total_variation"]

_EPS = 1e-9  # wants within this are equal (they are sums of float fractions)


@dataclass(frozen=True)
class Group:
    """Images that must stay together: a key, their number, and images per label."""

    key: str
    images: int
    labels: Mapping[str, int] = field(default_factory=dict)


def _pick(candidates: list[int], score: Sequence[float]) -> list[int]:
    """The candidates whose ``score`` is the highest (within :data:`_EPS`)."""
    best = max(score[j] for j in candidates)
    return [j for j in candidates if score[j] >= best - _EPS]


def stratify(groups: Sequence[Group], fractions: Sequence[float], *, seed: int = 0) -> list[int]:
    """The split index of each group (see the module doc); ``fractions`` sum to 1.

    >>> g = [Group("a", 3, {"x": 3}), Group("b", 1, {"x": 1}), Group("c", 1, {"y": 1})]
    >>> stratify(g, [0.6, 0.4], seed=1)
    [0, 1, 1]
    """
    k = len(fractions)
    total = sum(g.images for g in groups)
    labels = sorted({name for g in groups for name, n in g.labels.items() if n > 0})
    label_total = {name: sum(g.labels.get(name, 0) for g in groups) for name in labels}
    want_images = [f * total for f in fractions]
    want = {name: [f * label_total[name] for f in fractions] for name in labels}
    left = dict(label_total)
    rng = np.random.default_rng(seed)
    order = [int(i) for i in rng.permutation(len(groups))]
    assignment = [-1] * len(groups)
    members = {name: [i for i in order if groups[i].labels.get(name, 0) > 0] for name in labels}
    unassigned = len(groups)
    while unassigned:
        pending = [name for name in labels if left[name] > 0]
        if not pending:  # groups without any label (no images): spread by the images wanted
            pending_groups = [i for i in order if assignment[i] < 0]
            for i in pending_groups:
                assignment[i] = _choose(list(range(k)), want_images, want_images, rng)
            break
        label = min(pending, key=lambda name: (left[name], name))
        todo = sorted((i for i in members[label] if assignment[i] < 0), key=lambda i: -groups[i].images)
        for i in todo:
            group = groups[i]
            j = _choose(list(range(k)), want[label], want_images, rng)
            assignment[i] = j
            unassigned -= 1
            want_images[j] -= group.images
            for name, n in group.labels.items():
                if n > 0:
                    want[name][j] -= n
                    left[name] -= n
    return refine(groups, assignment, fractions, seed=seed)


def _objective(counts: np.ndarray, sizes: np.ndarray, whole: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per candidate: TVD of each split's label counts from ``whole`` plus its relative size error.

    ``counts``: ``(..., L)`` label counts, ``sizes``: ``(...)`` images, ``targets``: broadcastable.
    """
    totals = counts.sum(axis=-1, keepdims=True)
    dist = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    tvd = 0.5 * np.abs(dist - whole).sum(axis=-1)
    result: np.ndarray = tvd + np.abs(sizes - targets) / targets
    return result


def refine(
    groups: Sequence[Group],
    assignment: Sequence[int],
    fractions: Sequence[float],
    *,
    seed: int = 0,
    rounds: int = 20,
    candidates: int = 256,
    visits: int = 4_000,
) -> list[int]:
    """Improve ``assignment`` by moving or swapping whole groups (see the module doc).

    Each round visits the groups in a seeded order; for a group it tries moving it to each other
    split and swapping it with up to ``candidates`` groups there (a seeded sample), and applies
    the best change that lowers the objective (by more than 1e-9). Stops after a round without a
    change, after ``rounds`` rounds, or after ``visits`` group visits in all (bounding the time on
    large sets, where the greedy pass alone is already close: thousands of small groups).

    >>> g = [Group(key, 1, {label: 1}) for key, label in zip("abcd", "xxyy")]
    >>> refine(g, [0, 0, 1, 1], [0.5, 0.5])
    [1, 0, 1, 0]
    """
    labels = sorted({name for g in groups for name, n in g.labels.items() if n > 0})
    x = np.array([[g.labels.get(name, 0) for name in labels] for g in groups], dtype=np.float64)
    x = x.reshape(len(groups), len(labels))
    size = np.array([g.images for g in groups], dtype=np.float64)
    k = len(fractions)
    where = np.array(assignment, dtype=np.int64)
    counts = np.stack([x[where == j].sum(axis=0) for j in range(k)])
    sizes = np.array([size[where == j].sum() for j in range(k)])
    whole = x.sum(axis=0) / max(x.sum(), 1.0)
    targets = np.array(fractions, dtype=np.float64) * size.sum()
    rng = np.random.default_rng([seed, 1])
    for _ in range(rounds):
        changed = False
        order = rng.permutation(len(groups))[: max(visits, 0)]
        visits -= len(order)
        for g in order:
            a = int(where[g])
            base = _objective(counts, sizes, whole, targets)
            best: tuple[float, int, int] = (-1e-9, -1, -1)  # (gain, split, partner or -1)
            for b in range(k):
                if b == a:
                    continue
                if len(groups) > 4 * candidates:  # large set: sample partners, O(candidates) not O(groups)
                    draw = rng.integers(0, len(groups), size=candidates * k)
                    pool = np.unique(draw[where[draw] == b])[:candidates]
                else:
                    pool = np.flatnonzero(where == b)
                    if len(pool) > candidates:
                        pool = np.sort(rng.choice(pool, candidates, replace=False))
                # row 0: move g to b; rows 1..: swap g with each partner h of b
                dx = np.vstack([np.zeros((1, x.shape[1])), x[pool]]) - x[g]
                ds = np.concatenate([[0.0], size[pool]]) - size[g]
                new_a = _objective(counts[a] + dx, sizes[a] + ds, whole, targets[a])
                new_b = _objective(counts[b] - dx, sizes[b] - ds, whole, targets[b])
                gain = new_a + new_b - base[a] - base[b]
                gain[(sizes[a] + ds <= 0) | (sizes[b] - ds <= 0)] = np.inf  # never empty a split
                r = int(np.argmin(gain))
                if gain[r] < best[0]:
                    best = (float(gain[r]), b, -1 if r == 0 else int(pool[r - 1]))
            if best[1] < 0:
                continue
            _, b, h = best
            for member, src, dst in ((g, a, b), *(((h, b, a),) if h >= 0 else ())):
                where[member] = dst
                counts[src] -= x[member]
                counts[dst] += x[member]
                sizes[src] -= size[member]
                sizes[dst] += size[member]
            changed = True
        if not changed or visits <= 0:
            break
    return [int(v) for v in where]


def _choose(
    splits: list[int], label_want: Sequence[float], image_want: Sequence[float], rng: np.random.Generator
) -> int:
    """The split wanting the label most; ties: most images wanted; then a seeded draw."""
    tied = _pick(_pick(splits, label_want), image_want)
    return tied[0] if len(tied) == 1 else tied[int(rng.integers(len(tied)))]


def total_variation(counts: Mapping[str, int], reference: Mapping[str, int]) -> float:
    """Total variation distance between two label distributions given as counts (0 when one is empty).

    ``0.5 * sum_l |p(l) - q(l)|`` with ``p``, ``q`` the counts normalised to sum 1.

    >>> total_variation({"a": 1, "b": 1}, {"a": 3, "b": 1})
    0.25
    >>> total_variation({"a": 2}, {"a": 5})
    0.0
    """
    p_sum, q_sum = sum(counts.values()), sum(reference.values())
    if p_sum == 0 or q_sum == 0:
        return 0.0
    names = sorted(set(counts) | set(reference))
    return 0.5 * sum(abs(counts.get(n, 0) / p_sum - reference.get(n, 0) / q_sum) for n in names)
