"""Pascal VOC XML folders -> :class:`~tfod_tools.data.convert.core.SourceSet`.

Layout: ``ROOT/Annotations/*.xml`` and ``ROOT/JPEGImages/``. ``annotations`` may be ``ROOT`` or
the ``Annotations`` folder; ``images`` defaults to the ``JPEGImages`` folder beside it. An optional
``image_list`` (``ROOT/ImageSets/Main/train.txt``: one id per line) picks the images. Per object:
``name``, ``bndbox/{xmin,ymin,xmax,ymax}`` (pixels, used as they are, like the API's
``create_pascal_tf_record.py``), ``difficult`` and ``truncated`` (0/1, default 0; ``truncated``
is stored as ``image/object/truncated``). The image file is ``<filename>`` in the images folder
(falling back to the XML's name with .jpg/.jpeg/.png); ``<size>`` is checked against the image.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> (root / "Annotations").mkdir(); (root / "JPEGImages").mkdir()
>>> _ = (root / "Annotations" / "a.xml").write_text(
...     "<annotation><filename>a.jpg</filename><size><width>8</width><height>6</height></size>"
...     "<object><name>dog</name><difficult>1</difficult>"
...     "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>5</xmax><ymax>6</ymax></bndbox></object></annotation>")
>>> image = read_voc_source(root).images[0]
>>> image.path.parent.name, image.width, image.objects[0].box, image.objects[0].difficult
('JPEGImages', 8, (1.0, 2.0, 5.0, 6.0), 1)
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from tfod_tools.data.convert.core import SourceImage, SourceObject, SourceSet
from tfod_tools.data.convert.registry import register_converter
from tfod_tools.errors import TfodError

__all__ = ["parse_voc_xml", "read_voc_source"]

_FIX = "fix the XML (Pascal VOC: <object><name/><bndbox><xmin/><ymin/><xmax/><ymax/></bndbox></object>)"


def _text(elem: ET.Element, tag: str, path: Path, what: str, required: bool = True) -> str | None:
    child = elem.find(tag)
    if child is None or child.text is None or not child.text.strip():
        if required:
            raise TfodError(f"{what} has no <{tag}>", path=path, fix=_FIX)
        return None
    return child.text.strip()


def _number(elem: ET.Element, tag: str, path: Path, what: str) -> float:
    text = _text(elem, tag, path, what)
    try:
        return float(str(text))
    except ValueError:
        raise TfodError(f"{what}: <{tag}> {text!r} is not a number", path=path, fix=_FIX) from None


def _flag(elem: ET.Element, tag: str, path: Path, what: str) -> int:
    text = _text(elem, tag, path, what, required=False)
    if text is None:
        return 0
    try:
        return int(float(text) != 0)
    except ValueError:
        raise TfodError(f"{what}: <{tag}> {text!r} is not 0 or 1", path=path, fix=_FIX) from None


def parse_voc_xml(path: str | Path, images: Path) -> SourceImage:
    """One VOC annotation file -> :class:`SourceImage` (image looked up in ``images``)."""
    file = Path(path)
    try:
        root = ET.parse(file).getroot()
    except ET.ParseError as exc:
        line, column = exc.position
        raise TfodError(f"malformed XML at line {line}, column {column}", path=file, fix=_FIX) from None
    except OSError as exc:
        raise TfodError(f"cannot read ({exc.strerror})", path=file) from None
    if root.tag != "annotation":
        raise TfodError(f"root element is <{root.tag}>, not <annotation>", path=file, fix=_FIX)
    width = height = None
    size = root.find("size")
    if size is not None and size.find("width") is not None:
        width = int(_number(size, "width", file, "<size>"))
        height = int(_number(size, "height", file, "<size>"))
        if width <= 0 or height <= 0:  # some tools write 0 when unknown: read the size from the image
            width = height = None
    objects = []
    for k, obj in enumerate(root.findall("object")):
        what = f"<object> {k}"
        name = str(_text(obj, "name", file, what))
        box = obj.find("bndbox")
        if box is None:
            raise TfodError(f"{what} ({name}) has no <bndbox>", path=file, fix=_FIX)
        coords = tuple(
            _number(box, tag, file, f"{what} ({name})") for tag in ("xmin", "ymin", "xmax", "ymax")
        )
        objects.append(
            SourceObject(
                box=(coords[0], coords[1], coords[2], coords[3]),
                class_name=name,
                difficult=_flag(obj, "difficult", file, what),
                truncated=_flag(obj, "truncated", file, what),
            )
        )
    filename = _text(root, "filename", file, "<annotation>", required=False)
    image_path = images / filename if filename else None
    if image_path is None or not image_path.exists():
        for ext in (".jpg", ".jpeg", ".png", ".JPG", ".PNG"):
            candidate = images / (file.stem + ext)
            if candidate.exists():
                image_path = candidate
                break
    if image_path is None:
        image_path = images / (file.stem + ".jpg")
    return SourceImage(
        path=image_path,
        source_id=image_path.name,
        objects=tuple(objects),
        width=width,
        height=height,
        where=file.name,
    )


@register_converter("voc", order=20, accepts=("image_list",))
def read_voc_source(
    annotations: str | Path, images: str | Path | None = None, image_list: str | Path | None = None
) -> SourceSet:
    """Read a VOC folder (``ROOT`` or ``ROOT/Annotations``); only the ids in ``image_list`` if given."""
    ann = Path(annotations)
    if not ann.is_dir():
        raise TfodError(
            "annotation folder not found", path=ann, fix="pass the VOC root or its Annotations folder"
        )
    if (ann / "Annotations").is_dir():
        ann = ann / "Annotations"
    image_dir = Path(images) if images is not None else ann.parent / "JPEGImages"
    if not image_dir.is_dir():
        raise TfodError("image folder not found", path=image_dir, fix="pass --images DIR")
    inputs: list[Path] = []
    if image_list is not None:
        list_path = Path(image_list)
        try:
            ids = [
                line.split()[0] for line in list_path.read_text(encoding="utf-8").splitlines() if line.strip()
            ]
        except (OSError, UnicodeDecodeError) as exc:
            raise TfodError(f"cannot read the image list ({exc})", path=list_path) from None
        files = [ann / f"{i}.xml" for i in ids]
        missing = [f.name for f in files if not f.exists()]
        if missing:
            raise TfodError(
                f"{len(missing)} listed ids have no XML (first: {missing[0]})",
                path=list_path,
                fix=f"check the list against {ann}",
            )
        inputs.append(list_path)
    else:
        files = sorted(ann.glob("*.xml"))
        if not files:
            raise TfodError("no .xml files", path=ann, fix="pass the VOC root or its Annotations folder")
    inputs.extend(files)
    parsed = [parse_voc_xml(f, image_dir) for f in files]
    return SourceSet("voc", parsed, inputs=inputs, has_truncated=True)
