"""Pillow >= 10 removed ``FreeTypeFont.getsize`` / ``ImageFont.getsize``; the API still calls it.

``object_detection/utils/visualization_utils.py`` measures label text with ``font.getsize(text)``
when evaluation draws its side-by-side images. ``getbbox`` gives the same width and height; this
fix adds a ``getsize`` built on it to the font classes that lack one.

>>> from PIL import ImageFont
>>> font = ImageFont.load_default()
>>> left, top, right, bottom = font.getbbox("abc")
>>> _getsize(font, "abc") == (right - left, bottom - top)
True
"""

from __future__ import annotations

from typing import Any


def _getsize(self: Any, text: str, *args: Any, **kwargs: Any) -> tuple[int, int]:
    """``(width, height)`` of ``text``, from ``getbbox`` (what ``getsize`` returned)."""
    left, top, right, bottom = self.getbbox(text, *args, **kwargs)
    return int(right - left), int(bottom - top)


def font_classes_missing_getsize() -> list[str]:
    """Names of the Pillow font classes that have ``getbbox`` but no ``getsize``."""
    from PIL import ImageFont

    names = []
    for name in ("FreeTypeFont", "ImageFont", "TransposedFont"):
        cls = getattr(ImageFont, name, None)
        if cls is not None and not hasattr(cls, "getsize") and hasattr(cls, "getbbox"):
            names.append(name)
    return names


def add_getsize() -> list[str]:
    """Add ``getsize`` to the font classes that lack it; return their names (empty: nothing to do)."""
    from PIL import ImageFont

    missing = font_classes_missing_getsize()
    for name in missing:
        getattr(ImageFont, name).getsize = _getsize
    return missing
