"""The HTML report's pictures of an ``annotation_outliers`` finding: each listed box drawn on its image.

The images are read back from the records (:func:`tfod_tools.data.dedup.encoded_at`, TF-free, each
file once). A box outlying in size or shape is shown on a crop around it (:data:`CONTEXT` box sides of
margin), one outlying in position on the whole image; drawn in red, at most :data:`SIDE` px a side.

>>> import io
>>> from PIL import Image
>>> out = io.BytesIO()
>>> Image.new("RGB", (400, 200), (200, 200, 200)).save(out, "PNG")
>>> Image.open(io.BytesIO(outlier_png(out.getvalue(), (10, 10, 30, 20), "size"))).size  # a crop
(200, 168)
>>> Image.open(io.BytesIO(outlier_png(out.getvalue(), (10, 10, 30, 20), "centre_x"))).size
(200, 100)
>>> outlier_thumbnails({"columns": ["split"], "rows": []})
''
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["CONTEXT", "SIDE", "outlier_png", "outlier_thumbnails"]

SIDE = 200
"""Longest side of a drawn outlier, in px."""
CONTEXT = 1.0
"""Margin around a box in its crop, in box sides (at least 32 px)."""
_RED = (220, 38, 38)


def outlier_png(encoded: bytes, box: Sequence[float], feature: str, side: int = SIDE) -> bytes:
    """``box`` (``[x1, y1, x2, y2]``, pixels) drawn on its image: a crop around it, or the whole image
    for a position outlier (``centre_x``/``centre_y``); a PNG at most ``side`` px a side."""
    from PIL import Image, ImageDraw

    with Image.open(io.BytesIO(encoded)) as raw:
        image = raw.convert("RGB")
    x1, y1, x2, y2 = (float(v) for v in box)
    left, top, right, bottom = 0.0, 0.0, float(image.width), float(image.height)
    if not feature.startswith("centre"):
        mx = max(CONTEXT * (x2 - x1), 32.0)
        my = max(CONTEXT * (y2 - y1), 32.0)
        left, top = max(0.0, x1 - mx), max(0.0, y1 - my)
        right, bottom = min(right, x2 + mx), min(bottom, y2 + my)
    crop = image.crop(
        (int(left), int(top), max(int(left) + 1, round(right)), max(int(top) + 1, round(bottom)))
    )
    scale = side / max(crop.width, crop.height)
    crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))))
    draw = ImageDraw.Draw(crop)
    draw.rectangle(
        [
            (x1 - int(left)) * scale,
            (y1 - int(top)) * scale,
            (x2 - int(left)) * scale,
            (y2 - int(top)) * scale,
        ],
        outline=_RED,
        width=2,
    )
    out = io.BytesIO()
    crop.save(out, "PNG", compress_level=1)
    return out.getvalue()


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def outlier_thumbnails(outliers: dict[str, Any], count: int = 12) -> str:
    """The first ``count`` rows of the finding's ``outliers`` table, each box drawn (HTML, a gallery)."""
    from tfod_tools.data.dedup import encoded_at

    col = {c: k for k, c in enumerate(outliers["columns"])}
    rows = outliers["rows"][:count]
    if not rows:
        return ""
    refs = [(str(r[col["file"]]), int(r[col["index"]])) for r in rows]
    try:
        encoded = encoded_at(refs)
    except Exception as exc:  # a damaged record must not cost the rest of the report
        return f'<p class="missing">Outlier images could not be read: {html.escape(str(exc))}</p>'
    figures = []
    for r, key in zip(rows, refs, strict=True):
        name = f"{r[col['split']]} {Path(key[0]).name}#{key[1]} {r[col['source_id']]}"
        caption = html.escape(f"{name}: {r[col['class']]}, {r[col['reason']]} (score {r[col['score']]})")
        try:
            picture = _img(outlier_png(encoded[key], r[col["box"]], str(r[col["feature"]])), name)
        except Exception:  # not in the file any more, or not decodable: say so, keep the rest
            picture = f'<p class="missing">{html.escape(name)}: image not readable</p>'
        figures.append(f"<figure>{picture}<figcaption>{caption}</figcaption></figure>")
    return f'<div class="gallery outliers">{"".join(figures)}</div>'
