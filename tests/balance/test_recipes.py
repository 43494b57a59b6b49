"""Shipped recipes, validation (refused / invalid transforms named) and every transform on boxes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tfod_tools.data.balance.recipes import (
    LABEL_FIELD,
    RECIPES,
    iter_transform_dicts,
    load_recipe,
    parse_recipe,
    recipe_text,
)
from tfod_tools.errors import TfodError


def _all_transforms() -> list[tuple[str, dict[str, Any]]]:
    """Every leaf transform of every shipped recipe, switch transforms included."""
    out = []
    for name in RECIPES:
        data = yaml.safe_load(recipe_text(name))
        for spec in iter_transform_dicts(data["albumentations"]["transform"]["transforms"]):
            out.append((name, dict(spec)))
        for switch in (data.get("switches") or {}).values():
            for spec in iter_transform_dicts(switch["transforms"]):
                out.append((name, dict(spec)))
    return out


TRANSFORMS = _all_transforms()


def _recipe(*transforms: dict[str, Any], **header: Any) -> dict[str, Any]:
    return {
        "name": "test",
        **header,
        "albumentations": {"transform": {"__class_fullname__": "Compose", "transforms": list(transforms)}},
    }


@pytest.mark.parametrize("name", RECIPES)
def test_shipped_recipe_header_and_round_trip(name: str) -> None:
    recipe = load_recipe(name)
    assert recipe.name == name and recipe.purpose and recipe.rationale
    serialised = recipe.albumentations_dict()
    assert serialised["transform"]["__class_fullname__"] == "Compose"
    assert serialised["transform"]["bbox_params"]["format"] == "albumentations"
    assert serialised["transform"]["bbox_params"]["label_fields"] == [LABEL_FIELD]
    # A.to_dict output (bbox_params inline, every default spelled out) is itself a valid recipe.
    again = parse_recipe({"name": name, "albumentations": serialised})
    assert again.albumentations_dict() == serialised
    assert again.sha256() != "" and load_recipe(name).sha256() == recipe.sha256()


def test_chest_xray_has_no_vertical_flip_or_rot90_and_hflip_only_by_switch() -> None:
    names = [t["__class_fullname__"] for t in iter_transform_dicts(load_recipe("chest-xray").transforms)]
    assert not {"VerticalFlip", "RandomRotate90", "HorizontalFlip", "SquareSymmetry"} & set(names)
    assert {"Affine", "RandomBrightnessContrast", "RandomGamma", "CLAHE", "GaussNoise"} <= set(names)
    flipped = load_recipe("chest-xray", enable=["hflip"])
    assert flipped.switches == {"hflip": True}
    assert "HorizontalFlip" in [t["__class_fullname__"] for t in flipped.transforms]
    assert flipped.sha256() != load_recipe("chest-xray").sha256()
    with pytest.raises(TfodError, match="no switch vflip"):
        load_recipe("chest-xray", enable=["vflip"])


@pytest.mark.parametrize(
    ("recipe", "spec"), TRANSFORMS, ids=[f"{r}-{t['__class_fullname__']}" for r, t in TRANSFORMS]
)
@pytest.mark.parametrize("channels", [1, 3])
def test_every_shipped_transform_keeps_boxes_valid(recipe: str, spec: dict[str, Any], channels: int) -> None:
    one = parse_recipe(_recipe({**spec, "p": 1.0}, bbox_params=load_recipe(recipe).bbox_params))
    compose = one.build()
    rng = np.random.default_rng(0)
    shape = (72, 96) if channels == 1 else (72, 96, 3)
    image = rng.integers(0, 256, size=shape, dtype=np.uint8)
    boxes = np.array([[0.1, 0.2, 0.4, 0.5], [0.5, 0.5, 0.95, 0.9], [0.0, 0.0, 1.0, 1.0]])
    for seed in range(5):
        compose.set_random_seed(seed)
        out = compose(image=image, bboxes=boxes, **{LABEL_FIELD: np.arange(3)})
        assert out["image"].dtype == np.uint8 and out["image"].ndim == image.ndim
        got = np.asarray(out["bboxes"]).reshape(-1, 4)
        kept = np.asarray(out[LABEL_FIELD]).reshape(-1)
        assert len(got) == len(kept) >= 1  # the full-image box always survives
        assert len(set(kept.tolist())) == len(kept) and set(kept.tolist()) <= {0, 1, 2}
        assert np.all((got >= 0.0) & (got <= 1.0))
        assert np.all(got[:, 2] > got[:, 0]) and np.all(got[:, 3] > got[:, 1])


@pytest.mark.parametrize(
    "name", ["ElasticTransform", "GridDistortion", "PiecewiseAffine", "OpticalDistortion", "Normalize"]
)
def test_box_unsafe_transform_is_refused_by_name(name: str) -> None:
    with pytest.raises(TfodError, match=f"transform {name} is refused"):
        parse_recipe(_recipe({"__class_fullname__": "HorizontalFlip"}, {"__class_fullname__": name}))


def test_transform_whose_targets_lack_bboxes_is_refused() -> None:
    with pytest.raises(TfodError, match="CubicSymmetry cannot carry boxes"):
        parse_recipe(_recipe({"__class_fullname__": "CubicSymmetry"}))


def test_refused_transform_inside_oneof_is_found() -> None:
    nested = {
        "__class_fullname__": "OneOf",
        "transforms": [{"__class_fullname__": "VerticalFlip"}, {"__class_fullname__": "GridDistortion"}],
    }
    with pytest.raises(TfodError, match=r"transforms\[0\] \(OneOf\)\.transforms\[1\].*GridDistortion"):
        parse_recipe(_recipe(nested))


def test_pixel_only_transforms_are_accepted() -> None:
    recipe = parse_recipe(_recipe({"__class_fullname__": "CLAHE"}, {"__class_fullname__": "GaussNoise"}))
    assert [t["__class_fullname__"] for t in recipe.transforms] == ["CLAHE", "GaussNoise"]


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ({"__class_fullname__": "Affine", "rotate": "abc"}, r"invalid parameter 'rotate' of Affine"),
        ({"__class_fullname__": "Affine", "rotat": 5}, r"unknown parameter 'rotat' of Affine"),
        ({"__class_fullname__": "GaussNoise", "std_range": [0.5, 0.1]}, r"invalid parameter 'std_range'"),
        ({"__class_fullname__": "HorizontalFlip", "p": 2}, r"invalid parameter 'p' of HorizontalFlip"),
        ({"__class_fullname__": "CLAHE", "clip_limit": -1}, r"invalid parameter 'clip_limit' of CLAHE"),
        ({"__class_fullname__": "NoSuchTransform"}, r"unknown transform 'NoSuchTransform'"),
        ({"p": 0.5}, r"missing __class_fullname__"),
    ],
)
def test_invalid_transform_names_transform_and_parameter(spec: dict[str, Any], pattern: str) -> None:
    with pytest.raises(TfodError, match=pattern) as info:
        parse_recipe(_recipe({"__class_fullname__": "VerticalFlip"}, spec), source="my.yaml")
    assert "\n" not in str(info.value) and str(info.value).startswith("my.yaml: ")


@pytest.mark.parametrize(
    ("header", "pattern"),
    [
        ({"bbox_params": {"min_visiblity": 0.3}}, "unknown bbox_params parameter 'min_visiblity'"),
        ({"bbox_params": {"min_visibility": 3}}, "invalid bbox_params 'min_visibility'"),
    ],
)
def test_invalid_box_parameters(header: dict[str, Any], pattern: str) -> None:
    with pytest.raises(TfodError, match=pattern):
        parse_recipe(_recipe({"__class_fullname__": "VerticalFlip"}, **header))


def test_recipe_file_errors(tmp_path: Path) -> None:
    with pytest.raises(TfodError, match="recipe not found"):
        load_recipe(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(TfodError, match="not valid YAML"):
        load_recipe(bad)
    bad.write_text("name: x\nalbumentations: {transform: {__class_fullname__: OneOf, transforms: []}}\n")
    with pytest.raises(TfodError, match="top-level transform must be a Compose"):
        load_recipe(bad)
    good = tmp_path / "mine.yaml"
    good.write_text(yaml.safe_dump(_recipe({"__class_fullname__": "VerticalFlip", "p": 1.0})))
    assert load_recipe(good).source == str(good)
