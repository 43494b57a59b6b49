"""The ``learning_rate_vs_batch_size`` config check: the base learning rate is more than
:data:`MAX_TIMES_LINEAR_SCALING` times what linear scaling suggests for this ``batch_size``
(``reference rate x batch_size / reference batch``), against the batch the config was made for:
the ``pipeline.config`` a TF2 zoo tarball ships beside its ``checkpoint/ckpt-0``, else
:data:`ZOO_CONFIGS` (the zoo model's name in the checkpoint path or the config's file name).

One of the checks :func:`tfod_tools.diagnostics.findings.config.config_findings` runs; it does not
import TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfod_tools.diagnostics.model import Finding, table
from tfod_tools.diagnostics.schedule import Schedule
from tfod_tools.errors import TfodError
from tfod_tools.odapi.fine_tune import shipped_pipeline

__all__ = [
    "MAX_TIMES_LINEAR_SCALING",
    "ZOO_CONFIGS",
    "ZOO_TARBALLS",
    "LearningRate",
    "ReferenceBatch",
    "base_learning_rate",
    "learning_rate_vs_batch_size",
    "reference_batch",
]

MAX_TIMES_LINEAR_SCALING = 2.0
"""``learning_rate_vs_batch_size`` fires above this multiple of the linear-scaling rate."""

# TF2 Detection Model Zoo configs: batch_size, base learning rate, warmup learning rate (None: no
# warmup), read from tensorflow/models, research/object_detection/configs/tf2/NAME.config (Apache-2.0)
# at the commit after each row. tests/data/zoo/ holds two of these files; a test checks their rows.
ZOO_CONFIGS: dict[str, tuple[int, float, float | None]] = {
    "ssd_mobilenet_v2_320x320_coco17_tpu-8": (512, 0.08, 0.013333),  # 9c804063
    "ssd_mobilenet_v1_fpn_640x640_coco17_tpu-8": (64, 0.04, 0.013333),  # a181e79d
    "ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8": (128, 0.08, 0.026666),  # 5245161c
    "ssd_mobilenet_v2_fpnlite_640x640_coco17_tpu-8": (128, 0.08, 0.026666),  # 5a2cf36f
    "ssd_resnet50_v1_fpn_640x640_coco17_tpu-8": (64, 0.04, 0.013333),  # 3b998e4f
    "ssd_resnet50_v1_fpn_1024x1024_coco17_tpu-8": (64, 0.04, 0.013333),  # 3b998e4f
    "ssd_resnet101_v1_fpn_640x640_coco17_tpu-8": (64, 0.04, 0.013333),  # d318246c
    "ssd_resnet101_v1_fpn_1024x1024_coco17_tpu-8": (64, 0.04, 0.013333),  # a181e79d
    "ssd_resnet152_v1_fpn_640x640_coco17_tpu-8": (64, 0.04, 0.013333),  # 3ce2f61b
    "ssd_resnet152_v1_fpn_1024x1024_coco17_tpu-8": (64, 0.04, 0.013333),  # 8490e80d
    "ssd_efficientdet_d0_512x512_coco17_tpu-8": (128, 0.08, 0.001),  # d318246c
    "ssd_efficientdet_d1_640x640_coco17_tpu-8": (128, 0.08, 0.001),  # d318246c
    "ssd_efficientdet_d2_768x768_coco17_tpu-8": (128, 0.08, 0.001),  # 36179732
    "ssd_efficientdet_d3_896x896_coco17_tpu-32": (128, 0.08, 0.001),  # b99182ac
    "ssd_efficientdet_d4_1024x1024_coco17_tpu-32": (128, 0.08, 0.001),  # 3b998e4f
    "ssd_efficientdet_d5_1280x1280_coco17_tpu-32": (128, 0.08, 0.001),  # a181e79d
    "ssd_efficientdet_d6_1408x1408_coco17_tpu-32": (128, 0.08, 0.001),  # 5245161c
    "ssd_efficientdet_d7_1536x1536_coco17_tpu-32": (128, 0.08, 0.001),  # 658250be
    "faster_rcnn_resnet50_v1_640x640_coco17_tpu-8": (64, 0.04, 0.013333),  # b99182ac
    "faster_rcnn_resnet50_v1_1024x1024_coco17_tpu-8": (64, 0.04, 0.013333),  # 0cceabfc
    "faster_rcnn_resnet50_v1_800x1333_coco17_gpu-8": (16, 0.01, 0.0),  # 36179732
    "faster_rcnn_resnet101_v1_640x640_coco17_tpu-8": (64, 0.04, 0.013333),  # d318246c
    "faster_rcnn_resnet101_v1_1024x1024_coco17_tpu-8": (64, 0.04, 0.013333),  # d318246c
    "faster_rcnn_resnet101_v1_800x1333_coco17_gpu-8": (16, 0.01, 0.0),  # d318246c
    "faster_rcnn_resnet152_v1_640x640_coco17_tpu-8": (64, 0.04, 0.013333),  # d318246c
    "faster_rcnn_resnet152_v1_1024x1024_coco17_tpu-8": (64, 0.04, 0.013333),  # 3b998e4f
    "faster_rcnn_resnet152_v1_800x1333_coco17_gpu-8": (16, 0.01, 0.0),  # 68150ce2
    "mask_rcnn_inception_resnet_v2_1024x1024_coco17_gpu-8": (16, 0.008, 0.0),  # 3b998e4f
    "centernet_hg104_512x512_coco17_tpu-8": (128, 0.001, None),  # 36b06a87
    "centernet_hourglass104_512x512_coco17_tpu-8": (128, 0.001, None),  # f16a7b5b
    "centernet_hourglass104_1024x1024_coco17_tpu-32": (128, 0.001, 0.00025),  # dc61a603
    "centernet_resnet101_v1_fpn_512x512_coco17_tpu-8": (128, 0.001, None),  # b4d07dfc
    "centernet_resnet50_v2_512x512_coco17_tpu-8": (128, 0.001, 0.00025),  # 36b06a87
}
"""TF2 zoo config name -> ``(batch_size, base learning rate, warmup learning rate or None)``."""

ZOO_TARBALLS: dict[str, str] = {
    **{
        f"efficientdet_d{d}_coco17_tpu-32": name
        for name in ZOO_CONFIGS
        for d in range(8)
        if name.startswith(f"ssd_efficientdet_d{d}_")
    },
    "centernet_hg104_1024x1024_coco17_tpu-32": "centernet_hourglass104_1024x1024_coco17_tpu-32",
}
"""Zoo tarball (and checkpoint folder) names that differ from their config's name -> config name
(tensorflow/models research/object_detection/g3doc/tf2_detection_zoo.md)."""


def _num(value: float) -> str:
    """A rate for a message or a config fragment.

    >>> _num(0.08 * 4 / 128), _num(0.026666 * 4 / 128), _num(1e-5)
    ('0.0025', '0.0008333', '1e-05')
    """
    return f"{value:.4g}"


def _in(pipeline_path: str | None) -> str:
    """The config's name in a fix (shared: the other config checks import it from here)."""
    return pipeline_path or "pipeline.config"


@dataclass(frozen=True)
class LearningRate:
    """The learning rate a config trains with: optimizer, schedule, base (peak) rate, warmup rate,
    and every rate field of the schedule (they all scale together with the batch size)."""

    optimizer: str
    schedule: str
    base: float
    warmup: float | None = None
    rates: dict[str, float] = field(default_factory=dict)
    steps: tuple[tuple[int, float], ...] = ()
    """``manual_step_learning_rate``'s ``schedule { step learning_rate }`` entries."""

    @property
    def where(self) -> str:
        """The schedule's path in the config."""
        return f"train_config.optimizer.{self.optimizer}.learning_rate.{self.schedule}"

    def fragment(self, factor: float = 1.0) -> str:
        """The schedule's rate fields, each times ``factor``, as config text.

        >>> LearningRate("adam_optimizer", "manual_step_learning_rate", 0.01,
        ...              rates={"initial_learning_rate": 0.01}, steps=((900, 0.001),)).fragment(0.5)
        'initial_learning_rate: 0.005 schedule { step: 900 learning_rate: 0.0005 }'
        """
        parts = [f"{name}: {_num(value * factor)}" for name, value in self.rates.items()]
        parts += [f"schedule {{ step: {s} learning_rate: {_num(v * factor)} }}" for s, v in self.steps]
        return " ".join(parts)


def base_learning_rate(config: Any) -> LearningRate | None:
    """The learning rate of ``config``'s optimizer, for every schedule the API has (constant,
    exponential_decay, manual_step, cosine_decay); None without an optimizer or schedule.

    The base rate is the highest the schedule reaches: cosine's ``learning_rate_base``, the
    constant rate, exponential decay's ``initial_learning_rate``, the largest manual step rate.
    The warmup rate is cosine's ``warmup_learning_rate`` or exponential decay's
    ``burnin_learning_rate`` (when their warmup / burn-in steps are set). The config is read by
    :meth:`tfod_tools.diagnostics.schedule.Schedule.from_config`, as the schedule checks read it.

    >>> from tfod_tools.odapi.pipeline import parse_pipeline_text
    >>> lr = base_learning_rate(parse_pipeline_text('''train_config { optimizer { adam_optimizer {
    ...   learning_rate { manual_step_learning_rate { initial_learning_rate: 0.001
    ...   schedule { step: 9000 learning_rate: 0.0001 } } } } } }'''))
    >>> lr.base, lr.where
    (0.001, 'train_config.optimizer.adam_optimizer.learning_rate.manual_step_learning_rate')
    >>> base_learning_rate(parse_pipeline_text("train_config { batch_size: 2 }")) is None
    True
    """
    schedule = Schedule.from_config(config)
    if schedule is None:
        return None
    name, rate = f"{schedule.kind}_learning_rate", schedule.rate
    if schedule.kind == "constant":
        return LearningRate(schedule.optimizer, name, rate, rates={"learning_rate": rate})
    if schedule.kind == "manual_step":
        steps = tuple(zip(schedule.boundaries, schedule.rates, strict=True))
        base = max([rate, *schedule.rates])
        initial = {"initial_learning_rate": rate}
        return LearningRate(schedule.optimizer, name, base, rates=initial, steps=steps)
    if schedule.kind == "cosine_decay":  # the API refuses a warmup rate above the base
        warmup = schedule.warmup_rate if schedule.warmup_steps > 0 else None
        rates: dict[str, float | None] = {"learning_rate_base": rate, "warmup_learning_rate": warmup}
        base = rate
    else:  # exponential_decay: the burn-in rate is held first, whatever its size
        warmup = schedule.burnin_rate if schedule.burnin_steps > 0 else None
        low = schedule.min_rate if schedule.min_rate > 0 else None
        rates = {"initial_learning_rate": rate, "burnin_learning_rate": warmup, "min_learning_rate": low}
        base = max(rate, warmup or 0.0)
    kept = {k: v for k, v in rates.items() if v is not None}
    return LearningRate(schedule.optimizer, name, base, warmup, kept)


@dataclass(frozen=True)
class ReferenceBatch:
    """The batch size and learning rate a config was made for, and where they come from."""

    batch_size: int
    learning_rate: float
    warmup_learning_rate: float | None
    source: str


def _checkpoint_names(config: Any, pipeline_path: str | None) -> list[str]:
    """Folder and file names that may carry a zoo model's name: the checkpoint path's, then the config's."""
    names = list(reversed(Path(config.train_config.fine_tune_checkpoint).parts))
    if pipeline_path:
        names += [Path(pipeline_path).stem, Path(pipeline_path).parent.name]
    return names


def reference_batch(config: Any, pipeline_path: str | None = None) -> ReferenceBatch | None:
    """The batch size and base learning rate ``config`` was made for, or None when unknown.

    First the ``pipeline.config`` beside the ``fine_tune_checkpoint`` (a zoo tarball's
    ``MODEL/pipeline.config`` for ``MODEL/checkpoint/ckpt-0``), then :data:`ZOO_CONFIGS` for a zoo
    model named in the checkpoint path (or in the config's file name).

    >>> from tfod_tools.odapi.pipeline import parse_pipeline_text
    >>> cfg = parse_pipeline_text('train_config { fine_tune_checkpoint: '
    ...                           '"/dl/efficientdet_d0_coco17_tpu-32/checkpoint/ckpt-0" }')
    >>> ref = reference_batch(cfg)
    >>> ref.batch_size, ref.learning_rate, ref.warmup_learning_rate, ref.source
    (128, 0.08, 0.001, 'the TF2 zoo config ssd_efficientdet_d0_512x512_coco17_tpu-8')
    """
    beside = shipped_pipeline(config.train_config.fine_tune_checkpoint, own=pipeline_path)
    if beside is not None:
        from tfod_tools.odapi.pipeline import load_pipeline

        try:
            shipped = load_pipeline(beside)
        except TfodError:
            shipped = None
        rate = None if shipped is None else base_learning_rate(shipped)
        if shipped is not None and rate is not None and shipped.train_config.batch_size > 0:
            return ReferenceBatch(
                int(shipped.train_config.batch_size),
                rate.base,
                rate.warmup,
                f"the pipeline.config beside the checkpoint ({beside})",
            )
    for name in _checkpoint_names(config, pipeline_path):
        zoo = ZOO_TARBALLS.get(name, name)
        if zoo in ZOO_CONFIGS:
            batch, rate_value, warmup = ZOO_CONFIGS[zoo]
            return ReferenceBatch(batch, rate_value, warmup, f"the TF2 zoo config {zoo}")
    return None


def learning_rate_vs_batch_size(config: Any, pipeline_path: str | None = None) -> Finding | None:
    """The base learning rate is over :data:`MAX_TIMES_LINEAR_SCALING` x the linear-scaling rate
    ``reference rate x batch_size / reference batch`` (see :func:`reference_batch`).

    >>> from tfod_tools.odapi.pipeline import parse_pipeline_text
    >>> cfg = parse_pipeline_text('''train_config { batch_size: 8
    ...   fine_tune_checkpoint: "m/ssd_resnet50_v1_fpn_640x640_coco17_tpu-8/checkpoint/ckpt-0"
    ...   optimizer { momentum_optimizer { learning_rate { constant_learning_rate {
    ...   learning_rate: 0.04 } } } } }''')
    >>> f = learning_rate_vs_batch_size(cfg)
    >>> f.evidence["suggested_learning_rate"], f.evidence["times_suggested"]
    (0.005, 8.0)
    """
    rate = base_learning_rate(config)
    batch = int(config.train_config.batch_size)
    if rate is None or batch < 1 or rate.base <= 0:
        return None
    ref = reference_batch(config, pipeline_path)
    if ref is None or ref.learning_rate <= 0:
        return None
    factor = batch / ref.batch_size
    suggested = ref.learning_rate * factor
    times = rate.base / suggested
    if times <= MAX_TIMES_LINEAR_SCALING * (1 + 1e-6):
        return None
    # The user's own schedule, scaled so that its base rate becomes the suggestion.
    scale = suggested / rate.base
    rows = [[name, value, float(_num(value * scale))] for name, value in rate.rates.items()]
    rows += [[f"schedule step {s}", v, float(_num(v * scale))] for s, v in rate.steps]
    message = (
        f"learning rate {_num(rate.base)} ({rate.schedule}) with batch_size {batch}, but {ref.source} "
        f"uses {_num(ref.learning_rate)} for batch {ref.batch_size}: linear scaling suggests "
        f"{_num(ref.learning_rate)} x {batch}/{ref.batch_size} = {_num(suggested)}, this is "
        f"{times:.3g}x that: a rate tuned for {ref.batch_size}-image batches applied to {batch}-image "
        "batches usually makes training diverge (the loss goes NaN)"
    )
    fix = (
        f"In {_in(pipeline_path)} set {rate.where} {{ {rate.fragment(scale)} }} (every rate x "
        f"{batch}/{ref.batch_size}, its other fields unchanged), or raise train_config.batch_size towards "
        f"{ref.batch_size} if memory allows."
    )
    evidence: dict[str, Any] = {
        "batch_size": batch,
        "learning_rate": rate.base,
        "reference_batch_size": ref.batch_size,
        "reference_learning_rate": ref.learning_rate,
        "suggested_learning_rate": float(_num(suggested)),
        "times_suggested": round(times, 3),
        "reference": ref.source,
        "at": rate.where,
        "rates": table(["field", "value", "scaled"], rows),
    }
    if ref.warmup_learning_rate is not None:
        evidence["reference_warmup_learning_rate"] = ref.warmup_learning_rate
    return Finding("learning_rate_vs_batch_size", "warning", message, evidence, fix)
