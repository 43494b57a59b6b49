"""Annotated copies of the images: each detection's box and a ``class score`` label (Pillow).

>>> import numpy as np
>>> img = draw_detections(np.zeros((40, 60, 3), np.uint8), np.array([[5.0, 5.0, 30.0, 20.0]]),
...                       np.array([1]), np.array([0.87]), {1: "square"})
>>> img.size, img.getpixel((5, 12)) != (0, 0, 0)
((60, 40), True)
>>> label_text("square", 0.8712)
'square 0.87'
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["PALETTE", "draw_detections", "label_text", "save_image"]

PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212))  # fmt: skip
"""Box colours, by class id."""


def label_text(name: str, score: float) -> str:
    """The label drawn above a box."""
    return f"{name} {score:.2f}"


def draw_detections(
    pixels: npt.NDArray[np.uint8],
    boxes: npt.NDArray[np.float64],
    classes: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float64],
    names: Mapping[int, str],
) -> Any:
    """A PIL image of ``pixels`` with the boxes (``[x1, y1, x2, y2]`` pixels) and their labels."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    font = _font()
    width = max(1, round(min(image.size) / 200))
    for box, cls, score in sorted(zip(boxes, classes, scores, strict=True), key=lambda r: float(r[2])):
        colour = PALETTE[int(cls) % len(PALETTE)]
        x1, y1, x2, y2 = (float(v) for v in box)
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        text = label_text(names.get(int(cls), str(int(cls))), float(score))
        left, top, right, bottom = _text_box(text)
        tw, th = right - left, bottom - top
        ty = y1 - th - 2 if y1 - th - 2 >= 0 else y1
        draw.rectangle([x1, ty, x1 + tw + 2, ty + th + 2], fill=colour)
        draw.text((x1 + 1 - left, ty + 1 - top), text, fill=(0, 0, 0), font=font)
    return image


_FONTS = threading.local()


def _font() -> Any:
    """Pillow's default font, loaded once per thread (a FreeType face is not shared between threads).

    Loading it per image cost more than drawing: a fresh face also starts with no glyphs rendered.
    The same face draws the same pixels, fresh or reused.
    """
    font = getattr(_FONTS, "font", None)
    if font is None:
        from PIL import ImageFont

        font = _FONTS.font = ImageFont.load_default()
    return font


@functools.lru_cache(maxsize=4096)
def _text_box(text: str) -> tuple[int, int, int, int]:
    """A label's bounding box drawn at (0, 0) in the default font (the text decides it; labels repeat)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font)
    return int(left), int(top), int(right), int(bottom)


def save_image(image: Any, path: Path) -> None:
    """Write ``image`` (PNG for ``.png``, else JPEG quality 90), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".png":
        image.save(path, format="PNG")
    else:
        image.save(path, format="JPEG", quality=90)
