"""``read_decoded_image``: one decode per file, the same result as ``load_image`` + the decoder.

The equality tests use Pillow as the decoder (no TensorFlow here); test_predict.py checks the
same with TensorFlow's decoder and the exported model's detections.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tfod_tools.data.convert.images import BadImage, load_image, read_decoded_image


def _pil_decode(encoded: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(encoded)) as img:
        return np.asarray(img.convert("RGB"))


def _noise(shape: tuple[int, ...], dtype: type = np.uint8, high: int = 255) -> np.ndarray:
    return np.random.default_rng(len(shape) + high).integers(0, high, shape).astype(dtype)


def _write_all(folder: Path) -> dict[str, Path]:
    """One file of each kind the reader treats differently."""
    rgb = _noise((40, 56, 3))
    made: dict[str, Callable[[Path], None]] = {
        "rgb.jpg": lambda p: Image.fromarray(rgb).save(p, quality=90),
        "gray.jpg": lambda p: Image.fromarray(rgb[..., 0]).save(p),
        "cmyk.jpg": lambda p: Image.fromarray(rgb).convert("CMYK").save(p),
        "rgb.png": lambda p: Image.fromarray(rgb).save(p),
        "gray.png": lambda p: Image.fromarray(rgb[..., 1]).save(p),
        "palette.png": lambda p: Image.fromarray(rgb).convert("P").save(p),
        "alpha.png": lambda p: Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(p),
        "deep.png": lambda p: Image.fromarray(_noise((40, 56), np.uint16, 4096)).save(p),
        "photo.bmp": lambda p: Image.fromarray(rgb).save(p),
        "photo.tif": lambda p: Image.fromarray(rgb).save(p),
    }
    paths = {}
    for name, write in made.items():
        write(folder / name)
        paths[name] = folder / name
    return paths


def test_same_as_load_image_then_decode(tmp_path: Path) -> None:
    for name, path in _write_all(tmp_path).items():
        read = read_decoded_image(path, _pil_decode)
        loaded = load_image(path)
        assert read.loaded == loaded, name  # bytes, format, size and note
        np.testing.assert_array_equal(read.pixels, _pil_decode(loaded.encoded), err_msg=name)
        assert read.pixels.shape == (40, 56, 3) and read.orientation is None, name
    keep = read_decoded_image(tmp_path / "deep.png", _pil_decode, sixteen_bit="keep")
    assert keep.loaded == load_image(tmp_path / "deep.png", sixteen_bit="keep")


def test_jpeg_and_png_are_decoded_once(tmp_path: Path) -> None:
    paths = _write_all(tmp_path)
    calls: list[bytes] = []

    def counting(encoded: bytes) -> np.ndarray:
        calls.append(encoded)
        return _pil_decode(encoded)

    for name in ("rgb.jpg", "gray.jpg", "rgb.png", "gray.png", "palette.png", "alpha.png"):
        calls.clear()
        read_decoded_image(paths[name], counting)
        assert calls == [paths[name].read_bytes()], name  # the file's own bytes, decoded once


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_orientation_is_read(tmp_path: Path, suffix: str) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / f"turned{suffix}"
    Image.fromarray(_noise((20, 30, 3))).save(path, exif=exif)
    read = read_decoded_image(path, _pil_decode)
    assert read.orientation == 6
    assert read.pixels.shape == (20, 30, 3)  # as stored: predict turns it upright


@pytest.mark.parametrize("name", ["rgb.jpg", "gray.png", "palette.png", "photo.bmp"])
def test_truncated_and_broken_files_fail_as_load_image_does(tmp_path: Path, name: str) -> None:
    source = _write_all(tmp_path)[name]
    data = source.read_bytes()
    cases = {
        "half": data[: len(data) // 2],
        "header only": data[:40],
        "not an image": b"hello",
        "empty": b"",
    }
    for label, content in cases.items():
        path = tmp_path / f"bad-{label}{source.suffix}"
        path.write_bytes(content)
        with pytest.raises(BadImage) as expected:
            load_image(path)
        with pytest.raises(BadImage) as got:
            read_decoded_image(path, _pil_decode)
        assert got.value.reason == expected.value.reason, (name, label)
    with pytest.raises(BadImage, match="image file not found"):
        read_decoded_image(tmp_path / "missing.jpg", _pil_decode)


def test_bytes_the_decoder_rejects(tmp_path: Path) -> None:
    paths = _write_all(tmp_path)

    def rejecting(encoded: bytes) -> np.ndarray:
        raise ValueError("no")

    for name in ("rgb.jpg", "photo.bmp"):  # as stored, and re-encoded first
        with pytest.raises(BadImage, match=r"^cannot decode the image \(ValueError\)$"):
            read_decoded_image(paths[name], rejecting)
