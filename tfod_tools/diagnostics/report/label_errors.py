"""The HTML report's crops of a ``likely_label_errors`` finding: each listed candidate on its image.

The images are read back from the eval records named in the evidence (``eval_records``) by file name
/ source id (:func:`tfod_tools.diagnostics.report.gallery.encoded_images`, TF-free). Each crop is the
annotation box (amber) and the model's box (blue: the detection, or the detections' consensus) with
:data:`CONTEXT` box sides of margin around both, at most :data:`SIDE` px a side; a possibly missing
box has no annotation, only the detection.

>>> import io
>>> from PIL import Image
>>> out = io.BytesIO()
>>> Image.new("RGB", (400, 200), (200, 200, 200)).save(out, "PNG")
>>> png = crop_png(out.getvalue(), [100, 50, 140, 90], [110, 50, 150, 90])
>>> Image.open(io.BytesIO(png)).size
(160, 128)
>>> label_error_crops({"eval_records": [], "missing": {"columns": ["rank"], "rows": [[1]]}})
'<p class="missing">Needs the eval records to draw the candidates: pass --eval-records or --pipeline.</p>'
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from typing import Any

from tfod_tools.diagnostics.label_errors import KINDS

__all__ = ["ANNOTATION", "CONTEXT", "MODEL", "SIDE", "crop_png", "label_error_crops"]

SIDE = 160
"""Longest side of a crop, in px."""
CONTEXT = 0.5
"""Margin around the boxes in a crop, in box sides (at least 16 px)."""
ANNOTATION = (245, 158, 11)
"""Colour of the annotation's box (amber)."""
MODEL = (37, 99, 235)
"""Colour of the model's box (blue)."""
_KIND_TITLES = {
    "missing": "possibly missing box",
    "wrong_label": "possibly wrong label",
    "loose_box": "possibly loose box",
}


def crop_png(
    encoded: bytes, box: Sequence[float] | None, model_box: Sequence[float] | None, side: int = SIDE
) -> bytes:
    """A PNG crop of the image around ``box`` (the annotation, amber) and ``model_box`` (blue)."""
    from PIL import Image, ImageDraw

    with Image.open(io.BytesIO(encoded)) as raw:
        image = raw.convert("RGB")
    boxes = [(b, c) for b, c in ((box, ANNOTATION), (model_box, MODEL)) if b is not None]
    xs = [float(v) for b, _ in boxes for v in (b[0], b[2])] or [0.0, float(image.width)]
    ys = [float(v) for b, _ in boxes for v in (b[1], b[3])] or [0.0, float(image.height)]
    mx = max(CONTEXT * (max(xs) - min(xs)), 16.0)
    my = max(CONTEXT * (max(ys) - min(ys)), 16.0)
    left, top = max(0, int(min(xs) - mx)), max(0, int(min(ys) - my))
    right = min(image.width, max(left + 1, round(max(xs) + mx)))
    bottom = min(image.height, max(top + 1, round(max(ys) + my)))
    crop = image.crop((left, top, max(left + 1, right), max(top + 1, bottom)))
    scale = side / max(crop.width, crop.height)
    crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))))
    draw = ImageDraw.Draw(crop)
    for b, colour in boxes:  # the annotation wider, so a model box on it leaves its edge visible
        x1, y1, x2, y2 = ((float(v) - off) * scale for v, off in zip(b, (left, top, left, top), strict=True))
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=4 if colour == ANNOTATION else 2)
    out = io.BytesIO()
    crop.save(out, "PNG", compress_level=1)
    return out.getvalue()


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _missing(text: str) -> str:
    return f'<p class="missing">{html.escape(text)}</p>'


def label_error_crops(evidence: Mapping[str, Any], count: int = 12) -> str:
    """The first ``count`` candidates of each kind of the finding's evidence, cropped (HTML galleries)."""
    listed = [(kind, evidence[kind]) for kind in KINDS if isinstance(evidence.get(kind), dict)]
    if not listed:
        return ""
    records = list(evidence.get("eval_records") or [])
    if not records:
        return _missing("Needs the eval records to draw the candidates: pass --eval-records or --pipeline.")
    from tfod_tools.diagnostics.report.gallery import encoded_images

    picks = []
    for kind, rows_table in listed:
        col = {c: k for k, c in enumerate(rows_table["columns"])}
        picks.append((kind, col, rows_table["rows"][:count]))
    names = {str(r[col["image"]]) for _, col, rows in picks for r in rows}
    try:
        encoded = encoded_images(records, names)
    except Exception as exc:  # a damaged record must not cost the rest of the report
        return _missing(f"Eval images could not be read: {exc}")
    legend = (
        f'<p class="legend"><span style="background:rgb{ANNOTATION}">annotation</span>'
        f'<span style="background:rgb{MODEL}">model (detection or consensus)</span></p>'
    )
    parts = [legend]
    for kind, col, rows in picks:
        figures = []
        for r in rows:
            name = str(r[col["image"]])
            box = None if kind == "missing" else r[col["box"]]
            said = r[col["suggested class"]]
            classes = html.escape(str(r[col["class"]]))
            if kind == "wrong_label" and said is not None:
                classes += f" &rarr; {html.escape(str(said))}"
            caption = (
                f"#{r[col['rank']]} {html.escape(name)}: {classes}, "
                f"confidence {float(r[col['confidence']]):.2f}"
            )
            if name in encoded:
                picture = _img(crop_png(encoded[name], box, r[col["model box"]]), f"{kind} {name}")
            else:
                picture = _missing("image not found in the eval records")
            figures.append(
                f'<figure style="width:{SIDE + 10}px">{picture}<figcaption>{caption}</figcaption></figure>'
            )
        parts.append(
            f"<p><b>{_KIND_TITLES[kind]}</b></p>"
            f'<div class="gallery label-errors" data-kind="{kind}">{"".join(figures)}</div>'
        )
    return "".join(parts)
