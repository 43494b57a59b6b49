"""Bbox-aware augmentation of one :class:`~tfod_tools.data.records.ImageRecord`.

An :class:`Augmenter` holds one ``albumentations.Compose`` built from a recipe. :meth:`Augmenter.copy`
makes copy ``k`` of image ``i``: it seeds the Compose (and numpy's and OpenCV's global RNGs, which
albumentations does not use in 2.x but a custom transform might) from :func:`copy_seed`, so a copy
depends only on ``(seed, i, k)`` and never on which process or in which order it was made.

Boxes travel in albumentations' ``albumentations`` format (normalised ``x_min, y_min, x_max, y_max``,
the TF OD API's layout) with each box's row index as the label field, so classes, ``difficult``,
``is_crowd``, ``group_of``, ``weight`` and texts stay paired with their box; boxes removed by
``min_visibility`` / ``min_area`` (or degenerate in the source) are counted per class. Images keep
their channels (1-channel JPEG stays 1-channel) and are re-encoded in the source format. A copy gets
a new source id ``SOURCE#augK`` and ``key/sha256`` = SHA-256 of the encoded image followed by that
source id (unique even if two copies come out pixel-identical). Keys outside the decoder's set
(masks, keypoints) are not carried into copies: they would no longer match the moved pixels.

>>> import numpy as np
>>> from tfod_tools.data.balance.recipes import load_recipe
>>> pixels = np.full((40, 60), 128, np.uint8)
>>> rec = ImageRecord.from_pixels(encode_pixels(pixels, "png"), width=60, height=40,
...     boxes=[[6, 4, 30, 20]], classes=[2], label_map={1: "a", 2: "b"}, format="png", source_id="x")
>>> out = Augmenter(load_recipe("aerial")).copy(rec, decode_pixels(rec), seed=0, index=0, copy=1)
>>> out.record.source_id, out.record.class_text, decode_pixels(out.record).ndim
('x#aug1', ('b',), 2)
>>> all(0.0 <= v <= 1.0 for v in out.record.xmin + out.record.xmax + out.record.ymin + out.record.ymax)
True
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from tfod_tools.data.balance.recipes import LABEL_FIELD, Recipe
from tfod_tools.data.classes import ClassKey, class_keys
from tfod_tools.data.records import ImageRecord

__all__ = [
    "AugmentedCopy",
    "Augmenter",
    "BadImageError",
    "box_classes",
    "copy_seed",
    "decode_pixels",
    "encode_pixels",
]

_EXTENSIONS = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png", "bmp": ".bmp"}
JPEG_QUALITY = 95
_PER_OBJECT = ("class_text", "class_label", "area", "is_crowd", "difficult", "group_of", "weight")


class BadImageError(ValueError):
    """An image that cannot be decoded (or re-encoded) for augmentation."""


def copy_seed(seed: int, index: int, copy: int) -> int:
    """The 32-bit seed of copy ``copy`` of image ``index``; a pure function of its arguments.

    >>> copy_seed(0, 5, 1) == copy_seed(0, 5, 1), copy_seed(0, 5, 1) == copy_seed(0, 5, 2)
    (True, False)
    """
    return int(np.random.SeedSequence([seed, index, copy]).generate_state(1)[0])


def _cv2() -> Any:
    import cv2

    return cv2


def decode_pixels(record: ImageRecord) -> npt.NDArray[np.uint8]:
    """Decode a record's image: ``(H, W)`` gray, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA uint8.

    Raises :class:`BadImageError` when the bytes do not decode or the image is not 8-bit.
    """
    cv2 = _cv2()
    if not record.encoded:
        raise BadImageError("no image bytes (image/encoded is empty)")
    pixels = cv2.imdecode(np.frombuffer(record.encoded, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.size == 0:
        raise BadImageError(f"image/encoded does not decode as {record.format or 'an image'}")
    if pixels.dtype != np.uint8:
        raise BadImageError(f"{pixels.dtype} pixels; only 8-bit images can be augmented")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    elif pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGBA)
    return np.ascontiguousarray(pixels)


def encode_pixels(pixels: npt.NDArray[np.uint8], image_format: str) -> bytes:
    """Encode ``(H, W)``, RGB or RGBA uint8 pixels as ``jpeg`` (quality 95), ``png`` or ``bmp``.

    >>> encode_pixels(np.zeros((2, 2), np.uint8), "png")[:4]
    b'\\x89PNG'
    """
    cv2 = _cv2()
    ext = _EXTENSIONS.get(image_format.lower())
    if ext is None:
        raise BadImageError(f"cannot encode format {image_format!r}; use jpeg, png or bmp")
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    elif pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA)
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if ext == ".jpg" else []
    ok, buffer = cv2.imencode(ext, np.ascontiguousarray(pixels), params)
    if not ok:
        raise BadImageError(f"OpenCV could not encode a {pixels.shape} image as {image_format}")
    return bytes(buffer.tobytes())


@dataclass(frozen=True)
class AugmentedCopy:
    """One augmented copy and the boxes it lost, per class (id, or text without ids)."""

    record: ImageRecord
    dropped: dict[int | str, int] = field(default_factory=dict)


def box_classes(record: ImageRecord) -> list[ClassKey]:
    """Each box's class key: its class text, or its label for a record without texts (the API's rule,
    :func:`tfod_tools.data.classes.class_keys`; resolved against the label map by the caller)."""
    return class_keys(record.class_text, record.class_label)


def _f32(values: npt.NDArray[np.float64]) -> tuple[float, ...]:
    return tuple(values.astype(np.float32).astype(np.float64).tolist())


class Augmenter:
    """Applies a recipe's Compose to records, one seeded copy at a time (see module docs)."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self.compose = recipe.build(seed=0)

    def _seed(self, value: int) -> None:
        self.compose.set_random_seed(value)
        np.random.seed(value)
        random.seed(value)
        _cv2().setRNGSeed(value & 0x7FFFFFFF)

    def copy(
        self, record: ImageRecord, pixels: npt.NDArray[np.uint8], *, seed: int, index: int, copy: int
    ) -> AugmentedCopy:
        """Copy ``copy`` (>= 1) of image ``index``; ``pixels`` is :func:`decode_pixels` of it."""
        boxes = np.asarray([record.xmin, record.ymin, record.xmax, record.ymax], dtype=np.float64)
        boxes = boxes.reshape(4, -1).T
        labels = box_classes(record)
        clipped = np.clip(boxes, 0.0, 1.0)
        valid = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
        index_in = np.flatnonzero(valid).astype(np.int64)
        self._seed(copy_seed(seed, index, copy))
        out = self.compose(image=pixels, bboxes=clipped[index_in].reshape(-1, 4), **{LABEL_FIELD: index_in})
        image = np.ascontiguousarray(out["image"])
        if image.dtype != np.uint8 or image.ndim != pixels.ndim or image.shape[2:] != pixels.shape[2:]:
            raise BadImageError(
                f"recipe {self.recipe.name} changed the image from {pixels.dtype}{pixels.shape} "
                f"to {image.dtype}{image.shape}"
            )
        kept = np.asarray(out[LABEL_FIELD], dtype=np.int64).reshape(-1)
        new_boxes = np.clip(np.asarray(out["bboxes"], dtype=np.float64).reshape(-1, 4), 0.0, 1.0)
        dropped: dict[int | str, int] = {}
        kept_set = set(kept.tolist())
        for i, label in enumerate(labels):
            if i not in kept_set:
                dropped[label] = dropped.get(label, 0) + 1
        new_h, new_w = image.shape[:2]
        encoded = encode_pixels(image, record.format or "jpeg")
        source_id = f"{record.source_id or record.filename or f'record-{index}'}#aug{copy}"
        columns: dict[str, Any] = {}
        for name in _PER_OBJECT:
            values = getattr(record, name)
            columns[name] = tuple(values[int(k)] for k in kept) if values else ()
        if record.area:
            columns["area"] = _f32(
                (new_boxes[:, 2] - new_boxes[:, 0]) * new_w * (new_boxes[:, 3] - new_boxes[:, 1]) * new_h
            )
        stem, dot, ext = (record.filename or source_id).rpartition(".")
        filename = f"{stem}_aug{copy}.{ext}" if dot and stem else f"{record.filename or source_id}_aug{copy}"
        new = replace(
            record,
            encoded=encoded,
            height=int(new_h),
            width=int(new_w),
            filename=filename,
            source_id=source_id,
            key_sha256=hashlib.sha256(encoded + source_id.encode("utf-8")).hexdigest(),
            xmin=_f32(new_boxes[:, 0]),
            ymin=_f32(new_boxes[:, 1]),
            xmax=_f32(new_boxes[:, 2]),
            ymax=_f32(new_boxes[:, 3]),
            extra={},
            **columns,
        )
        return AugmentedCopy(new, dropped)
