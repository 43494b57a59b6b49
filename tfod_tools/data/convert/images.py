"""Read an image file into the bytes a TF OD API record stores, without TensorFlow.

What the API's ``TfExampleDecoder`` does with ``image/encoded`` decides what we store: it calls
``tf.image.decode_jpeg`` / ``decode_image`` with ``channels=3`` and ``dtype=uint8``. So:

* 8-bit (or less) JPEG and PNG files - grayscale, RGB, palette, with alpha - are stored **as they
  are** (no re-encoding, no quality loss); the decoder expands grayscale to 3 channels and drops
  alpha. A JPEG in CMYK/YCCK is re-encoded as an RGB JPEG (quality 95).
* **16-bit PNG**: TensorFlow accepts it but keeps only the high byte of each sample (measured:
  4095 -> 15), so a 12-bit X-ray comes out nearly black. By default (``sixteen_bit="scale"``) we
  stretch the image's own min..max range linearly to 0..255 and store an 8-bit PNG;
  ``sixteen_bit="keep"`` stores the original 16-bit bytes (right for data that uses the full
  16-bit range, where high-byte truncation is what you want).
* BMP, TIFF (8 or 16 bit), WebP, GIF, ... are decoded and stored as PNG (16-bit samples handled
  as above), because the API's decoder reads only JPEG, PNG and BMP (a GIF decodes 4-D).

A file that is missing, truncated or not an image raises :class:`BadImage` with a reason; the
converters turn it into a skip or an error (``--on-bad-image``).

>>> import io, numpy as np, tempfile, pathlib
>>> from PIL import Image
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> Image.fromarray(np.full((6, 8), 200, np.uint8)).save(d / "g.png")
>>> img = load_image(d / "g.png")
>>> img.format, img.width, img.height, img.note
('png', 8, 6, None)
>>> img.encoded == (d / "g.png").read_bytes()
True
>>> Image.fromarray(np.arange(48, dtype=np.uint16).reshape(6, 8) * 80).save(d / "deep.png")
>>> img = load_image(d / "deep.png")
>>> img.note, np.asarray(Image.open(io.BytesIO(img.encoded))).max()
('16-bit PNG scaled to 8-bit (min..max -> 0..255)', np.uint8(255))
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "SIXTEEN_BIT_MODES",
    "BadImage",
    "DecodedImage",
    "LoadedImage",
    "decode_failure",
    "load_image",
    "read_decoded_image",
    "scale_to_uint8",
]

SixteenBit = Literal["scale", "keep"]
SIXTEEN_BIT_MODES: tuple[str, ...] = ("scale", "keep")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


class BadImage(Exception):
    """An image file that cannot go into a record; ``reason`` says why (one line)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LoadedImage:
    """An image ready for a record: encoded bytes, ``jpeg``/``png``, size, and what was changed."""

    encoded: bytes
    format: str
    width: int
    height: int
    note: str | None = None


def scale_to_uint8(pixels: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """Stretch an image's min..max linearly to 0..255 (a constant image becomes 0).

    >>> scale_to_uint8(np.array([[100, 200, 500]], dtype=np.uint16)).tolist()
    [[0, 64, 255]]
    """
    arr = pixels.astype(np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros(pixels.shape, dtype=np.uint8)
    return np.rint((arr - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _png_bit_depth(data: bytes) -> int:
    # The IHDR chunk is always first: magic(8) length(4) "IHDR"(4) width(4) height(4) depth(1).
    if len(data) < 25 or data[12:16] != b"IHDR":
        raise BadImage("PNG without an IHDR header")
    return int(data[24])


def _encode_png(pixels: npt.NDArray[np.uint8]) -> bytes:
    import cv2

    ok, buffer = cv2.imencode(".png", pixels)
    if not ok:  # pragma: no cover - cv2 encodes any uint8 array
        raise BadImage("could not re-encode as PNG")
    return bytes(buffer.tobytes())


def _decode_any(data: bytes) -> npt.NDArray[Any]:
    """Pixels (BGR order for colour, as cv2 uses) of any format cv2 or PIL reads; alpha dropped."""
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            img.seek(0)
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img).astype(np.uint16 if img.mode.startswith("I;16") else np.int64)
            else:
                arr = np.asarray(img.convert("L" if img.mode in ("1", "L", "LA", "P") else "RGB"))
                arr = arr[..., ::-1] if arr.ndim == 3 else arr
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    return np.ascontiguousarray(arr)


def _verify(data: bytes) -> tuple[str, str, int, int]:
    """``(PIL format, mode, width, height)`` after a full decode; :class:`BadImage` if it fails."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, mode, size = str(img.format), str(img.mode), img.size
            img.load()
    except UnidentifiedImageError:
        raise BadImage("not an image file (unknown format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImage(f"cannot decode the image ({exc})") from None
    return fmt, mode, int(size[0]), int(size[1])


def load_image(
    path: str | Path, *, sixteen_bit: SixteenBit | str = "scale", data: bytes | None = None
) -> LoadedImage:
    """Read, fully decode (to catch truncated files) and prepare one image file; see the module doc.
    With ``data`` (the file's bytes, read elsewhere: ``tfod convert --beam`` through Beam's file
    systems) ``path`` is not read."""
    if sixteen_bit not in SIXTEEN_BIT_MODES:
        raise ValueError(f"sixteen_bit must be one of {SIXTEEN_BIT_MODES}, got {sixteen_bit!r}")
    file = Path(path)
    try:
        if data is None:
            data = file.read_bytes()
    except FileNotFoundError:
        raise BadImage("image file not found") from None
    except IsADirectoryError:
        raise BadImage("is a directory, not an image") from None
    except OSError as exc:
        raise BadImage(f"cannot read the image ({exc.strerror})") from None
    if not data:
        raise BadImage("empty image file")
    fmt, mode, width, height = _verify(data)
    if width < 1 or height < 1:
        raise BadImage(f"image has no pixels ({width}x{height})")
    if data.startswith(_JPEG_MAGIC) and fmt in ("JPEG", "MPO"):
        if mode in ("L", "RGB"):
            return LoadedImage(data, "jpeg", width, height)
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            buffer = io.BytesIO()
            img.convert("RGB").save(buffer, format="JPEG", quality=95)
        return LoadedImage(buffer.getvalue(), "jpeg", width, height, f"{mode} JPEG re-encoded as RGB JPEG")
    if data.startswith(_PNG_MAGIC):
        if _png_bit_depth(data) <= 8:
            return LoadedImage(data, "png", width, height)
        if sixteen_bit == "keep":
            note = "16-bit PNG kept (the API's decoder keeps the high byte)"
            return LoadedImage(data, "png", width, height, note)
        pixels = scale_to_uint8(_decode_any(data))
        return LoadedImage(
            _encode_png(pixels), "png", width, height, "16-bit PNG scaled to 8-bit (min..max -> 0..255)"
        )
    pixels = _decode_any(data)
    if pixels.dtype != np.uint8:
        pixels = scale_to_uint8(pixels)
        note = f"{fmt} (more than 8 bits) scaled to 8-bit PNG (min..max -> 0..255)"
    else:
        note = f"{fmt} re-encoded as PNG"
    if pixels.shape[:2] != (height, width):
        raise BadImage(
            f"decoded size {pixels.shape[1]}x{pixels.shape[0]} differs from header {width}x{height}"
        )
    return LoadedImage(_encode_png(pixels), "png", width, height, note)


def image_header_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from the image header only (PIL opens lazily); :class:`BadImage` if unreadable.

    >>> import numpy as np, cv2
    >>> image_header_size(cv2.imencode(".png", np.zeros((3, 5), np.uint8))[1].tobytes())
    (5, 3)
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return int(img.size[0]), int(img.size[1])
    except UnidentifiedImageError:
        raise BadImage("not an image (unknown format)") from None
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        raise BadImage(f"unreadable image header ({exc})") from None


@dataclass(frozen=True)
class DecodedImage:
    """An image file read once: what :func:`load_image` returns, its pixels and its EXIF orientation.

    ``pixels``: what the ``decode`` given to :func:`read_decoded_image` made of ``loaded.encoded``
    (as stored, before any EXIF rotation); ``orientation``: the EXIF orientation tag (1..8) or None.
    """

    loaded: LoadedImage
    pixels: npt.NDArray[np.uint8]
    orientation: int | None = None


def decode_failure(exc: BaseException) -> str:
    """The reason given for bytes that passed the checks but that the model's decoder rejects.

    >>> decode_failure(ValueError("x"))
    'cannot decode the image (ValueError)'
    """
    return f"cannot decode the image ({type(exc).__name__})"


def _exif_orientation(img: Any) -> int | None:
    try:
        value = img.getexif().get(0x0112)
    except (OSError, ValueError, SyntaxError):
        return None
    return int(value) if isinstance(value, int) else None


def _header(data: bytes) -> tuple[str, str, int, int, int | None] | None:
    """``(PIL format, mode, width, height, EXIF orientation)`` without decoding a JPEG; None if unreadable."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return str(img.format), str(img.mode), int(img.size[0]), int(img.size[1]), _exif_orientation(img)
    except (OSError, SyntaxError, ValueError, struct.error):
        return None


def read_decoded_image(
    path: str | Path,
    decode: Callable[[bytes], npt.NDArray[np.uint8]],
    *,
    sixteen_bit: SixteenBit | str = "scale",
) -> DecodedImage:
    """:func:`load_image` and ``decode(loaded.encoded)`` with the file decoded once where it can be.

    A grayscale or RGB JPEG and an 8-bit PNG are stored as they are, so ``decode`` (the model's
    decoder: TensorFlow's, whose JPEG pixels differ slightly from Pillow's) is their verifying
    decode: Pillow reads only the header (format, size, EXIF), not the pixels. Any other file, and
    any file whose bytes ``decode`` rejects, goes through :func:`load_image` (its full Pillow decode),
    so a bad file raises the same :class:`BadImage` as there; bytes that Pillow accepts but
    ``decode`` rejects raise :func:`decode_failure`'s reason. (For a PNG, Pillow's EXIF lookup
    may decode the pixels too: a PNG can keep its EXIF after the image data.)

    >>> import numpy as np, tempfile, pathlib
    >>> from PIL import Image
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> Image.fromarray(np.full((6, 8), 200, np.uint8)).save(d / "g.png")
    >>> def rgb(data):
    ...     with Image.open(io.BytesIO(data)) as img:
    ...         return np.asarray(img.convert("RGB"))
    >>> read = read_decoded_image(d / "g.png", rgb)
    >>> read.loaded == load_image(d / "g.png"), read.pixels.shape, read.orientation
    (True, (6, 8, 3), None)
    >>> noise = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    >>> Image.fromarray(noise).save(d / "noise.png")
    >>> _ = (d / "cut.png").write_bytes((d / "noise.png").read_bytes()[:2000])
    >>> read_decoded_image(d / "cut.png", rgb)
    Traceback (most recent call last):
    ...
    tfod_tools.data.convert.images.BadImage: cannot decode the image (image file is truncated)
    """
    try:
        data = Path(path).read_bytes()
    except OSError:
        data = b""  # load_image below names the problem
    header = _header(data) if data else None
    if header is not None:
        fmt, mode, width, height, orientation = header
        as_is = (data.startswith(_JPEG_MAGIC) and fmt in ("JPEG", "MPO") and mode in ("L", "RGB")) or (
            data.startswith(_PNG_MAGIC) and len(data) >= 25 and data[12:16] == b"IHDR" and data[24] <= 8
        )
        if as_is and width >= 1 and height >= 1:
            try:
                pixels = decode(data)
            except Exception as exc:  # the decoder's own error types vary (TensorFlow's InvalidArgumentError)
                _verify(data)  # Pillow's reason, as load_image gives it
                raise BadImage(decode_failure(exc)) from None
            fmt_name = "jpeg" if data.startswith(_JPEG_MAGIC) else "png"
            return DecodedImage(LoadedImage(data, fmt_name, width, height), pixels, orientation)
    loaded = load_image(path, sixteen_bit=sixteen_bit)
    try:
        pixels = decode(loaded.encoded)
    except Exception as exc:  # as above
        raise BadImage(decode_failure(exc)) from None
    return DecodedImage(loaded, pixels, None if header is None else header[4])
