"""Config checks: settings of a (hand-edited) ``pipeline.config`` that break or quietly hurt
training and evaluation, read from the config and from what it points at, before anything runs.

:func:`config_findings` runs them all, and the learning-rate schedule checks of
:mod:`tfod_tools.diagnostics.findings.training`; ``tfod inspect --pipeline``, ``tfod diagnose
--pipeline`` and ``tfod train`` (as pre-flight warnings) show them. Finding ids:

- ``learning_rate_vs_batch_size``: the base learning rate is more than
  :data:`MAX_TIMES_LINEAR_SCALING` times what linear scaling suggests for this ``batch_size``
  (``reference rate x batch_size / reference batch``), against the batch the config was made for:
  the ``pipeline.config`` a TF2 zoo tarball ships beside its ``checkpoint/ckpt-0``, else
  :data:`ZOO_CONFIGS` (the zoo model's name in the checkpoint path or the config's file name);
- ``fine_tune_checkpoint_type_mismatch`` (error): ``fine_tune_checkpoint_type`` restores an object
  the checkpoint does not hold (its keys are read without TensorFlow), so ``model_main_tf2`` stops
  before the first step;
- ``fine_tune_checkpoint_not_tf2`` (error): a name-based (TF1) checkpoint, which the TF2 trainer
  refuses;
- ``augmentation_contradicts_recipe``: a flip or 90-degree rotation in ``data_augmentation_options``
  that the domain recipe in use (``tfod balance``'s, found in the manifest beside the train
  records) leaves out, or keeps behind a switch that is off (chest-xray's ``hflip``);
- ``max_detections_below_ground_truth``: the model keeps fewer detections per image than the most
  crowded eval image has ground-truth boxes;
- ``eval_batch_size_above_one``: ``eval_config.batch_size`` > 1.

None of them imports TensorFlow.

>>> from tfod_tools.odapi.pipeline import parse_pipeline_text
>>> cfg = parse_pipeline_text('''train_config { batch_size: 4
...   fine_tune_checkpoint: "zoo/ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8/checkpoint/ckpt-0"
...   optimizer { momentum_optimizer { learning_rate { cosine_decay_learning_rate {
...     learning_rate_base: 0.08 warmup_learning_rate: 0.026666 warmup_steps: 1000 } } } } }
... eval_config { batch_size: 8 }''')
>>> ids = [f.id for f in config_findings(cfg, "pipeline.config")]
>>> "learning_rate_vs_batch_size" in ids and "eval_batch_size_above_one" in ids
True
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tfod_tools.data.model import AnnotatedSet
from tfod_tools.diagnostics.checkpoints import checkpoint_keys
from tfod_tools.diagnostics.findings.training import Schedule, schedule_findings
from tfod_tools.diagnostics.model import Finding, table
from tfod_tools.errors import TfodError

__all__ = [
    "MAX_TIMES_LINEAR_SCALING",
    "ZOO_CONFIGS",
    "ZOO_TARBALLS",
    "LearningRate",
    "RecipeInUse",
    "ReferenceBatch",
    "augmentation_contradicts_recipe",
    "base_learning_rate",
    "config_findings",
    "eval_batch_size_above_one",
    "fine_tune_checkpoint_check",
    "learning_rate_vs_batch_size",
    "max_boxes_per_image",
    "max_detections_below_ground_truth",
    "recipe_in_use",
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

# API augmentation option -> the albumentations transform a recipe would use for it.
_AUGMENTATIONS = {
    "random_horizontal_flip": "HorizontalFlip",
    "random_vertical_flip": "VerticalFlip",
    "random_rotation90": "RandomRotate90",
}
# albumentations transforms that apply every flip and 90-degree rotation of the square.
_SQUARE_SYMMETRIES = ("D4", "SquareSymmetry")
_RESTORED_ROOT = {"classification": "feature_extractor", "detection": "model", "full": "model"}
_SHARD_SUFFIX = re.compile(r"-\d{5}-of-\d{5}$")
_STATE_PATH = re.compile(r'^model_checkpoint_path:\s*"(?P<path>[^"]+)"', re.MULTILINE)


def _num(value: float) -> str:
    """A rate for a message or a config fragment.

    >>> _num(0.08 * 4 / 128), _num(0.026666 * 4 / 128), _num(1e-5)
    ('0.0025', '0.0008333', '1e-05')
    """
    return f"{value:.4g}"


def _in(pipeline_path: str | None) -> str:
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
    :meth:`tfod_tools.diagnostics.findings.training.Schedule.from_config`, as the schedule checks read it.

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


def _beside_checkpoint(config: Any, pipeline_path: str | None) -> Path | None:
    """The ``pipeline.config`` a zoo tarball ships beside ``checkpoint/ckpt-0`` (or beside the prefix)."""
    text = config.train_config.fine_tune_checkpoint
    if not text or "://" in text:
        return None
    folder = Path(text).parent
    candidates = [folder / "pipeline.config"]
    if folder.name == "checkpoint":
        candidates.append(folder.parent / "pipeline.config")
    own = Path(pipeline_path).resolve() if pipeline_path else None
    for candidate in candidates:
        if candidate.is_file() and candidate.resolve() != own:
            return candidate
    return None


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
    beside = _beside_checkpoint(config, pipeline_path)
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


def _checkpoint_prefix(text: str) -> Path | None:
    """The checkpoint a ``fine_tune_checkpoint`` names (a prefix, or a folder with a state file)."""
    if not text or "://" in text:
        return None
    path = Path(text)
    if path.with_name(path.name + ".index").is_file():
        return path
    state = path / "checkpoint"
    if path.is_dir() and state.is_file():
        match = _STATE_PATH.search(state.read_text(encoding="utf-8", errors="replace"))
        if match:
            named = Path(match.group("path"))
            prefix = named if named.is_absolute() else path / named
            if prefix.with_name(prefix.name + ".index").is_file():
                return prefix
    return None


def fine_tune_checkpoint_check(config: Any, pipeline_path: str | None = None) -> Finding | None:
    """``fine_tune_checkpoint_type`` against the keys of the checkpoint (read without TensorFlow).

    ``model_lib_v2.load_fine_tune_checkpoint`` restores ``tf.train.Checkpoint(**restore_map)``
    with ``assert_existing_objects_matched()``, where the meta-architectures' ``restore_from_objects``
    map is ``{"feature_extractor": backbone}`` for ``classification`` and ``{"model": ...}`` for
    ``detection`` (feature extractor, and FPN) and ``full`` (everything). A detection checkpoint
    (``model_main_tf2``'s, the zoo's ``checkpoint/ckpt-0``) holds ``model/...``; an ImageNet backbone
    checkpoint holds ``feature_extractor/...``. Restoring an object the checkpoint lacks binds no
    variable, and the assertion stops training before the first step; a checkpoint without
    ``_CHECKPOINTABLE_OBJECT_GRAPH`` (TF1, name-based) is refused outright. An empty type is read as
    the API does (``from_detection_checkpoint`` ? detection : classification).

    >>> from tfod_tools.odapi.pipeline import parse_pipeline_text
    >>> fine_tune_checkpoint_check(parse_pipeline_text('train_config { fine_tune_checkpoint: "nope" }'))
    """
    tc = config.train_config
    prefix = _checkpoint_prefix(tc.fine_tune_checkpoint)
    if prefix is None:
        return None
    try:
        keys = checkpoint_keys(prefix)
    except (OSError, ValueError):
        return None
    kind = tc.fine_tune_checkpoint_type or ("detection" if tc.from_detection_checkpoint else "classification")
    written = (
        f'"{tc.fine_tune_checkpoint_type}"' if tc.fine_tune_checkpoint_type else '"" (read as ' + kind + ")"
    )
    roots = sorted({key.split("/", 1)[0] for key in keys} - {"_CHECKPOINTABLE_OBJECT_GRAPH"})
    evidence: dict[str, Any] = {
        "checkpoint": str(prefix),
        "fine_tune_checkpoint_type": kind,
        "tensors": len(keys),
        "top_level": ", ".join(roots),
    }
    where = _in(pipeline_path)
    if "_CHECKPOINTABLE_OBJECT_GRAPH" not in keys:
        message = (
            f"fine_tune_checkpoint {prefix} is a name-based (TF1) checkpoint: it has no "
            "_CHECKPOINTABLE_OBJECT_GRAPH, and model_main_tf2 refuses it ('Checkpoint is expected to be an "
            "object-based checkpoint')"
        )
        fix = (
            f"In {where} point train_config.fine_tune_checkpoint at a TF2 checkpoint: the TF2 Detection "
            "Model Zoo tarball's MODEL/checkpoint/ckpt-0 (tf2_detection_zoo.md), not a TF1 model.ckpt."
        )
        return Finding("fine_tune_checkpoint_not_tf2", "error", message, evidence, fix)
    holds = "detection" if "model" in roots else "classification" if "feature_extractor" in roots else None
    needed = _RESTORED_ROOT.get(kind)
    if needed is not None and needed in roots:
        return None
    if needed is None:
        problem = f"{written} is not a type the API restores (classification, detection, full)"
    else:
        problem = (
            f"fine_tune_checkpoint_type {written} restores {needed}/..., which {prefix.name} does not hold "
            f"(its {len(keys)} tensors are under {', '.join(f'{r}/' for r in roots) or 'nothing'})"
        )
    if holds is None:
        message = (
            f"{problem}; the checkpoint is neither a detection checkpoint (model/...) nor a classification "
            "one (feature_extractor/...), so no fine_tune_checkpoint_type can restore it: model_main_tf2 "
            "stops at start ('AssertionError: ... not bound to checkpointed values')"
        )
        fix = (
            f"In {where} point train_config.fine_tune_checkpoint at a checkpoint model_main_tf2 or `tfod "
            "train` wrote, or a TF2 zoo tarball's MODEL/checkpoint/ckpt-0."
        )
    else:
        message = (
            f"{problem}: {prefix} is a {holds} checkpoint, so nothing is restored and model_main_tf2 stops "
            "at start ('AssertionError: ... not bound to checkpointed values')"
        )
        what = (
            "the feature extractor (and FPN) from the detection checkpoint; the box predictor starts fresh "
            "for your num_classes"
            if holds == "detection"
            else "the backbone from the classification checkpoint"
        )
        fix = f'In {where} set train_config {{ fine_tune_checkpoint_type: "{holds}" }}: it restores {what}.'
    evidence["checkpoint_holds"] = holds or "neither"
    return Finding("fine_tune_checkpoint_type_mismatch", "error", message, evidence, fix)


@dataclass(frozen=True)
class RecipeInUse:
    """The ``tfod balance`` recipe the train records were made with, as far as geometry goes."""

    name: str
    found_in: str
    applied: frozenset[str]
    """Transform class names the recipe applies (switches that are on included)."""
    switchable: dict[str, str] = field(default_factory=dict)
    """Transform class name -> the switch (off) that would add it."""
    rationale: str = ""


def _short(spec: Any) -> str:
    return str(spec.get("__class_fullname__", "")).rsplit(".", 1)[-1] if isinstance(spec, Mapping) else ""


def _transforms(album: Any) -> list[Any]:
    top = album.get("transform") if isinstance(album, Mapping) else None
    items = top.get("transforms") if isinstance(top, Mapping) else None
    return list(items) if isinstance(items, list) else []


def _class_names(specs: Iterable[Any]) -> set[str]:
    from tfod_tools.data.balance.recipes import iter_transform_dicts

    return {_short(t) for t in iter_transform_dicts([s for s in specs if isinstance(s, Mapping)])}


def _recipe_yaml(name_or_path: str) -> dict[str, Any] | None:
    """A recipe's YAML (shipped by name, or a file); None when there is no such recipe."""
    import yaml

    from tfod_tools.data.balance.recipes import RECIPES, recipe_text

    try:
        text = recipe_text(name_or_path) if name_or_path in RECIPES else Path(name_or_path).read_text("utf-8")
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def _switches(data: Mapping[str, Any], on: Mapping[str, Any] | None) -> tuple[list[Any], dict[str, str]]:
    """The transforms of the switches that are on (``on``, else each switch's default), and
    ``{transform class: switch}`` for those that are off."""
    applied: list[Any] = []
    off: dict[str, str] = {}
    spec = data.get("switches")
    for key, switch in (spec if isinstance(spec, Mapping) else {}).items():
        if not isinstance(switch, Mapping):
            continue
        enabled = bool(on.get(key)) if on is not None else bool(switch.get("default", False))
        listed = switch.get("transforms")
        specs: list[Any] = listed if isinstance(listed, list) else []
        if enabled:
            applied.extend(specs)
        else:
            off.update({name: str(key) for name in _class_names(specs)})
    return applied, off


def _manifest_for(config: Any) -> Path | None:
    """The ``tfod balance`` manifest (``OUT.manifest.json``) of the train records, if there is one."""
    from tfod_tools.data.balance import manifest_path
    from tfod_tools.data.tfrecord import expand_record_paths

    reader = config.train_input_reader
    if not reader.HasField("tf_record_input_reader"):
        return None
    for text in reader.tf_record_input_reader.input_path:
        bases = [str(text)]
        with contextlib.suppress(TfodError):
            bases += [str(f) for f in expand_record_paths(text)]
        for base in bases:
            for out in (base, _SHARD_SUFFIX.sub("", base)):
                candidate = manifest_path(out)
                if candidate.is_file():
                    return candidate
    return None


def recipe_in_use(config: Any, recipe: str | None = None) -> RecipeInUse | None:
    """The recipe in use: ``recipe`` (a shipped name or a YAML file, its switches at their defaults),
    else the one the ``tfod balance`` manifest beside the train records records (with the switches
    that run used). None when neither is there. Raises :class:`TfodError` for an unknown ``recipe``.

    >>> recipe_in_use(None, "chest-xray").switchable
    {'HorizontalFlip': 'hflip'}
    >>> sorted(recipe_in_use(None, "aerial").applied)[:3]
    ['HorizontalFlip', 'RandomBrightnessContrast', 'RandomRotate90']
    """
    if recipe is not None:
        data = _recipe_yaml(recipe)
        if data is None:
            from tfod_tools.data.balance.recipes import RECIPES

            raise TfodError(
                f"recipe {recipe!r} not found", fix=f"use one of {', '.join(RECIPES)} or a recipe .yaml file"
            )
        extra, off = _switches(data, None)
        applied = _class_names([*_transforms(data.get("albumentations")), *extra])
        name = str(data.get("name") or Path(recipe).stem)
        return RecipeInUse(name, "the recipe given", frozenset(applied), off, str(data.get("rationale", "")))
    manifest = _manifest_for(config)
    if manifest is None:
        return None
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8")).get("recipe")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(recorded, Mapping):
        return None
    name = str(recorded.get("name") or "?")
    on = recorded.get("switches") if isinstance(recorded.get("switches"), Mapping) else {}
    data = _recipe_yaml(name) or _recipe_yaml(str(recorded.get("source") or "")) or {}
    _, off = _switches(data, on)
    applied = _class_names(_transforms(recorded.get("albumentations")))
    return RecipeInUse(name, str(manifest), frozenset(applied), off, str(recorded.get("rationale", "")))


def augmentation_contradicts_recipe(
    config: Any, pipeline_path: str | None = None, recipe: str | None = None
) -> Finding | None:
    """A flip or 90-degree rotation in ``train_config.data_augmentation_options`` that the recipe in
    use (:func:`recipe_in_use`) does not apply: the recipe leaves it out (chest-xray: no vertical flip,
    no rotation; natural: no vertical flip) or keeps it behind a switch that is off (chest-xray's
    ``hflip``: laterality). The API would add, online, the images the recipe rules out.

    >>> from tfod_tools.odapi.pipeline import parse_pipeline_text
    >>> cfg = parse_pipeline_text('train_config { data_augmentation_options { random_vertical_flip {} } }')
    >>> augmentation_contradicts_recipe(cfg, recipe="chest-xray").evidence["options"]["rows"]
    [['random_vertical_flip', 'VerticalFlip', 'not in the recipe']]
    >>> augmentation_contradicts_recipe(cfg, recipe="aerial") is None
    True
    """
    options = [
        step.WhichOneof("preprocessing_step") for step in config.train_config.data_augmentation_options
    ]
    geometric = [o for o in options if o in _AUGMENTATIONS]
    if not geometric:
        return None
    used = recipe_in_use(config, recipe)
    if used is None or any(s in used.applied for s in _SQUARE_SYMMETRIES):
        return None
    rows = []
    for option in dict.fromkeys(geometric):
        transform = _AUGMENTATIONS[option]
        if transform in used.applied:
            continue
        switch = used.switchable.get(transform)
        rows.append(
            [option, transform, f"behind the switch '{switch}' (off)" if switch else "not in the recipe"]
        )
    if not rows:
        return None
    names = ", ".join(r[0] for r in rows)
    message = (
        f"train_config.data_augmentation_options {names} contradict the {used.name} recipe in use "
        f"({used.found_in}): it applies no {', '.join(r[1] for r in rows)}, so the trainer would create "
        "images the recipe rules out for this domain"
        + ("" if not used.rationale else " (see its rationale in the evidence)")
    )
    blocks = " and ".join(f"data_augmentation_options {{ {r[0]} {{ }} }}" for r in rows)
    fix = f"In {_in(pipeline_path)} remove {blocks} from train_config."
    switches = sorted({s for r in rows if (s := used.switchable.get(r[1]))})
    if switches:
        fix += (
            f" If the domain allows it after all (laterality-free labels), rebalance with `tfod balance "
            f"{' '.join(f'--enable {s}' for s in switches)}` and keep it."
        )
    evidence: dict[str, Any] = {
        "recipe": used.name,
        "recipe_from": used.found_in,
        "options": table(["option", "recipe transform", "in the recipe"], rows),
    }
    if used.rationale:
        evidence["rationale"] = used.rationale
    return Finding("augmentation_contradicts_recipe", "warning", message, evidence, fix)


def _detection_cap(config: Any) -> tuple[str, str, int] | None:
    """``(message path, field, value)`` of the number of detections the model keeps per image."""
    kind = config.model.WhichOneof("model")
    if kind == "ssd" and config.model.ssd.HasField("post_processing"):
        nms = config.model.ssd.post_processing.batch_non_max_suppression
        return (
            "model.ssd.post_processing.batch_non_max_suppression",
            "max_total_detections",
            nms.max_total_detections,
        )
    if kind == "faster_rcnn" and config.model.faster_rcnn.HasField("second_stage_post_processing"):
        nms = config.model.faster_rcnn.second_stage_post_processing.batch_non_max_suppression
        where = "model.faster_rcnn.second_stage_post_processing.batch_non_max_suppression"
        return where, "max_total_detections", nms.max_total_detections
    if kind == "center_net" and config.model.center_net.HasField("object_center_params"):
        params = config.model.center_net.object_center_params
        return "model.center_net.object_center_params", "max_box_predictions", params.max_box_predictions
    return None


def max_detections_below_ground_truth(
    config: Any, pipeline_path: str | None = None, eval_max_boxes: int | None = None
) -> Finding | None:
    """The model keeps fewer detections per image (NMS ``max_total_detections``; CenterNet's
    ``max_box_predictions``) than ``eval_max_boxes``, the most ground-truth boxes of one eval image.

    >>> from tfod_tools.odapi.pipeline import parse_pipeline_text
    >>> cfg = parse_pipeline_text('''model { ssd { post_processing { batch_non_max_suppression {
    ...   max_detections_per_class: 100 max_total_detections: 100 } } } }''')
    >>> max_detections_below_ground_truth(cfg, eval_max_boxes=140).evidence["max_total_detections"]
    100
    >>> max_detections_below_ground_truth(cfg, eval_max_boxes=60) is None
    True
    """
    cap = _detection_cap(config)
    if cap is None or eval_max_boxes is None:
        return None
    where, name, value = cap
    if int(value) >= eval_max_boxes:
        return None
    message = (
        f"{name} {value} ({where}) is below the {eval_max_boxes} ground-truth boxes of the most crowded "
        f"eval image: at most {value} of them can be detected there, so recall on crowded images is "
        "capped whatever the model learns (and mAP with it)"
    )
    fix = f"In {_in(pipeline_path)} set {where} {{ {name}: {max(eval_max_boxes, 100)} }}"
    if name == "max_total_detections":
        fix += " (and max_detections_per_class at least as large)"
    fix += "; COCO metrics still count the top 100 per image, exported detections keep them all."
    evidence: dict[str, Any] = {name: int(value), "eval_max_boxes_per_image": eval_max_boxes, "at": where}
    return Finding("max_detections_below_ground_truth", "warning", message, evidence, fix)


def eval_batch_size_above_one(config: Any, pipeline_path: str | None = None) -> Finding | None:
    """``eval_config.batch_size`` > 1.

    >>> from tfod_tools.odapi.pipeline import parse_pipeline_text
    >>> eval_batch_size_above_one(parse_pipeline_text("eval_config { batch_size: 4 }")).evidence
    {'batch_size': 4}
    >>> eval_batch_size_above_one(parse_pipeline_text("eval_config { }")) is None
    True
    """
    batch = int(config.eval_config.batch_size)
    if batch <= 1:
        return None
    message = (
        f"eval_config.batch_size {batch}: the evaluator holds {batch} images' activations at once next to "
        "the trainer (the usual evaluation out-of-memory), pads every image to the resizer's fixed shape "
        "and the ground truth to max_number_of_boxes (images of different sizes under a "
        "keep_aspect_ratio_resizer without pad_to_max_dimension cannot be batched), and evaluates no "
        "better than one image at a time"
    )
    fix = f"In {_in(pipeline_path)} set eval_config {{ batch_size: 1 }}."
    return Finding("eval_batch_size_above_one", "warning", message, {"batch_size": batch}, fix)


def max_boxes_per_image(data: AnnotatedSet | None) -> int | None:
    """The most ground-truth boxes of one image of ``data`` (None without data).

    >>> from tfod_tools.data.model import GroundTruth, ImageTable
    >>> gt = GroundTruth.from_arrays([1, 2, 2, 2], [[0, 0, 5, 5]] * 4, [1, 1, 2, 1])
    >>> data = AnnotatedSet(ImageTable.from_sizes([1, 2], [10, 10], [10, 10]), {1: "a", 2: "b"}, gt)
    >>> max_boxes_per_image(None), max_boxes_per_image(data)
    (None, 3)
    """
    if data is None:
        return None
    ids = data.ground_truth.image_ids
    if len(ids) == 0:
        return 0
    return int(np.unique(ids, return_counts=True)[1].max())


def config_findings(
    config: Any,
    pipeline_path: str | None = None,
    *,
    eval_max_boxes: int | None = None,
    recipe: str | None = None,
) -> list[Finding]:
    """Every config check of this module (see the module docstring), then the learning-rate
    schedule checks (:func:`tfod_tools.diagnostics.findings.training.schedule_findings`).

    ``eval_max_boxes`` is the most ground-truth boxes of one eval image (without it the
    detection-count check is skipped); ``recipe`` the ``tfod balance`` recipe in use (default: the
    one the balance manifest beside the train records names). What the config points at and cannot
    be read (a missing checkpoint, a broken manifest) only switches its check off; an unknown
    ``recipe`` raises :class:`TfodError`.
    """
    found = [
        learning_rate_vs_batch_size(config, pipeline_path),
        fine_tune_checkpoint_check(config, pipeline_path),
        augmentation_contradicts_recipe(config, pipeline_path, recipe),
        max_detections_below_ground_truth(config, pipeline_path, eval_max_boxes),
        eval_batch_size_above_one(config, pipeline_path),
    ]
    return [f for f in found if f is not None] + schedule_findings(config, pipeline_path)
