"""Small synthetic TF OD API data sets, deterministic by seed (``tfod synth``).

Two kinds:

``shapes``
    Filled squares and triangles (classes ``square`` = 1, ``triangle`` = 2) on a light, noisy
    background; RGB JPEG, 128 px by default, 1-3 large (25-50 % of the side), high-contrast objects
    per image that never overlap. By default each class has its own hue family (squares warm,
    triangles cool), so a tiny SSD (ssd_mobilenet_v2, depth 0.35, 128x128) learns it in a few
    hundred steps; ``color_by_class=False`` makes the shape the only cue.
``xray-like``
    Grayscale chest-like images (torso, two dark lung fields, ribs, spine, heart shadow, noise),
    256 px by default, classes ``opacity`` = 1 (soft, larger blobs) and ``nodule`` = 2 (small round
    spots) inside the lungs. Class imbalance (``class_ratio``), the share of negative images without
    boxes (``negative_share``, exact per split) and object sizes (``min_size``/``max_size``, box side
    in pixels) are configurable. With the defaults (sides 6-80 px on 256 px images) there are no
    COCO "large" boxes (area >= 96^2), so that bucket is empty on purpose. Images are stored as
    **1-channel** (grayscale) JPEG/PNG; the API's decoder expands them to 3 channels.

Every image is drawn from its own random stream (seed, split, index), so files are byte-identical
for the same arguments and a different seed gives different images.

>>> import tempfile
>>> ds = write_synthetic_dataset(tempfile.mkdtemp(), "shapes", train_images=4, eval_images=2, seed=1)
>>> ds.train_record.name, ds.eval_record.name, ds.label_map.name
('train.record', 'eval.record', 'label_map.pbtxt')
>>> sorted(ds.class_counts["train"]), ds.images
(['square', 'triangle'], {'train': 4, 'eval': 2})
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tfod_tools.data.areas import AREA_BUCKETS, area_bucket_counts
from tfod_tools.data.records import ImageRecord, write_image_records
from tfod_tools.errors import TfodError
from tfod_tools.odapi.label_map import LabelMap, write_label_map

__all__ = [
    "KINDS",
    "SyntheticDataset",
    "SyntheticImage",
    "generate_images",
    "parse_class_ratio",
    "write_synthetic_dataset",
]

Kind = Literal["shapes", "xray-like"]
KINDS: tuple[str, ...] = ("shapes", "xray-like")
CLASSES: dict[str, tuple[str, ...]] = {"shapes": ("square", "triangle"), "xray-like": ("opacity", "nodule")}
_DEFAULT_SIZE = {"shapes": 128, "xray-like": 256}
_DEFAULT_NEGATIVE = {"shapes": 0.0, "xray-like": 0.25}
_DEFAULT_RATIO = {"shapes": (1.0, 1.0), "xray-like": (3.0, 1.0)}
_SPLITS = {"train": 0, "eval": 1}

UInt8Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class SyntheticImage:
    """One generated image: pixels, ``[x1, y1, x2, y2]`` pixel boxes and 1-based class ids."""

    pixels: UInt8Image
    boxes: npt.NDArray[np.float64]
    classes: npt.NDArray[np.int64]


@dataclass(frozen=True)
class SyntheticDataset:
    """What :func:`write_synthetic_dataset` wrote: the three paths and per-split counts."""

    kind: str
    seed: int
    train_record: Path
    eval_record: Path
    label_map: Path
    image_size: int
    images: dict[str, int]
    negative_images: dict[str, int]
    class_counts: dict[str, dict[str, int]]
    area_buckets: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per split, boxes per COCO area bucket (:func:`tfod_tools.data.areas.area_bucket_counts`)."""
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "kind": self.kind,
            "seed": self.seed,
            "train_record": str(self.train_record),
            "eval_record": str(self.eval_record),
            "label_map": str(self.label_map),
            "image_size": self.image_size,
            "images": dict(self.images),
            "negative_images": dict(self.negative_images),
            "class_counts": {k: dict(v) for k, v in self.class_counts.items()},
            "area_buckets": {k: dict(v) for k, v in self.area_buckets.items()},
            "options": dict(self.options),
        }


def parse_class_ratio(text: str | Sequence[float] | None, num_classes: int = 2) -> tuple[float, ...] | None:
    """``"3:1"`` / ``"3,1"`` / ``[3, 1]`` -> normalised weights; ``None`` stays ``None``.

    >>> parse_class_ratio("3:1")
    (0.75, 0.25)
    """
    if text is None:
        return None
    parts: list[float]
    try:
        if isinstance(text, str):
            parts = [float(p) for p in text.replace(",", ":").split(":") if p.strip()]
        else:
            parts = [float(p) for p in text]
    except ValueError:
        raise TfodError(f"class ratio {text!r} is not numbers", fix="write it like 3:1") from None
    if len(parts) != num_classes or any(not np.isfinite(p) or p < 0 for p in parts) or sum(parts) <= 0:
        raise TfodError(
            f"class ratio {text!r} needs {num_classes} non-negative weights with a positive sum",
            fix="write it like 3:1",
        )
    total = sum(parts)
    return tuple(p / total for p in parts)


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, _SPLITS[split], index]))


def _place(
    rng: np.random.Generator, size: int, w: int, h: int, taken: list[tuple[int, int, int, int]], margin: int
) -> tuple[int, int, int, int] | None:
    """A box of ``w`` x ``h`` inside the image not touching ``taken`` boxes (None after 50 tries)."""
    for _ in range(50):
        x1 = int(rng.integers(margin, max(margin + 1, size - w - margin + 1)))
        y1 = int(rng.integers(margin, max(margin + 1, size - h - margin + 1)))
        box = (x1, y1, x1 + w, y1 + h)
        if box[2] > size or box[3] > size:
            continue
        if all(
            box[2] + 2 <= t[0] or t[2] + 2 <= box[0] or box[3] + 2 <= t[1] or t[3] + 2 <= box[1]
            for t in taken
        ):
            return box
    return None


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def _shapes_image(
    rng: np.random.Generator,
    size: int,
    weights: tuple[float, ...],
    negative: bool,
    sizes: tuple[int, int],
    color_by_class: bool,
) -> SyntheticImage:
    from PIL import Image, ImageDraw

    base = int(rng.integers(185, 235))
    noise = rng.normal(0.0, 8.0, size=(size, size, 3))
    tint = rng.integers(-12, 13, size=3)
    pixels = np.clip(base + tint + noise, 0, 255).astype(np.uint8)
    img = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(img)
    boxes: list[tuple[int, int, int, int]] = []
    classes: list[int] = []
    count = 0 if negative else int(rng.integers(1, 4))
    for _ in range(count):
        cls = int(rng.choice(len(weights), p=weights)) + 1
        side = int(rng.integers(sizes[0], sizes[1] + 1))
        box = _place(rng, size, side, side, boxes, margin=1)
        if box is None:
            continue
        hue = (0.02 + 0.12 * rng.random()) if cls == 1 else (0.50 + 0.20 * rng.random())
        if not color_by_class:
            hue = rng.random()
        color = _hsv_to_rgb(hue, 0.85 + 0.15 * rng.random(), 0.55 + 0.35 * rng.random())
        x1, y1, x2, y2 = box
        if cls == 1:
            draw.rectangle([x1, y1, x2 - 1, y2 - 1], fill=color)
        else:
            draw.polygon([(x1, y2 - 1), (x2 - 1, y2 - 1), ((x1 + x2 - 1) / 2.0, y1)], fill=color)
        boxes.append(box)
        classes.append(cls)
    return SyntheticImage(
        np.asarray(img, dtype=np.uint8),
        np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        np.asarray(classes, dtype=np.int64),
    )


def _xray_image(
    rng: np.random.Generator,
    size: int,
    weights: tuple[float, ...],
    negative: bool,
    class_sizes: tuple[tuple[int, int], ...],
) -> SyntheticImage:
    import cv2

    s = size / 256.0
    img = np.full((size, size), 12.0, dtype=np.float32)
    cx = size / 2 + rng.normal(0, 3 * s)
    cy = size / 2 + rng.normal(0, 3 * s)

    def ellipse(
        target: np.ndarray,
        center: tuple[float, float],
        axes: tuple[float, float],
        value: float,
        angle: float = 0,
    ) -> None:
        c = (round(center[0]), round(center[1]))
        a = (max(1, round(axes[0])), max(1, round(axes[1])))
        cv2.ellipse(target, c, a, angle, 0, 360, float(value), -1)

    ellipse(img, (cx, cy + 10 * s), (110 * s, 125 * s), 95 + rng.normal(0, 8))  # torso
    lungs = []
    for side in (-1, 1):
        lx = cx + side * (48 + rng.normal(0, 2)) * s
        ly = cy - 5 * s + rng.normal(0, 3 * s)
        axes = ((34 + rng.normal(0, 2)) * s, (78 + rng.normal(0, 3)) * s)
        ellipse(img, (lx, ly), axes, 42 + rng.normal(0, 5))
        lungs.append((lx, ly, axes[0], axes[1]))
    ribs = np.zeros_like(img)
    for k in range(9):  # ribs: thin bright arcs across each lung field
        y = cy - 80 * s + k * 19 * s + rng.normal(0, 1.5 * s)
        for side in (-1, 1):
            center = (round(cx + side * 20 * s), round(y))
            axes_r = (max(1, round(70 * s)), max(1, round(22 * s)))
            start, end = (180, 300) if side < 0 else (240, 360)
            cv2.ellipse(ribs, center, axes_r, 0, start, end, 28.0, max(1, round(3 * s)))
    img += ribs
    spine_w = max(2, round(9 * s))
    img[:, max(0, round(cx) - spine_w) : round(cx) + spine_w] += 30
    ellipse(img, (cx + 12 * s, cy + 40 * s), (38 * s, 30 * s), 110 + rng.normal(0, 6))  # heart shadow

    boxes: list[tuple[int, int, int, int]] = []
    classes: list[int] = []
    lesions = np.zeros_like(img)
    count = 0 if negative else int(rng.integers(1, 4))
    for _ in range(count):
        cls = int(rng.choice(len(weights), p=weights)) + 1
        lo, hi = class_sizes[cls - 1]
        w = int(rng.integers(lo, hi + 1))
        h = w if cls == 2 else int(np.clip(round(w * rng.uniform(0.7, 1.3)), lo, hi))
        lx, ly, ax, ay = lungs[int(rng.integers(0, 2))]
        placed = None
        for _ in range(30):
            px = lx + rng.uniform(-0.6, 0.6) * ax
            py = ly + rng.uniform(-0.7, 0.7) * ay
            x1 = int(np.clip(round(px - w / 2), 0, size - w))
            y1 = int(np.clip(round(py - h / 2), 0, size - h))
            box = (x1, y1, x1 + w, y1 + h)
            if all(box[2] <= t[0] or t[2] <= box[0] or box[3] <= t[1] or t[3] <= box[1] for t in boxes):
                placed = box
                break
        if placed is None:
            continue
        x1, y1, x2, y2 = placed
        blob: npt.NDArray[Any]
        yy, xx = np.mgrid[0 : y2 - y1, 0 : x2 - x1].astype(np.float32)
        r2 = ((xx + 0.5 - (x2 - x1) / 2) / ((x2 - x1) / 2)) ** 2 + (
            (yy + 0.5 - (y2 - y1) / 2) / ((y2 - y1) / 2)
        ) ** 2
        if cls == 1:  # opacity: soft, fading edge
            blob = np.clip(1.0 - r2, 0, 1) ** 0.6 * (55 + rng.normal(0, 6))
        else:  # nodule: round, sharper edge
            blob = (r2 <= 1.0) * (70 + rng.normal(0, 6)) * np.clip(1.3 - 0.3 * r2, 0, 1)
        lesions[y1:y2, x1:x2] = np.maximum(lesions[y1:y2, x1:x2], blob)
        boxes.append(placed)
        classes.append(cls)
    img += lesions
    blurred = np.asarray(cv2.GaussianBlur(img, (0, 0), sigmaX=1.2 * s), dtype=np.float32)
    blurred += rng.normal(0, 6, size=img.shape).astype(np.float32)
    pixels = np.clip(blurred, 0, 255).astype(np.uint8)
    return SyntheticImage(
        pixels, np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(classes, dtype=np.int64)
    )


def _size_ranges(
    kind: str, image_size: int, min_size: int | None, max_size: int | None
) -> tuple[tuple[int, int], ...]:
    if kind == "shapes":
        defaults: tuple[tuple[int, int], ...] = ((image_size // 4, image_size // 2),) * 2
    else:
        k = image_size / 256.0
        defaults = ((round(24 * k), round(80 * k)), (round(6 * k), round(24 * k)))
    lo_user = 1 if min_size is None else min_size
    hi_user = image_size if max_size is None else max_size
    if lo_user < 1 or hi_user < lo_user or hi_user > image_size:
        raise TfodError(
            f"object sizes min={min_size} max={max_size} do not fit {image_size}px images",
            fix=f"use 1 <= --min-size <= --max-size <= {image_size}",
        )
    out = []
    for lo, hi in defaults:
        a, b = max(lo, lo_user), min(hi, hi_user)
        out.append((a, b) if a <= b else (lo_user, hi_user))
    return tuple(out)


def generate_images(
    kind: str,
    split: str,
    count: int,
    *,
    seed: int = 0,
    image_size: int | None = None,
    negative_share: float | None = None,
    class_ratio: str | Sequence[float] | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
    color_by_class: bool = True,
) -> list[SyntheticImage]:
    """Generate ``count`` images of one split (``"train"`` or ``"eval"``) in memory.

    Exactly ``round(negative_share * count)`` images have no boxes.

    >>> imgs = generate_images("xray-like", "eval", 4, seed=0, negative_share=0.5, image_size=128)
    >>> imgs[0].pixels.shape, sum(len(i.boxes) == 0 for i in imgs)
    ((128, 128), 2)
    """
    if kind not in KINDS:
        raise TfodError(f"unknown synthetic kind {kind!r}", fix=f"use one of {', '.join(KINDS)}")
    if split not in _SPLITS:
        raise TfodError(f"unknown split {split!r}", fix="use train or eval")
    size = _DEFAULT_SIZE[kind] if image_size is None else int(image_size)
    if not 64 <= size <= 1024:
        raise TfodError(f"image size {size} is out of range", fix="use --image-size between 64 and 1024")
    share = _DEFAULT_NEGATIVE[kind] if negative_share is None else float(negative_share)
    if not 0.0 <= share <= 1.0:
        raise TfodError(
            f"negative share {share} is not in [0, 1]", fix="use --negative-share between 0 and 1"
        )
    if count < 0:
        raise TfodError(f"image count {count} is negative")
    weights = parse_class_ratio(class_ratio, len(CLASSES[kind])) or tuple(
        w / sum(_DEFAULT_RATIO[kind]) for w in _DEFAULT_RATIO[kind]
    )
    sizes = _size_ranges(kind, size, min_size, max_size)
    order = np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, _SPLITS[split], 1 << 30]))
    negatives = set(order.permutation(count)[: round(share * count)].tolist()) if count else set()
    images = []
    for index in range(count):
        rng = _rng(seed, split, index)
        if kind == "shapes":
            images.append(_shapes_image(rng, size, weights, index in negatives, sizes[0], color_by_class))
        else:
            images.append(_xray_image(rng, size, weights, index in negatives, sizes))
    return images


def _encode(pixels: UInt8Image, image_format: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    img = Image.fromarray(pixels, "L" if pixels.ndim == 2 else "RGB")
    if image_format == "png":
        img.save(buffer, format="PNG", optimize=False)
    else:
        img.save(buffer, format="JPEG", quality=92, optimize=False)
    return buffer.getvalue()


def write_synthetic_dataset(
    out_dir: str | Path,
    kind: str = "shapes",
    *,
    train_images: int = 64,
    eval_images: int = 16,
    seed: int = 0,
    image_size: int | None = None,
    negative_share: float | None = None,
    class_ratio: str | Sequence[float] | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
    image_format: str = "jpeg",
    color_by_class: bool = True,
) -> SyntheticDataset:
    """Write ``train.record``, ``eval.record`` and ``label_map.pbtxt`` into ``out_dir``.

    ``class_ratio`` weights the classes in label map order (``"3:1"``); ``negative_share`` is the
    exact share of images without boxes per split; ``min_size``/``max_size`` bound the box sides in
    pixels (e.g. ``max_size=95`` guarantees no COCO-large boxes). Files are written atomically.
    """
    if kind not in KINDS:
        raise TfodError(f"unknown synthetic kind {kind!r}", fix=f"use one of {', '.join(KINDS)}")
    if image_format not in ("jpeg", "png"):
        raise TfodError(f"unknown image format {image_format!r}", fix="use jpeg or png")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TfodError("output path exists and is not a directory", path=out, fix="choose a directory")
    label_map = LabelMap.from_names(CLASSES[kind])
    options: dict[str, Any] = {
        "image_size": image_size,
        "negative_share": negative_share,
        "class_ratio": class_ratio,
        "min_size": min_size,
        "max_size": max_size,
        "color_by_class": color_by_class,
    }
    ext = "png" if image_format == "png" else "jpg"
    counts: dict[str, dict[str, int]] = {}
    negatives: dict[str, int] = {}
    buckets: dict[str, dict[str, int]] = {}
    paths: dict[str, Path] = {}
    size = 0
    for split, count in (("train", train_images), ("eval", eval_images)):
        images = generate_images(kind, split, count, seed=seed, **options)
        records = []
        split_counts = dict.fromkeys(label_map.names, 0)
        split_buckets = dict.fromkeys(AREA_BUCKETS, 0)
        for index, image in enumerate(images):
            height, width = image.pixels.shape[:2]
            size = width
            source_id = f"{kind}-{split}-{index:05d}"
            records.append(
                ImageRecord.from_pixels(
                    _encode(image.pixels, image_format),
                    width=width,
                    height=height,
                    boxes=image.boxes,
                    classes=image.classes,
                    label_map=label_map,
                    format=image_format,
                    filename=f"{source_id}.{ext}",
                    source_id=source_id,
                )
            )
            for cls in image.classes.tolist():
                split_counts[label_map.name_of(cls)] += 1
            areas = (image.boxes[:, 2] - image.boxes[:, 0]) * (image.boxes[:, 3] - image.boxes[:, 1])
            for bucket, n in area_bucket_counts(areas).items():
                split_buckets[bucket] += n
        (paths[split],) = write_image_records(out / f"{split}.record", records)
        counts[split] = split_counts
        negatives[split] = sum(len(image.boxes) == 0 for image in images)
        buckets[split] = split_buckets
    lm_path = write_label_map(out / "label_map.pbtxt", label_map)
    return SyntheticDataset(
        kind=kind,
        seed=seed,
        train_record=paths["train"],
        eval_record=paths["eval"],
        label_map=lm_path,
        image_size=size or (_DEFAULT_SIZE.get(kind, 0) if image_size is None else image_size),
        images={"train": train_images, "eval": eval_images},
        negative_images=negatives,
        class_counts=counts,
        area_buckets=buckets,
        options={**options, "image_format": image_format},
    )
