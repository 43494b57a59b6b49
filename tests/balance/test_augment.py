"""One augmented copy: boxes valid and paired with their labels, channels/format kept, seeded."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfod_tools.data.balance.augment import (
    Augmenter,
    BadImageError,
    copy_seed,
    decode_pixels,
    encode_pixels,
)
from tfod_tools.data.balance.recipes import RECIPES, load_recipe, parse_recipe
from tfod_tools.data.records import ImageRecord

LABELS = {1: "cat", 2: "dog", 3: "bird"}
AUGMENTERS = {name: Augmenter(load_recipe(name)) for name in RECIPES}
AUGMENTERS["chest-xray+hflip"] = Augmenter(load_recipe("chest-xray", enable=["hflip"]))


@st.composite
def _records(draw: st.DrawFn) -> ImageRecord:
    width = draw(st.integers(16, 80))
    height = draw(st.integers(16, 80))
    channels = draw(st.sampled_from([1, 3]))
    fmt = draw(st.sampled_from(["jpeg", "png"]))
    n = draw(st.integers(0, 5))
    boxes = []
    for _ in range(n):
        x1 = draw(st.integers(0, width - 2))
        y1 = draw(st.integers(0, height - 2))
        boxes.append([x1, y1, draw(st.integers(x1 + 1, width)), draw(st.integers(y1 + 1, height))])
    classes = draw(st.lists(st.sampled_from(sorted(LABELS)), min_size=n, max_size=n))
    seed = draw(st.integers(0, 1000))
    shape = (height, width) if channels == 1 else (height, width, 3)
    pixels = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    return ImageRecord.from_pixels(
        encode_pixels(pixels, fmt),
        width=width,
        height=height,
        boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        classes=classes,
        label_map=LABELS,
        format=fmt,
        source_id=f"img-{seed}",
        filename=f"img-{seed}.{fmt}",
        difficult=list(range(n)),  # a unique tag per box: shows which input box each output box is
    )


@settings(max_examples=40, deadline=None)
@given(_records(), st.sampled_from(sorted(AUGMENTERS)), st.integers(0, 2**31), st.integers(1, 5))
def test_copy_keeps_boxes_valid_and_paired(record: ImageRecord, recipe: str, seed: int, k: int) -> None:
    pixels = decode_pixels(record)
    out = AUGMENTERS[recipe].copy(record, pixels, seed=seed, index=3, copy=k)
    new = out.record
    new.check()  # every per-object column has one value per box
    coords = np.asarray(new.xmin + new.ymin + new.xmax + new.ymax)
    assert np.all((coords >= 0.0) & (coords <= 1.0))
    assert all(a < b for a, b in zip(new.xmin, new.xmax, strict=True))
    assert all(a < b for a, b in zip(new.ymin, new.ymax, strict=True))
    # Pairing: output box j came from input box difficult[j]; its class and text came along with it.
    for j, tag in enumerate(new.difficult):
        assert new.class_label[j] == record.class_label[tag]
        assert new.class_text[j] == LABELS[new.class_label[j]]
    assert len(set(new.difficult)) == len(new.difficult)
    assert new.num_boxes + sum(out.dropped.values()) == record.num_boxes
    for text, n in out.dropped.items():  # keyed as the API reads the class: the text first
        kept = sum(1 for c in new.class_text if c == text)
        assert kept + n == sum(1 for c in record.class_text if c == text)
    # Channels and format kept; size recorded; unique ids.
    back = decode_pixels(new)
    assert back.ndim == pixels.ndim and back.shape[:2] == (new.height, new.width)
    assert new.format == record.format and new.encoded[:4] == record.encoded[:4]
    assert new.source_id == f"{record.source_id}#aug{k}" and new.key_sha256 != record.key_sha256
    assert ImageRecord.decode(new.encode()) == new


def test_same_seed_same_bytes_other_copy_other_bytes() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, size=(64, 64), dtype=np.uint8)
    record = ImageRecord.from_pixels(
        encode_pixels(pixels, "jpeg"),
        width=64,
        height=64,
        boxes=[[8, 8, 40, 40]],
        classes=[1],
        label_map=LABELS,
    )
    aug = Augmenter(load_recipe("chest-xray"))
    first = aug.copy(record, pixels, seed=7, index=0, copy=1).record
    np.random.seed(999)  # global RNG state must not matter
    assert Augmenter(load_recipe("chest-xray")).copy(record, pixels, seed=7, index=0, copy=1).record == first
    others = {aug.copy(record, pixels, seed=7, index=0, copy=k).record.encoded for k in range(2, 6)}
    assert first.encoded not in others and len(others) > 1
    assert copy_seed(7, 0, 1) != copy_seed(7, 1, 0) != copy_seed(8, 0, 1)


def test_vertical_flip_moves_boxes_exactly() -> None:
    recipe = parse_recipe(
        {
            "name": "vflip",
            "albumentations": {
                "transform": {
                    "__class_fullname__": "Compose",
                    "transforms": [{"__class_fullname__": "VerticalFlip", "p": 1.0}],
                }
            },
        }
    )
    pixels = np.zeros((40, 50, 3), np.uint8)
    record = ImageRecord.from_pixels(
        encode_pixels(pixels, "png"),
        width=50,
        height=40,
        boxes=[[5, 4, 25, 12], [0, 20, 50, 40]],
        classes=[2, 3],
        label_map=LABELS,
        format="png",
    )
    new = Augmenter(recipe).copy(record, pixels, seed=0, index=0, copy=1).record
    np.testing.assert_allclose(new.ymin, [1 - 12 / 40, 0.0], atol=1e-6)
    np.testing.assert_allclose(new.ymax, [1 - 4 / 40, 0.5], atol=1e-6)
    np.testing.assert_allclose(new.xmin, [0.1, 0.0], atol=1e-6)
    assert new.class_text == ("dog", "bird") and new.area == pytest.approx([160.0, 1000.0])


def test_undecodable_image_is_reported() -> None:
    record = ImageRecord(encoded=b"not an image", format="jpeg", height=4, width=4)
    with pytest.raises(BadImageError, match="does not decode"):
        decode_pixels(record)
    with pytest.raises(BadImageError, match="no image bytes"):
        decode_pixels(ImageRecord(encoded=b""))
    with pytest.raises(BadImageError, match="cannot encode format 'tiff'"):
        encode_pixels(np.zeros((2, 2), np.uint8), "tiff")
