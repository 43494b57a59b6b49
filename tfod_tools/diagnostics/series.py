"""Pick the runs and tags a diagnosis reads from a model directory's scalars.

``model_main_tf2`` writes ``MODEL_DIR/train`` and ``MODEL_DIR/eval``; ``tfod evaluate`` writes the
same tags into ``eval``. These helpers choose the evaluation run, the headline metric and line up
train and eval values by step.

>>> from tfod_tools.tensorboard.reader import ScalarPoint as P
>>> pts = [P("eval", MAP_TAG, 3000, 0.8, 0), P("eval", MAP_TAG, 4000, 0.837, 0),
...        P("train", LOSS_TAG, 3000, 0.2, 0)]
>>> s = Scalars(pts)
>>> s.eval_run, s.headline_metric()
('eval', 'DetectionBoxes_Precision/mAP')
>>> s.series("eval", MAP_TAG)
[(3000, 0.8), (4000, 0.837)]
>>> s.value_at("train", LOSS_TAG, 3500)
0.2
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

from tfod_tools.metrics.coco import COCO_TAGS
from tfod_tools.odapi.trainlog import TOTAL_LOSS
from tfod_tools.tensorboard.reader import ScalarPoint

MAP_TAG = COCO_TAGS["AP"]
LOSS_TAG = TOTAL_LOSS
HEADLINE_METRICS: tuple[str, ...] = (
    MAP_TAG,
    "DetectionBoxes_Precision/mAP@.50IOU",
    "DetectionMasks_Precision/mAP",
    "PascalBoxes_Precision/mAP@0.5IOU",
    "OpenImagesV2_Precision/mAP@0.5IOU",
)
"""Tags tried, in order, as "the" accuracy of an evaluation (higher is better)."""


@dataclass
class Scalars:
    """Scalars of a model directory indexed by ``(run, tag)``; steps sorted."""

    points: Iterable[ScalarPoint]
    by_key: dict[tuple[str, str], list[tuple[int, float]]] = field(init=False)

    def __post_init__(self) -> None:
        index: dict[tuple[str, str], list[tuple[int, float]]] = {}
        for p in self.points:
            index.setdefault((p.run, p.tag), []).append((p.step, p.value))
        self.by_key = {k: sorted(v) for k, v in sorted(index.items())}

    @property
    def runs(self) -> list[str]:
        """Run names, sorted."""
        return sorted({run for run, _ in self.by_key})

    @property
    def eval_run(self) -> str | None:
        """``eval`` if present, else the first run whose name starts with ``eval``."""
        runs = self.runs
        if "eval" in runs:
            return "eval"
        return next((r for r in runs if r.startswith("eval")), None)

    @property
    def train_run(self) -> str | None:
        """``train`` if present, else the first run whose name starts with ``train``."""
        runs = self.runs
        if "train" in runs:
            return "train"
        return next((r for r in runs if r.startswith("train")), None)

    def tags(self, run: str | None) -> list[str]:
        """Tags of one run, sorted."""
        return [t for r, t in self.by_key if r == run]

    def series(self, run: str | None, tag: str) -> list[tuple[int, float]]:
        """``[(step, value)]`` of one run and tag (empty when absent)."""
        return list(self.by_key.get((run or "", tag), []))

    def headline_metric(self) -> str | None:
        """The first of :data:`HEADLINE_METRICS` the eval run has."""
        tags = set(self.tags(self.eval_run))
        return next((t for t in HEADLINE_METRICS if t in tags), None)

    def value_at(self, run: str | None, tag: str, step: int) -> float | None:
        """The value at ``step``, or the last one logged before it (None when none is)."""
        values = self.series(run, tag)
        steps = [s for s, _ in values]
        k = bisect.bisect_right(steps, step) - 1
        return values[k][1] if k >= 0 else None
