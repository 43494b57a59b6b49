"""The images ``tfod predict`` runs on, and how each is read.

An image file is read by ``tfod convert``'s reader (:func:`tfod_tools.data.convert.images.load_image`:
16-bit PNGs stretched to 8 bits, CMYK JPEGs and other formats re-encoded), decoded as the API's
input decoder does (grayscale expanded to 3 channels) and turned upright by its EXIF orientation
tag; :func:`~tfod_tools.data.convert.images.read_decoded_image` does both with one decode of a
JPEG or 8-bit PNG (the model's decoder is the verifying one). A record's ``image/encoded`` is
decoded as stored, without EXIF: its boxes are in that frame, and that is what the model saw in
training and evaluation. A file or record that does not decode is
an :class:`InputImage` with a ``problem`` instead of pixels.

Image ids are 1..N: files in sorted path order, records in record order (as
:func:`tfod_tools.data.records.read_annotated_set` numbers them, so its ground truth and the
detections share ids).

>>> import tempfile, pathlib, numpy as np
>>> from PIL import Image
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> for name in ("b.png", "a.jpg", "notes.txt"):
...     _ = (d / name).write_bytes(b"x")
>>> [p.name for p in image_files(str(d))]
['a.jpg', 'b.png']
>>> [p.name for p in image_files(str(d / "*.png"))]
['b.png']
>>> upright(np.zeros((2, 3, 3), np.uint8), 6).shape  # EXIF 6: rotate 90 degrees clockwise
(3, 2, 3)
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tfod_tools.data.convert.images import BadImage, decode_failure, read_decoded_image
from tfod_tools.errors import TfodError

__all__ = ["IMAGE_SUFFIXES", "InputImage", "image_files", "read_file_images", "read_record_images", "upright"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
"""File endings a folder's images are picked by."""

Decoder = Callable[[bytes], npt.NDArray[np.uint8]]


@dataclass(frozen=True)
class InputImage:
    """One input: its id, name (file path or record source id), size, and pixels or a problem."""

    image_id: int
    name: str
    pixels: npt.NDArray[np.uint8] | None = None
    problem: str | None = None
    suffix: str = ".jpg"
    """``.png`` for PNG inputs (annotated copies keep a lossless format), else ``.jpg``."""

    @property
    def width(self) -> int:
        return 0 if self.pixels is None else int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return 0 if self.pixels is None else int(self.pixels.shape[0])


def image_files(images: str) -> list[Path]:
    """The image files of a folder (recursively, by :data:`IMAGE_SUFFIXES`) or a glob, sorted."""
    root = Path(images)
    if root.is_dir():
        found = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    elif root.is_file():
        found = [root]
    else:
        found = [Path(p) for p in glob.glob(images, recursive=True) if Path(p).is_file()]
    if not found:
        raise TfodError(
            "no image files here", path=images, fix="pass a folder of images or a glob such as 'dir/*.jpg'"
        )
    return sorted(found)


def display_names(files: Sequence[Path], images: str) -> list[str]:
    """File names relative to the folder given (or as the glob matched them)."""
    root = Path(images)
    if root.is_dir():
        return [p.relative_to(root).as_posix() for p in files]
    return [p.as_posix() for p in files]


_TRANSPOSE = {2: ("flip_lr",), 3: ("rot180",), 4: ("flip_ud",), 5: ("transpose",), 6: ("rot270",),
              7: ("transverse",), 8: ("rot90",)}  # fmt: skip


def upright(pixels: npt.NDArray[np.uint8], orientation: int | None) -> npt.NDArray[np.uint8]:
    """Apply an EXIF orientation tag (1..8) to ``[H, W, C]`` pixels, as a viewer shows the photo."""
    if orientation not in _TRANSPOSE:
        return pixels
    (op,) = _TRANSPOSE[orientation]
    if op == "flip_lr":
        out = pixels[:, ::-1]
    elif op == "flip_ud":
        out = pixels[::-1]
    elif op == "rot180":
        out = pixels[::-1, ::-1]
    elif op == "rot90":  # counter-clockwise
        out = np.rot90(pixels, 1)
    elif op == "rot270":  # clockwise
        out = np.rot90(pixels, -1)
    elif op == "transpose":
        out = np.transpose(pixels, (1, 0, 2))
    else:  # transverse
        out = np.rot90(pixels, 2).transpose(1, 0, 2)
    return np.ascontiguousarray(out)


def read_file_images(files: Sequence[Path], names: Sequence[str], decode: Decoder) -> Iterator[InputImage]:
    """Read image files (ids 1..N) as the module docstring says; a bad one comes with its problem."""
    for image_id, (file, name) in enumerate(zip(files, names, strict=True), start=1):
        try:
            read = read_decoded_image(file, decode)
        except BadImage as exc:
            yield InputImage(image_id, name, problem=exc.reason)
            continue
        pixels = upright(read.pixels, read.orientation)
        yield InputImage(image_id, name, pixels, suffix=".png" if read.loaded.format == "png" else ".jpg")


def read_record_images(records: Sequence[str], decode: Decoder) -> Iterator[InputImage]:
    """Read the images of TFRecords (ids 1..N in record order); names are source ids (or file names)."""
    from tfod_tools.data.records import iter_image_records

    for image_id, (file, index, record) in enumerate(iter_image_records(list(records)), start=1):
        name = str(record.source_id) or str(record.filename) or f"{Path(file).name}#{index}"
        suffix = ".png" if record.format.lower() == "png" else ".jpg"
        try:
            pixels = decode(record.encoded)
        except Exception as exc:  # the decoder's own error types vary (TensorFlow's InvalidArgumentError)
            yield InputImage(image_id, name, problem=decode_failure(exc))
            continue
        yield InputImage(image_id, name, pixels, suffix=suffix)
