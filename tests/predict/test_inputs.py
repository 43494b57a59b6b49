"""How ``tfod predict`` reads its inputs and checks the label map (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from tfod_tools.errors import TfodError
from tfod_tools.odapi.exported import ExportedModel
from tfod_tools.odapi.label_map import LabelMap
from tfod_tools.predict.inputs import image_files, read_file_images, upright
from tfod_tools.predict.run import check_classes


def _pil_decode(encoded: bytes) -> np.ndarray:
    import io

    with Image.open(io.BytesIO(encoded)) as img:
        return np.asarray(img.convert("RGB"))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_matches_pillow_exif_transpose(tmp_path: Path, orientation: int) -> None:
    pixels = np.random.default_rng(orientation).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path, exif=exif)
    (read,) = read_file_images([path], ["photo.png"], _pil_decode)
    with Image.open(path) as img:
        expected = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    assert read.pixels is not None
    np.testing.assert_array_equal(read.pixels, expected)
    np.testing.assert_array_equal(upright(pixels, orientation), expected)


def test_grayscale_sixteen_bit_and_bad_files(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 6), 90, np.uint8)).save(tmp_path / "gray.png")
    Image.fromarray(np.arange(24, dtype=np.uint16).reshape(4, 6) * 100).save(tmp_path / "deep.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    files = image_files(str(tmp_path))
    read = {im.name: im for im in read_file_images(files, [f.name for f in files], _pil_decode)}
    assert [im.image_id for im in read.values()] == [1, 2, 3]  # sorted path order
    assert read["broken.jpg"].pixels is None and read["broken.jpg"].problem
    gray = read["gray.png"].pixels
    assert gray is not None and gray.shape == (4, 6, 3) and (gray == 90).all()
    deep = read["deep.png"].pixels  # tfod convert's reader: min..max stretched to 0..255
    assert deep is not None and deep.dtype == np.uint8 and deep.min() == 0 and deep.max() == 255


def test_no_images_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(TfodError, match="no image files here"):
        image_files(str(tmp_path / "*.jpg"))


def test_label_map_checks() -> None:
    two = LabelMap.from_names(["square", "triangle"])
    model = ExportedModel(path=Path("export/saved_model"), kind="saved_model", num_classes=2)
    check_classes(model, two, Path("lm.pbtxt"))
    check_classes(model, None, None)  # no label map anywhere: class ids are the names
    with pytest.raises(TfodError, match="has 2 classes but the label map has 3") as caught:
        check_classes(model, LabelMap.from_names(["a", "b", "c"]), Path("lm.pbtxt"))
    assert "\n" not in str(caught.value) and str(caught.value).startswith("lm.pbtxt: ")
    own = ExportedModel(
        path=Path("export/saved_model"),
        kind="saved_model",
        num_classes=2,
        label_map=two,
        label_map_path=Path("export/label_map.pbtxt"),
    )
    with pytest.raises(TfodError, match="class 1 is 'triangle' here but 'square'"):
        check_classes(own, LabelMap.from_names(["triangle", "square"]), Path("lm.pbtxt"))
    with pytest.raises(TfodError, match="has 2 classes but the label map has 1"):
        check_classes(
            ExportedModel(
                path=Path("m"), kind="saved_model", num_classes=2, label_map=LabelMap.from_names(["a"])
            ),
            None,
            None,
        )


def test_not_a_model_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    for path in (tmp_path, tmp_path / "notes.txt", tmp_path / "missing"):
        with pytest.raises(TfodError, match=r"no exported model here|not a \.tflite file"):
            ExportedModel.open(path)
