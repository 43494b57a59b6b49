"""Augmentation recipes for ``tfod balance``: load, validate, serialise.

A recipe is a YAML file with a short header (``name``, ``purpose``, ``rationale``, ``bbox_params``,
``switches``) and an ``albumentations`` block in albumentations' own serialisation format (the
structure of ``A.to_dict`` / ``A.from_dict``). The shipped recipes are the YAML files of the
package data folder ``tfod_tools/resources/augment`` (:func:`recipe_names` lists them; a new recipe
is one new file there): ``aerial``, ``chest-xray`` and ``natural``.

Validation builds every transform one by one and refuses, naming the transform (and parameter):

* a class albumentations does not know, or one that cannot be serialised;
* an unknown or invalid parameter (albumentations silently ignores unknown ones; we do not);
* a transform that cannot carry boxes: a non-rigid warp (``ElasticTransform``, ``GridDistortion``,
  ...) whose boxes are only approximate, a geometric transform whose albumentations targets lack
  bboxes, or one that needs extra inputs or changes the image type (``Normalize``, ``Mosaic``, ...).

Pixel-only transforms (``ImageOnlyTransform``: noise, CLAHE, colour) are accepted: they do not
move pixels, so boxes stay valid. A switch (``--enable NAME``; ``--allow-hflip`` for ``hflip``)
prepends its transforms to the top-level ``Compose``.

>>> recipe = load_recipe("chest-xray")
>>> recipe.name, [t["__class_fullname__"] for t in recipe.transforms][:2]
('chest-xray', ['Affine', 'RandomBrightnessContrast'])
>>> flipped = load_recipe("chest-xray", enable=["hflip"])
>>> "HorizontalFlip" in [t["__class_fullname__"] for t in flipped.transforms]
True
>>> len(recipe.sha256())
64
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tfod_tools.errors import TfodError

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__all__ = [
    "BOX_UNSAFE",
    "LABEL_FIELD",
    "RECIPES",
    "Recipe",
    "iter_transform_dicts",
    "load_recipe",
    "parse_recipe",
    "recipe_names",
    "recipe_text",
]


def _recipe_folder() -> Any:
    return resources.files("tfod_tools") / "resources" / "augment"


def recipe_names() -> tuple[str, ...]:
    """The shipped recipes: every ``NAME.yaml`` in ``tfod_tools/resources/augment``, sorted.

    >>> recipe_names()
    ('aerial', 'chest-xray', 'natural')
    """
    suffix = ".yaml"
    names = (
        entry.name[: -len(suffix)] for entry in _recipe_folder().iterdir() if entry.name.endswith(suffix)
    )
    return tuple(sorted(names))


RECIPES: tuple[str, ...] = recipe_names()
"""Names of the shipped recipes (``tfod_tools/resources/augment/NAME.yaml``), read at import."""

LABEL_FIELD = "box_index"
"""The ``BboxParams`` label field: each box carries its row index, so every per-object column
(class, difficult, crowd, ...) follows its box through the pipeline."""

BOX_UNSAFE: dict[str, str] = {
    "ElasticTransform": "a non-rigid warp: boxes of warped objects are only approximate",
    "GridDistortion": "a non-rigid warp: boxes of warped objects are only approximate",
    "GridElasticDeform": "a non-rigid warp: boxes of warped objects are only approximate",
    "OpticalDistortion": "a non-rigid warp: boxes of warped objects are only approximate",
    "PiecewiseAffine": "a non-rigid warp: boxes of warped objects are only approximate",
    "ThinPlateSpline": "a non-rigid warp: boxes of warped objects are only approximate",
    "Mosaic": "needs extra images (metadata) that tfod balance does not provide",
    "FDA": "needs reference images (metadata) that tfod balance does not provide",
    "HistogramMatching": "needs reference images (metadata) that tfod balance does not provide",
    "PixelDistributionAdaptation": "needs reference images (metadata) that tfod balance does not provide",
    "OverlayElements": "needs overlay metadata that tfod balance does not provide",
    "TextImage": "needs text metadata that tfod balance does not provide",
    "Normalize": "outputs float images; records store encoded 8-bit images",
    "ToFloat": "outputs float images; records store encoded 8-bit images",
    "FromFloat": "expects float images; records hold 8-bit images",
    "ToRGB": "changes the number of channels; copies keep the source's channels",
    "Lambda": "is not serialisable",
}
"""Transforms refused by name, with the reason."""

_COMPOSES = ("Compose", "OneOf", "SomeOf", "Sequential", "OneOrOther", "SelectiveChannelTransform")
_BBOX_KEYS = (
    "min_visibility",
    "min_area",
    "min_width",
    "min_height",
    "clip",
    "filter_invalid_bboxes",
    "max_accept_ratio",
    "check_each_transform",
)
_DEFAULT_BBOX: dict[str, Any] = {"min_visibility": 0.0, "clip": True}


def _albumentations() -> Any:
    import albumentations

    return albumentations


def recipe_text(name: str) -> str:
    """The YAML text of a shipped recipe.

    >>> recipe_text("aerial").count("RandomRotate90")
    1
    """
    if name not in RECIPES:
        raise TfodError(f"unknown recipe {name!r}", fix=f"use one of {', '.join(RECIPES)} or a .yaml file")
    resource = _recipe_folder() / f"{name}.yaml"
    return resource.read_text(encoding="utf-8")


@dataclass(frozen=True)
class Recipe:
    """A validated recipe: header, box parameters, enabled switches and the transform list."""

    name: str
    purpose: str
    rationale: str
    bbox_params: Mapping[str, Any]
    transforms: tuple[Mapping[str, Any], ...]
    switches: Mapping[str, bool] = field(default_factory=dict)
    source: str = ""

    def albumentations_dict(self) -> dict[str, Any]:
        """The pipeline in albumentations' serialisation format (what ``A.to_dict`` returns)."""
        return dict(_albumentations().to_dict(self.build()))

    def to_dict(self) -> dict[str, Any]:
        """The recipe as JSON-ready data: header, switches and the full ``A.to_dict`` pipeline."""
        return {
            "name": self.name,
            "purpose": self.purpose,
            "rationale": self.rationale,
            "source": self.source,
            "switches": dict(self.switches),
            "albumentations": self.albumentations_dict(),
        }

    def sha256(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`to_dict` without ``source``."""
        data = {k: v for k, v in self.to_dict().items() if k != "source"}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode("utf-8")).hexdigest()

    def build(self, seed: int | None = None) -> Any:
        """A fresh ``albumentations.Compose`` with bbox-aware parameters (``albumentations`` format)."""
        A = _albumentations()
        children = [_build(t, f"{self.name}: transforms[{i}]") for i, t in enumerate(self.transforms)]
        params = A.BboxParams(format="albumentations", label_fields=[LABEL_FIELD], **dict(self.bbox_params))
        with warnings.catch_warnings():
            # A pixel-only recipe carries boxes unchanged; albumentations warns that nothing moves them.
            warnings.filterwarnings("ignore", message="Got processor for bboxes", category=UserWarning)
            return A.Compose(children, bbox_params=params, seed=seed)


def iter_transform_dicts(transforms: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Every leaf transform dict of a (nested) transform list, in order.

    >>> [t["__class_fullname__"] for t in iter_transform_dicts(load_recipe("aerial").transforms)][:2]
    ['HorizontalFlip', 'VerticalFlip']
    """
    for item in transforms:
        if item.get("__class_fullname__") in _COMPOSES:
            yield from iter_transform_dicts(item.get("transforms", []))
        else:
            yield item


def _pydantic_detail(exc: Exception) -> tuple[str | None, str]:
    """``(parameter, message)`` of a validation error (pydantic's, possibly re-raised as text)."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            loc = first.get("loc") or ()
            return (str(loc[0]) if loc else None), str(first.get("msg", exc))
        except Exception:  # pragma: no cover - not a pydantic error after all
            pass
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) >= 3 and "validation error" in lines[0]:
        # "N validation errors for InitSchema" / "field[.variant]" / "message [type=...]"
        return lines[1].split(".")[0].split(" ")[0], lines[2].split(" [type=")[0]
    return None, " ".join(str(exc).split())[:200]


def _transform_class(name: Any, where: str) -> Any:
    from albumentations.core.serialization import SERIALIZABLE_REGISTRY

    if not isinstance(name, str) or not name:
        raise TfodError(f"{where}: missing __class_fullname__", fix="name the transform class")
    short = name.rsplit(".", 1)[-1]
    if short in BOX_UNSAFE:
        raise TfodError(f"{where}: transform {short} is refused: {BOX_UNSAFE[short]}", fix="remove it")
    cls = SERIALIZABLE_REGISTRY.get(name) or SERIALIZABLE_REGISTRY.get(short)
    if cls is None:
        raise TfodError(
            f"{where}: unknown transform {name!r}",
            fix="use an albumentations transform class name, e.g. Affine",
        )
    return cls


def _check_boxes(cls: Any, name: str, where: str) -> None:
    A = _albumentations()
    from albumentations.core.type_definitions import Targets

    if issubclass(cls, A.ImageOnlyTransform):
        return  # pixel-only: boxes are untouched
    targets = getattr(cls, "_targets", ())
    targets = targets if isinstance(targets, tuple) else (targets,)
    if Targets.BBOXES not in targets:
        raise TfodError(
            f"{where}: transform {name} cannot carry boxes (its albumentations targets lack bboxes)",
            fix="remove it or use a box-aware transform",
        )


def _build(spec: Mapping[str, Any], where: str) -> Any:
    """Build one (possibly composite) transform, validating names and parameters."""
    if not isinstance(spec, Mapping):
        raise TfodError(f"{where}: a transform must be a mapping, got {type(spec).__name__}")
    name = spec.get("__class_fullname__")
    cls = _transform_class(name, where)
    short = cls.__name__
    where = f"{where} ({short})"
    args = {k: v for k, v in spec.items() if k not in ("__class_fullname__", "id")}
    allowed = set(inspect.signature(cls.__init__).parameters) - {"self", "args", "kwargs"}
    for key in args:
        if key not in allowed:
            raise TfodError(
                f"{where}: unknown parameter {key!r} of {short}",
                fix=f"use one of {', '.join(sorted(allowed))}",
            )
    if short in _COMPOSES:
        children = args.get("transforms", [])
        if not isinstance(children, list) or not children:
            raise TfodError(f"{where}: parameter 'transforms' of {short} must be a non-empty list")
        args["transforms"] = [_build(c, f"{where}.transforms[{i}]") for i, c in enumerate(children)]
        for key in ("bbox_params", "keypoint_params", "additional_targets"):
            args.pop(key, None)
    else:
        _check_boxes(cls, short, where)
    try:
        return cls(**args)
    except (ValueError, TypeError) as exc:
        param, message = _pydantic_detail(exc)
        what = f"parameter {param!r} of {short}" if param else short
        raise TfodError(f"{where}: invalid {what}: {message}", fix="see the albumentations docs") from None


def _bbox_params(header: Any, pipeline: Mapping[str, Any], where: str) -> dict[str, Any]:
    merged = dict(_DEFAULT_BBOX)
    inline = pipeline.get("bbox_params")
    if isinstance(inline, Mapping):  # as A.to_dict writes them; the header's values win
        merged.update({k: v for k, v in inline.items() if k in _BBOX_KEYS})
    if header is not None:
        if not isinstance(header, Mapping):
            raise TfodError(f"{where}: bbox_params must be a mapping")
        for key, value in header.items():
            if key not in _BBOX_KEYS:
                raise TfodError(
                    f"{where}: unknown bbox_params parameter {key!r}",
                    fix=f"use one of {', '.join(_BBOX_KEYS)}",
                )
            merged[key] = value
    for key, low, high in (
        ("min_visibility", 0.0, 1.0),
        ("min_area", 0.0, None),
        ("min_width", 0.0, None),
        ("min_height", 0.0, None),
    ):
        value = merged.get(key, low)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or value < low
            or (high is not None and value > high)
        ):
            bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise TfodError(f"{where}: invalid bbox_params {key!r}: {value!r} (must be a number {bounds})")
    try:
        _albumentations().BboxParams(format="albumentations", label_fields=[LABEL_FIELD], **merged)
    except (ValueError, TypeError) as exc:
        param, message = _pydantic_detail(exc)
        raise TfodError(f"{where}: invalid bbox_params{f' {param!r}' if param else ''}: {message}") from None
    return merged


def parse_recipe(data: Any, *, source: str = "<recipe>", enable: Sequence[str] = ()) -> Recipe:
    """Validate recipe data (the parsed YAML) and return a :class:`Recipe`.

    >>> r = parse_recipe({"name": "t", "albumentations": {"transform": {"__class_fullname__": "Compose",
    ...     "transforms": [{"__class_fullname__": "VerticalFlip", "p": 1.0}]}}})
    >>> import numpy as np
    >>> out = r.build()(image=np.zeros((4, 4), "uint8"), bboxes=np.array([[0, 0, 0.5, 0.5]]),
    ...                 box_index=np.array([0]))
    >>> out["bboxes"].tolist()
    [[0.0, 0.5, 0.5, 1.0]]
    >>> parse_recipe({"name": "t", "albumentations": {"transform": {"__class_fullname__": "Compose",
    ...     "transforms": [{"__class_fullname__": "GridDistortion"}]}}})
    Traceback (most recent call last):
    tfod_tools.errors.TfodError: <recipe>: t: transforms[0]: transform GridDistortion is refused: ...
    """
    if not isinstance(data, Mapping):
        raise TfodError("a recipe must be a YAML mapping", path=source, fix="start from a shipped recipe")
    name = str(data.get("name") or Path(source).stem)
    where = f"{name}"
    album = data.get("albumentations")
    if not isinstance(album, Mapping) or not isinstance(album.get("transform"), Mapping):
        raise TfodError(
            "missing 'albumentations: {transform: {__class_fullname__: Compose, ...}}'",
            path=source,
            fix="write the pipeline in albumentations' A.to_dict format",
        )
    top = album["transform"]
    if top.get("__class_fullname__") != "Compose":
        raise TfodError("the top-level transform must be a Compose", path=source)
    transforms = list(top.get("transforms") or [])
    switches_spec = data.get("switches") or {}
    if not isinstance(switches_spec, Mapping):
        raise TfodError("switches must be a mapping", path=source)
    unknown = sorted(set(enable) - set(switches_spec))
    if unknown:
        raise TfodError(
            f"recipe {name} has no switch {', '.join(unknown)}",
            path=source,
            fix=f"switches: {', '.join(switches_spec) or 'none'}",
        )
    switches: dict[str, bool] = {}
    prepend: list[Any] = []
    for key, spec in switches_spec.items():
        on = bool(spec.get("default", False)) or key in enable
        switches[str(key)] = on
        if on:
            prepend.extend(spec.get("transforms") or [])
    transforms = copy.deepcopy(prepend + transforms)
    if not transforms:
        raise TfodError("the recipe has no transforms", path=source)
    try:
        bbox = _bbox_params(data.get("bbox_params"), top, where)
        recipe = Recipe(
            name=name,
            purpose=str(data.get("purpose", "")),
            rationale=str(data.get("rationale", "")),
            bbox_params=bbox,
            transforms=tuple(transforms),
            switches=switches,
            source=source,
        )
        recipe.build()  # validates every transform, naming the first bad one
    except TfodError as exc:
        raise TfodError(exc.message, path=source, fix=exc.fix) from None
    return recipe


def load_recipe(name_or_path: str | Path, *, enable: Sequence[str] = ()) -> Recipe:
    """Load a shipped recipe by name or a recipe YAML file, validated (see module docs)."""
    text_name = str(name_or_path)
    if text_name in RECIPES:
        text, source = recipe_text(text_name), text_name
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise TfodError(
                "recipe not found",
                path=path,
                fix=f"use one of {', '.join(RECIPES)} or an existing .yaml file",
            )
        text, source = path.read_text(encoding="utf-8"), str(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())[:120]
        raise TfodError(
            f"not valid YAML{at}: {problem}",
            path=source,
            fix="fix the YAML syntax there (a recipe is albumentations' A.to_dict output saved as YAML)",
        ) from None
    return parse_recipe(data, source=source, enable=enable)
