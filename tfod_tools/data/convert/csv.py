"""CSV annotations -> :class:`~tfod_tools.data.convert.core.SourceSet`; two layouts, told apart by the header.

``generic``: ``filename,width,height,class,xmin,ymin,xmax,ymax`` (pixels, any column order, extra
columns ignored), one row per box; a row whose class and box are empty is an image without boxes.
``rsna`` (RSNA Pneumonia): ``patientId,x,y,width,height,Target``; a box is ``[x, y, x + width,
y + height]``; a row with ``Target`` 0 (or an empty box) is a negative image; the image is
``<patientId>.png``/``.jpg``/``.jpeg`` in the image folder, its size read from the file; every box
gets the class ``class_name`` (default ``opacity``).

Rows of one image may be anywhere in the file; images keep the order of their first row. The image
folder defaults to the CSV's folder. Errors name the file and the line.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "rsna.csv").write_text("patientId,x,y,width,height,Target\\n"
...                                 "p1,10,20,30,40,1\\np2,,,,,0\\np1,0,0,5,5,1\\n")
>>> src = read_csv_source(d / "rsna.csv")
>>> [(im.source_id, [o.box for o in im.objects]) for im in src.images]
[('p1', [(10.0, 20.0, 40.0, 60.0), (0.0, 0.0, 5.0, 5.0)]), ('p2', [])]
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from tfod_tools.data.convert.core import SourceImage, SourceObject, SourceSet
from tfod_tools.data.convert.registry import register_converter
from tfod_tools.errors import TfodError

__all__ = ["GENERIC_COLUMNS", "RSNA_COLUMNS", "read_csv_source"]

GENERIC_COLUMNS = ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax")
RSNA_COLUMNS = ("patientId", "x", "y", "width", "height", "Target")


@dataclass
class _Group:
    path: Path
    source_id: str
    where: str
    width: int | None = None
    height: int | None = None
    objects: list[SourceObject] = field(default_factory=list)


_ROW_FIX = "fix that row of the CSV"
_FIX = f"use the header {','.join(GENERIC_COLUMNS)} or {','.join(RSNA_COLUMNS)}"


def _num(row: dict[str, str], key: str, path: Path, line: int) -> float | None:
    text = (row.get(key) or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise TfodError(f"line {line}: {key} {text!r} is not a number", path=path, fix=_ROW_FIX) from None
    if math.isnan(value):
        return None
    return value


def _find_image(folder: Path, stem: str) -> Path:
    for ext in (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG"):
        candidate = folder / f"{stem}{ext}"
        if candidate.exists():
            return candidate
    return folder / f"{stem}.png"


@register_converter("csv", order=30, accepts=("class_name",))
def read_csv_source(
    path: str | Path, images: str | Path | None = None, *, class_name: str = "opacity"
) -> SourceSet:
    """Read a generic or RSNA-style CSV (see the module doc)."""
    file = Path(path)
    image_dir = file.parent if images is None else Path(images)
    if not image_dir.is_dir():
        raise TfodError("image folder not found", path=image_dir, fix="pass --images DIR")
    try:
        handle = open(file, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise TfodError("CSV file not found", path=file, fix="check the --annotations path") from None
    except IsADirectoryError:
        raise TfodError("is a directory", path=file, fix="--annotations takes the CSV file") from None
    with handle:
        try:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in (reader.fieldnames or [])]
            reader.fieldnames = header
            if set(GENERIC_COLUMNS) <= set(header):
                kind = "generic"
            elif set(RSNA_COLUMNS) <= set(header):
                kind = "rsna"
            else:
                raise TfodError(f"unknown CSV header {','.join(header) or '(empty)'}", path=file, fix=_FIX)
            groups: dict[str, _Group] = {}
            for row in reader:
                line = reader.line_num
                if None in row:
                    raise TfodError(f"line {line}: more fields than the header", path=file, fix=_ROW_FIX)
                if kind == "generic":
                    _generic_row(row, groups, image_dir, file, line)
                else:
                    _rsna_row(row, groups, image_dir, file, line, class_name)
        except csv.Error as exc:
            raise TfodError(f"line {reader.line_num}: malformed CSV ({exc})", path=file) from None
        except UnicodeDecodeError:
            raise TfodError("not UTF-8 text", path=file, fix="save the CSV as UTF-8") from None
    out = [
        SourceImage(g.path, g.source_id, tuple(g.objects), g.width, g.height, g.where)
        for g in groups.values()
    ]
    return SourceSet(f"csv-{kind}", out, inputs=[file])


def _generic_row(
    row: dict[str, str], groups: dict[str, _Group], image_dir: Path, file: Path, line: int
) -> None:
    name = (row.get("filename") or "").strip()
    if not name:
        raise TfodError(f"line {line}: empty filename", path=file, fix=_ROW_FIX)
    width, height = _num(row, "width", file, line), _num(row, "height", file, line)
    group = groups.get(name)
    if group is None:
        group = groups[name] = _Group(
            image_dir / name,
            name,
            f"{file.name} line {line}",
            None if width is None else int(width),
            None if height is None else int(height),
        )
    if width is not None and height is not None and (int(width), int(height)) != (group.width, group.height):
        raise TfodError(
            f"line {line}: size {int(width)}x{int(height)} differs from an earlier row of {name}",
            path=file,
            fix="give every row of an image the same width and height",
        )
    coords = [_num(row, key, file, line) for key in ("xmin", "ymin", "xmax", "ymax")]
    cls = (row.get("class") or "").strip()
    if not cls and all(c is None for c in coords):
        return  # an image without boxes
    if not cls or any(c is None for c in coords):
        raise TfodError(
            f"line {line}: a box row needs class, xmin, ymin, xmax and ymax",
            path=file,
            fix="fill them in, or leave class and all four empty for an image without boxes",
        )
    x1, y1, x2, y2 = (float(c or 0.0) for c in coords)
    group.objects.append(SourceObject((x1, y1, x2, y2), cls))


def _rsna_row(
    row: dict[str, str],
    groups: dict[str, _Group],
    image_dir: Path,
    file: Path,
    line: int,
    class_name: str,
) -> None:
    pid = (row.get("patientId") or "").strip()
    if not pid:
        raise TfodError(f"line {line}: empty patientId", path=file, fix=_ROW_FIX)
    group = groups.get(pid)
    if group is None:
        group = groups[pid] = _Group(_find_image(image_dir, pid), pid, f"{file.name} line {line}")
    target = _num(row, "Target", file, line)
    coords = [_num(row, key, file, line) for key in ("x", "y", "width", "height")]
    if not target or all(c is None for c in coords):
        return
    if any(c is None for c in coords):
        raise TfodError(
            f"line {line}: Target is 1 but x, y, width, height are incomplete",
            path=file,
            fix="fill in the box, or set Target to 0 for an image without boxes",
        )
    x, y, w, h = (float(c or 0.0) for c in coords)
    group.objects.append(SourceObject((x, y, x + w, y + h), class_name))
