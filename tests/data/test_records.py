"""TF OD API record layout <-> the in-memory model, and the API's own TfExampleDecoder."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfod_tools.data.example import (
    bytes_feature,
    decode_example,
    encode_example,
    float_feature,
    int64_feature,
)
from tfod_tools.data.records import (
    KNOWN_KEYS,
    ImageRecord,
    iter_image_records,
    read_annotated_set,
    read_image_records,
    write_image_records,
)
from tfod_tools.data.tfrecord import write_records
from tfod_tools.errors import TfodError
from tfod_tools.odapi.label_map import LabelMap, write_label_map

LABELS = LabelMap.from_names(["cat", "dog", "bird"])


@st.composite
def _images(draw: st.DrawFn) -> tuple[int, int, np.ndarray, list[int]]:
    width = draw(st.integers(1, 2000))
    height = draw(st.integers(1, 2000))
    n = draw(st.integers(0, 6))
    boxes = []
    for _ in range(n):
        x1 = draw(st.floats(0, width, allow_nan=False))
        y1 = draw(st.floats(0, height, allow_nan=False))
        x2 = draw(st.floats(x1, width, allow_nan=False))
        y2 = draw(st.floats(y1, height, allow_nan=False))
        boxes.append([x1, y1, x2, y2])
    classes = draw(st.lists(st.sampled_from(LABELS.ids), min_size=n, max_size=n))
    return width, height, np.asarray(boxes, dtype=np.float64).reshape(-1, 4), classes


@settings(max_examples=25, deadline=None)
@given(st.lists(_images(), max_size=6), st.integers(1, 3))
def test_round_trip_through_files(
    tmp_path_factory: pytest.TempPathFactory,
    images: list[tuple[int, int, np.ndarray, list[int]]],
    shards: int,
) -> None:
    directory = tmp_path_factory.mktemp("rec")
    records = [
        ImageRecord.from_pixels(
            f"img{i}".encode(),
            width=w,
            height=h,
            boxes=b,
            classes=c,
            label_map=LABELS,
            source_id=f"src-{i}",
            difficult=[k % 2 for k in range(len(c))],
        )
        for i, (w, h, b, c) in enumerate(images)
    ]
    paths = write_image_records(directory / "train.record", records, num_shards=shards)
    assert len(paths) == shards
    # Round robin over shards: read back in writing order per shard, compare as a multiset.
    back = read_image_records(paths)
    assert sorted(back, key=lambda r: r.source_id) == sorted(records, key=lambda r: r.source_id)

    single = write_image_records(directory / "one.record", records)
    data = read_annotated_set(single, LABELS)
    assert data.images.ids.tolist() == list(range(1, len(images) + 1))
    assert data.images.file_names == tuple(f"src-{i}" for i in range(len(images)))
    assert data.images.widths.tolist() == [float(w) for w, _, _, _ in images]
    assert data.categories == LABELS.categories()
    want_boxes = np.concatenate([b for _, _, b, _ in images]) if images else np.zeros((0, 4))
    want_ids = [i + 1 for i, (_, _, b, _) in enumerate(images) for _ in range(len(b))]
    assert data.ground_truth.image_ids.tolist() == want_ids
    assert data.ground_truth.classes.tolist() == [c for _, _, _, cs in images for c in cs]
    # float32 normalised storage: relative error ~1e-7 of the image side.
    np.testing.assert_allclose(data.ground_truth.boxes, want_boxes, rtol=0, atol=2000 * 2e-7)
    np.testing.assert_allclose(
        data.ground_truth.area,
        (want_boxes[:, 2] - want_boxes[:, 0]) * (want_boxes[:, 3] - want_boxes[:, 1]),
        rtol=1e-6,
        atol=1e-3,
    )
    assert data.ground_truth.difficult.tolist() == [
        bool(k % 2) for _, _, _, cs in images for k in range(len(cs))
    ]


def test_all_decoder_keys_round_trip_and_extra_keys_survive() -> None:
    record = ImageRecord(
        encoded=b"\xff\xd8jpeg",
        format="jpeg",
        height=10,
        width=20,
        filename="a.jpg",
        source_id="7",
        key_sha256="abc",
        xmin=(0.25,),
        ymin=(0.5,),
        xmax=(0.75,),
        ymax=(1.0,),
        class_text=("dog",),
        class_label=(2,),
        area=(12.0,),
        is_crowd=(1,),
        difficult=(0,),
        group_of=(1,),
        weight=(0.5,),
        image_class_text=("dog",),
        image_class_label=(2,),
        image_class_confidence=(1.0,),
        neg_category_ids=(3,),
        not_exhaustive_category_ids=(1,),
        extra={"image/object/mask": bytes_feature([b"png"])},
    )
    features = decode_example(record.encode())
    assert set(features) == KNOWN_KEYS | {"image/object/mask"}
    back = ImageRecord.decode(record.encode())
    assert back == record
    assert back.extra["image/object/mask"].values == [b"png"]


def test_negative_image_writes_empty_typed_lists() -> None:
    record = ImageRecord.from_pixels(b"x", width=4, height=4, boxes=[], classes=[], label_map=LABELS)
    features = decode_example(record.encode())
    for key in ("xmin", "ymin", "xmax", "ymax"):
        assert features[f"image/object/bbox/{key}"].kind == "float"
        assert len(features[f"image/object/bbox/{key}"]) == 0
    assert features["image/object/class/label"].kind == "int64"


def test_labels_from_text_and_missing_size(tmp_path: Path) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (40, 30)).save(buffer, format="PNG")
    features = {
        "image/encoded": bytes_feature([buffer.getvalue()]),
        "image/format": bytes_feature([b"png"]),
        "image/object/bbox/xmin": float_feature([0.5]),
        "image/object/bbox/ymin": float_feature([0.0]),
        "image/object/bbox/xmax": float_feature([1.0]),
        "image/object/bbox/ymax": float_feature([0.5]),
        "image/object/class/text": bytes_feature([b"bird"]),
    }
    path = tmp_path / "x.record"
    write_records(path, [encode_example(features)])
    data = read_annotated_set(path, LABELS)
    assert data.ground_truth.classes.tolist() == [3]
    assert data.images.widths.tolist() == [40.0] and data.images.heights.tolist() == [30.0]
    assert data.ground_truth.boxes.tolist() == [[20.0, 0.0, 40.0, 15.0]]
    assert data.images.file_names == ("1",)
    with pytest.raises(TfodError, match=r"record 0: .*no class labels"):
        read_annotated_set(path)


def test_label_not_in_label_map(tmp_path: Path) -> None:
    record = ImageRecord.from_pixels(
        b"x", width=4, height=4, boxes=[[0, 0, 1, 1]], classes=[3], label_map=LABELS
    )
    path = write_image_records(tmp_path / "x.record", [record, record])[0]
    lm = write_label_map(tmp_path / "lm.pbtxt", ["cat", "dog"])
    with pytest.raises(TfodError) as info:
        read_annotated_set(path, lm)
    assert str(path) in str(info.value) and "record 0" in str(info.value) and "[3]" in str(info.value)
    # Without a label map the categories come from the records.
    assert read_annotated_set(path).categories == {3: "bird"}


def test_not_an_example_names_file_and_record(tmp_path: Path) -> None:
    good = ImageRecord.from_pixels(b"x", width=4, height=4, boxes=[], classes=[], label_map=LABELS).encode()
    path = tmp_path / "mixed.record"
    write_records(path, [good, b"\x0a\x05ab"])
    with pytest.raises(TfodError) as info:
        list(iter_image_records(path))
    assert str(path) in str(info.value) and "record 1" in str(info.value)
    wrong_kind = encode_example({"image/object/bbox/xmin": int64_feature([1])})
    write_records(path, [wrong_kind])
    with pytest.raises(TfodError, match=r"record 0: .*bbox/xmin is a int64 list"):
        list(iter_image_records(path))
    inconsistent = replace(ImageRecord.decode(good), xmin=(0.1,), ymin=(0.1,), xmax=(0.2,), ymax=(0.2,))
    with pytest.raises(ValueError, match="without class labels"):
        inconsistent.encode()


@pytest.mark.slow
def test_object_detection_decoder_reads_our_records(tmp_path: Path) -> None:
    """The TF OD API's own TfExampleDecoder decodes what we write (JPEG, grayscale PNG, negatives)."""
    from tfod_tools.odapi import compat

    compat.install()
    import tensorflow as tf
    from object_detection.core import standard_fields as fields
    from object_detection.data_decoders import tf_example_decoder
    from PIL import Image

    def encoded(mode: str, size: tuple[int, int], fmt: str) -> bytes:
        buffer = io.BytesIO()
        Image.new(mode, size, color=128).save(buffer, format=fmt)
        return buffer.getvalue()

    records = [
        ImageRecord.from_pixels(
            encoded("RGB", (64, 48), "JPEG"),
            width=64,
            height=48,
            boxes=[[8, 4, 40, 36], [0, 0, 64, 48]],
            classes=[2, 1],
            label_map=LABELS,
            filename="a.jpg",
            source_id="a",
            difficult=[1, 0],
            is_crowd=[0, 1],
        ),
        ImageRecord.from_pixels(
            encoded("L", (32, 32), "PNG"),
            width=32,
            height=32,
            boxes=[],
            classes=[],
            label_map=LABELS,
            format="png",
        ),
    ]
    path = write_image_records(tmp_path / "x.record", records)[0]
    label_map_path = write_label_map(tmp_path / "label_map.pbtxt", LABELS)
    decoder = tf_example_decoder.TfExampleDecoder(label_map_proto_file=str(label_map_path))
    decoded = [decoder.decode(raw) for raw in tf.data.TFRecordDataset(str(path))]

    first = {k: v.numpy() for k, v in decoded[0].items()}
    assert first[fields.InputDataFields.image].shape == (48, 64, 3)
    assert first[fields.InputDataFields.source_id] == b"a"
    assert first[fields.InputDataFields.filename] == b"a.jpg"
    assert first[fields.InputDataFields.key] == records[0].key_sha256.encode()
    np.testing.assert_allclose(
        first[fields.InputDataFields.groundtruth_boxes],
        [[4 / 48, 8 / 64, 36 / 48, 40 / 64], [0, 0, 1, 1]],  # ymin, xmin, ymax, xmax
        rtol=1e-6,
    )
    assert first[fields.InputDataFields.groundtruth_classes].tolist() == [2, 1]
    assert first[fields.InputDataFields.groundtruth_difficult].tolist() == [1, 0]
    assert first[fields.InputDataFields.groundtruth_is_crowd].tolist() == [False, True]
    np.testing.assert_allclose(first[fields.InputDataFields.groundtruth_area], [32 * 32, 64 * 48])
    np.testing.assert_allclose(first[fields.InputDataFields.groundtruth_weights], [1.0, 1.0])

    second = {k: v.numpy() for k, v in decoded[1].items()}
    assert second[fields.InputDataFields.image].shape == (32, 32, 3)  # grayscale PNG -> 3 channels
    assert second[fields.InputDataFields.groundtruth_boxes].shape == (0, 4)
    assert second[fields.InputDataFields.groundtruth_classes].shape == (0,)
