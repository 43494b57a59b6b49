"""What the demo trains on and for how long: the ``--quick`` and full settings.

The values are chosen so the whole loop fits on two CPU cores (``--quick`` in under 5 minutes, the
full demo in under 15; measured on an idle machine about 4 and 6, see the README) while the synthetic
``xray-like`` set still shows what the toolkit is for: an imbalanced data set (about one nodule box
in 25, so ``tfod diagnose`` reports ``class_imbalance``), negative images, no COCO-large boxes
(``mAP (large) = -1``), and a minority class that the first model misses at the operating threshold
and that ``tfod balance`` brings back.

Why these sizes: the model (``tiny-fpnlite``, trained from scratch) learns the distinctive nodules
from very few examples when it sees each of them often, so a small set trained for many epochs hides
the imbalance (measured: 96 images, 50 epochs, 14 nodules: the minority's AP already at 0.3-0.6 and
balancing within noise). Hundreds of images trained for about a dozen epochs is the regime users are
in, and there a nodule seen a dozen times stays under-confident until it is oversampled.

>>> QUICK.mode, QUICK.steps % 100, FULL.steps > QUICK.steps
('quick', 0, True)
>>> QUICK.export_formats, FULL.export_formats
('saved_model', 'saved_model,tflite')
>>> settings_for(quick=True) is QUICK
True
>>> sorted(QUICK.to_dict())[:3]
['balance_strategy', 'balance_threshold', 'checkpoint_every']
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["FULL", "QUICK", "DemoSettings", "settings_for"]


@dataclass(frozen=True)
class DemoSettings:
    """Everything that decides the demo's results (stored in the workdir to resume safely)."""

    mode: str
    train_images: int
    eval_images: int
    steps: int
    """Training steps per run (a multiple of 100: ``model_main_tf2`` trains in chunks of 100)."""
    checkpoint_every: int
    seed: int
    image_size: int
    class_ratio: str
    """Box weights opacity:nodule of the synthetic training split (label map order)."""
    eval_class_ratio: str
    """Box weights of the eval split: balanced, so the minority class's AP rests on enough boxes."""
    minority_class: str
    min_size: int
    max_size: int
    negative_share: float
    recipe: str
    balance_strategy: str
    balance_threshold: float
    template: str
    """The pipeline template the demo trains (``tfod pipeline --template``)."""
    learning_rate: float
    """Adam's peak learning rate (the base of the template's cosine schedule)."""
    operating_threshold: float
    """The score a deployment would keep detections above: the report counts recall and precision there."""
    export_formats: str
    """What the ``export`` step exports (``tfod export --format``): TFLite float in the full demo only."""
    predict_images: int
    """How many eval images the ``export`` step runs ``tfod predict`` on (annotated copies kept)."""
    fine_tune_kind: str
    """``--fine-tune``: the second data set's synthetic kind (3-class label map: demo/fine_tune.py)."""
    fine_tune_train_images: int
    fine_tune_eval_images: int
    fine_tune_steps: int
    """``--fine-tune``: steps of the fine-tune run (100: ``model_main_tf2`` trains in chunks of 100)."""
    fine_tune_batch_size: int
    """``--fine-tune``: its batch size (small: the step proves the restore, it does not train a model)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


_COMMON: dict[str, Any] = {
    "seed": 0,
    "image_size": 128,
    "class_ratio": "25:1",
    "eval_class_ratio": "1:1",
    "minority_class": "nodule",
    "min_size": 16,
    "max_size": 40,
    "negative_share": 0.25,
    "recipe": "chest-xray",
    "balance_strategy": "oversample",
    "balance_threshold": 0.3,
    "template": "tiny-fpnlite",
    "learning_rate": 0.008,
    "operating_threshold": 0.5,
    "predict_images": 4,
    "fine_tune_kind": "shapes",
    "fine_tune_steps": 100,
    "fine_tune_batch_size": 2,
}

# The quick demo exports the SavedModel only: TFLite's conversion adds minutes (tfod_tools.demo.ship).
QUICK = DemoSettings(
    mode="quick",
    train_images=400,
    eval_images=96,
    steps=600,
    checkpoint_every=100,
    export_formats="saved_model",
    fine_tune_train_images=32,
    fine_tune_eval_images=8,
    **_COMMON,
)
FULL = DemoSettings(
    mode="full",
    train_images=800,
    eval_images=192,
    steps=1500,
    checkpoint_every=300,
    export_formats="saved_model,tflite",
    fine_tune_train_images=64,
    fine_tune_eval_images=16,
    **_COMMON,
)


def settings_for(*, quick: bool) -> DemoSettings:
    """:data:`QUICK` or :data:`FULL`."""
    return QUICK if quick else FULL
