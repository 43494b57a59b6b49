"""``tfod convert``: COCO JSON, Pascal VOC folders and CSV files -> TF OD API TFRecords + label map.

:func:`read_source` reads annotations of one format into a
:class:`~tfod_tools.data.convert.core.SourceSet`; :func:`convert` reads and writes in one call.
See :mod:`.core` for what happens to classes, images and boxes, and :mod:`.images` for grayscale,
PNG and 16-bit images. No TensorFlow is imported.

Each format's reader registers itself (:mod:`.registry`, ``@register_converter``); every module of
this package is imported here, so :data:`FORMATS` and ``tfod convert --from`` list them all.

>>> import tempfile, pathlib, numpy as np
>>> from PIL import Image
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> Image.fromarray(np.zeros((10, 10), np.uint8)).save(d / "x.png")
>>> _ = (d / "labels.csv").write_text("filename,width,height,class,xmin,ymin,xmax,ymax\\n"
...                                   "x.png,10,10,dot,1,1,4,4\\n")
>>> summary = convert("csv", d / "labels.csv", d / "out" / "train.record", num_shards=2)
>>> [p.name for p in summary.outputs], summary.boxes
(['train.record-00000-of-00002', 'train.record-00001-of-00002'], 1)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tfod_tools.data.convert.core import (
    ON_BAD_IMAGE,
    ConversionSummary,
    ImageResult,
    SourceImage,
    SourceObject,
    SourceSet,
    WritePlan,
    assign_label_map,
    convert_image,
    plan_write,
    write_planned,
    write_source_set,
)
from tfod_tools.data.convert.images import SIXTEEN_BIT_MODES, BadImage, LoadedImage, load_image
from tfod_tools.data.convert.registry import CONVERTERS, converter_names
from tfod_tools.errors import TfodError
from tfod_tools.odapi.label_map import LabelMap, read_label_map
from tfod_tools.registry import ModuleLoader

__all__ = [
    "CONVERTERS",
    "FORMATS",
    "ON_BAD_IMAGE",
    "SIXTEEN_BIT_MODES",
    "BadImage",
    "ConversionSummary",
    "ImageResult",
    "LoadedImage",
    "SourceImage",
    "SourceObject",
    "SourceSet",
    "WritePlan",
    "assign_label_map",
    "convert",
    "convert_image",
    "converter_names",
    "load_image",
    "plan_write",
    "prepare",
    "read_source",
    "write_planned",
    "write_source_set",
]

ModuleLoader(__name__).load()  # each format's module registers its reader
FORMATS: tuple[str, ...] = converter_names()
"""The built-in formats (``coco``, ``voc``, ``csv``); :func:`converter_names` also lists later ones."""


def read_source(
    fmt: str,
    annotations: str | Path,
    images: str | Path | None = None,
    *,
    image_list: str | Path | None = None,
    class_name: str = "opacity",
) -> SourceSet:
    """Read annotations of a registered format ``fmt`` (``coco``, ``voc``, ``csv``, ...)."""
    if fmt not in CONVERTERS:
        raise TfodError(f"unknown format {fmt!r}", fix=f"use one of {', '.join(converter_names())}")
    return CONVERTERS[fmt].read_source(annotations, images, image_list=image_list, class_name=class_name)


def convert(
    fmt: str,
    annotations: str | Path,
    out: str | Path,
    *,
    images: str | Path | None = None,
    num_shards: int = 1,
    label_map_out: str | Path | None = None,
    classes: str | Path | LabelMap | None = None,
    on_bad_image: str = "fail",
    sixteen_bit: str = "scale",
    image_list: str | Path | None = None,
    class_name: str = "opacity",
    progress: Callable[[int], None] | None = None,
) -> ConversionSummary:
    """Convert annotations to records at ``out`` plus a label map (see :func:`write_source_set`).

    With ``classes`` (an existing label map) its ids are used and, unless ``label_map_out`` is
    given, no new label map is written.
    """
    source, plan = prepare(
        fmt,
        annotations,
        out,
        images=images,
        num_shards=num_shards,
        label_map_out=label_map_out,
        classes=classes,
        on_bad_image=on_bad_image,
        sixteen_bit=sixteen_bit,
        image_list=image_list,
        class_name=class_name,
    )
    return write_planned(source, plan, progress=progress)


def prepare(
    fmt: str,
    annotations: str | Path,
    out: str | Path,
    *,
    images: str | Path | None = None,
    num_shards: int = 1,
    label_map_out: str | Path | None = None,
    classes: str | Path | LabelMap | None = None,
    on_bad_image: str = "fail",
    sixteen_bit: str = "scale",
    image_list: str | Path | None = None,
    class_name: str = "opacity",
) -> tuple[SourceSet, WritePlan]:
    """Read the annotations and check every option and output of :func:`convert` before any image
    is read (the local run and ``tfod convert --beam`` both start here)."""
    if image_list is not None and fmt in CONVERTERS and "image_list" not in CONVERTERS[fmt].accepts:
        users = [c.name for c in CONVERTERS.values() if "image_list" in c.accepts]
        raise TfodError(f"--image-list is for --from {' | '.join(users)} only")
    lm = classes if isinstance(classes, LabelMap) or classes is None else read_label_map(classes)
    source = read_source(fmt, annotations, images, image_list=image_list, class_name=class_name)
    plan = plan_write(
        source,
        out,
        num_shards=num_shards,
        label_map_out=label_map_out,
        classes=lm,
        on_bad_image=on_bad_image,
        sixteen_bit=sixteen_bit,
        write_label_map_file=lm is None or label_map_out is not None,
    )
    return source, plan
