"""Annotated copies of the images: each detection's box and a ``class score`` label.

Boxes are drawn with OpenCV on a copy of the pixels; a label (Pillow's default font, black on the
box's colour) is rendered once per text and colour and pasted, since labels repeat and rendering
text cost more than everything else drawn (measured: 0.2 ms a label, the rest ~0.05 ms an image).
OpenCV's drawing and encoding run without the GIL, so a drawing thread leaves the model's thread
alone.

>>> import numpy as np
>>> img = draw_detections(np.zeros((40, 60, 3), np.uint8), np.array([[5.0, 5.0, 30.0, 20.0]]),
...                       np.array([1]), np.array([0.87]), {1: "square"})
>>> img.shape, bool(img[12, 5].any())
((40, 60, 3), True)
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
"""Box colours (RGB), by class id."""

JPEG_QUALITY = 90
"""The annotated JPEGs' quality (PNG inputs give PNG copies)."""


def label_text(name: str, score: float) -> str:
    """The label drawn above a box."""
    return f"{name} {score:.2f}"


def draw_detections(
    pixels: npt.NDArray[np.uint8],
    boxes: npt.NDArray[np.float64],
    classes: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float64],
    names: Mapping[int, str],
) -> npt.NDArray[np.uint8]:
    """A copy of ``pixels`` (RGB) with the boxes (``[x1, y1, x2, y2]`` pixels) and their labels.

    Lower scores are drawn first, so the most confident box and label end on top. Corners are
    rounded to whole pixels; a label sits above its box, or inside it at the image's top edge.
    """
    import cv2

    image = np.array(pixels, dtype=np.uint8, order="C", copy=True)
    height, width = image.shape[:2]
    thickness = max(1, round(min(height, width) / 200))
    for box, cls, score in sorted(zip(boxes, classes, scores, strict=True), key=lambda r: float(r[2])):
        colour = PALETTE[int(cls) % len(PALETTE)]
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness)
        patch = _label_patch(label_text(names.get(int(cls), str(int(cls))), float(score)), colour)
        ph = patch.shape[0]
        top = y1 - ph if y1 - ph >= 0 else y1
        _paste(image, patch, x1, top)
    return image


def _paste(image: npt.NDArray[np.uint8], patch: npt.NDArray[np.uint8], x: int, y: int) -> None:
    """``patch`` written into ``image`` with its top-left corner at (x, y), clipped to the image."""
    height, width = image.shape[:2]
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + patch.shape[1], width), min(y + patch.shape[0], height)
    if x0 < x1 and y0 < y1:
        image[y0:y1, x0:x1] = patch[y0 - y : y1 - y, x0 - x : x1 - x]


@functools.lru_cache(maxsize=4096)
def _label_patch(text: str, colour: tuple[int, int, int]) -> npt.NDArray[np.uint8]:
    """``text`` in black on ``colour``, one pixel of margin around its bounding box (read-only)."""
    from PIL import Image, ImageDraw

    font = _font()
    left, top, right, bottom = font.getbbox(text)
    patch = Image.new("RGB", (int(right - left) + 3, int(bottom - top) + 3), colour)
    ImageDraw.Draw(patch).text((1 - left, 1 - top), text, fill=(0, 0, 0), font=font)
    pixels = np.asarray(patch, dtype=np.uint8).copy()
    pixels.setflags(write=False)
    return pixels


_FONTS = threading.local()


def _font() -> Any:
    """Pillow's default font, loaded once per thread (a FreeType face is not shared between threads)."""
    font = getattr(_FONTS, "font", None)
    if font is None:
        from PIL import ImageFont

        font = _FONTS.font = ImageFont.load_default()
    return font


def save_image(pixels: npt.NDArray[np.uint8], path: Path) -> None:
    """Write RGB ``pixels`` (PNG for ``.png``, else JPEG quality :data:`JPEG_QUALITY`), creating the folder.

    >>> import tempfile
    >>> from PIL import Image
    >>> out = Path(tempfile.mkdtemp()) / "sub" / "a.png"
    >>> save_image(np.full((4, 5, 3), (255, 0, 0), np.uint8), out)
    >>> Image.open(out).getpixel((0, 0))
    (255, 0, 0)
    """
    import cv2

    from tfod_tools.errors import TfodError

    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    if path.suffix.lower() == ".png":
        ok, data = cv2.imencode(".png", bgr)
    else:
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise TfodError("OpenCV could not encode an annotated image", path=str(path))
    path.write_bytes(data.tobytes())
