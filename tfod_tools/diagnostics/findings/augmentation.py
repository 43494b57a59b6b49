"""The ``augmentation_contradicts_recipe`` config check: a flip or 90-degree rotation in
``data_augmentation_options`` that the domain recipe in use (``tfod balance``'s, found in the manifest
beside the train records) leaves out, or keeps behind a switch that is off (chest-xray's ``hflip``).

One of the checks :func:`tfod_tools.diagnostics.findings.config.config_findings` runs; it does not
import TensorFlow.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfod_tools.diagnostics.findings.batch_size import _in
from tfod_tools.diagnostics.model import Finding, table
from tfod_tools.errors import TfodError

__all__ = ["RecipeInUse", "augmentation_contradicts_recipe", "recipe_in_use"]

# API augmentation option -> the albumentations transform a recipe would use for it.
_AUGMENTATIONS = {
    "random_horizontal_flip": "HorizontalFlip",
    "random_vertical_flip": "VerticalFlip",
    "random_rotation90": "RandomRotate90",
}
# albumentations transforms that apply every flip and 90-degree rotation of the square.
_SQUARE_SYMMETRIES = ("D4", "SquareSymmetry")
_SHARD_SUFFIX = re.compile(r"-\d{5}-of-\d{5}$")


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
