"""data.classes: one class-of-a-box rule (the API decoder's) for inspect, read_annotated_set and balance;
display-name label maps (the API's mscoco_label_map.pbtxt) named and counted as the API does."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from tfod_tools.data.balance import balance
from tfod_tools.data.classes import ClassLookup, category_names
from tfod_tools.data.example import bytes_feature, encode_example, float_feature, int64_feature
from tfod_tools.data.inspect import inspect_records
from tfod_tools.data.records import ImageRecord, read_annotated_set, write_image_records
from tfod_tools.errors import TfodError
from tfod_tools.odapi.label_map import read_label_map

MSCOCO = Path(__file__).parent / "mscoco_label_map" / "mscoco_label_map.pbtxt"


def _jpeg(width: int = 64, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 80, 40)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _example(source_id: str, texts: list[bytes], labels: list[int]) -> bytes:
    """A record as create_coco_tf_record writes one (text and label), or with either left out."""
    n = max(len(texts), len(labels))
    features = {
        "image/encoded": bytes_feature([_jpeg()]),
        "image/format": bytes_feature([b"jpeg"]),
        "image/width": int64_feature([64]),
        "image/height": int64_feature([48]),
        "image/source_id": bytes_feature([source_id.encode()]),
        "image/object/bbox/xmin": float_feature([0.1 + 0.05 * k for k in range(n)]),
        "image/object/bbox/ymin": float_feature([0.1] * n),
        "image/object/bbox/xmax": float_feature([0.5 + 0.05 * k for k in range(n)]),
        "image/object/bbox/ymax": float_feature([0.6] * n),
    }
    if texts:
        features["image/object/class/text"] = bytes_feature(texts)
    if labels:
        features["image/object/class/label"] = int64_feature(labels)
    return encode_example(features)


def _write(path: Path, examples: list[bytes]) -> Path:
    records = [ImageRecord.decode(e) for e in examples]
    (out,) = write_image_records(path, records)
    return out


# label 3 (car) but text "person" (1); text only "bicycle"; label only 3; display name "boat" and name "NA".
DISAGREE = [
    ("x", [b"person"], [3]),
    ("y", [b"bicycle"], []),
    ("z", [], [3]),
    ("w", [b"boat", b"NA"], [9, 9]),
]


def test_the_rule() -> None:
    lookup = ClassLookup(read_label_map(MSCOCO))
    assert lookup.ids(["person", "/m/01g317", "NA", "boat", "cat"], [9, 9, 9, 9, 9]) == [1, 1, 9, 9, -1]
    assert lookup.ids([], [3, 5]) == [3, 5]
    assert lookup.ids([], [], num_boxes=1) == [-1]
    assert category_names(read_label_map(MSCOCO)) == {
        1: "person",
        2: "bicycle",
        3: "car",
        5: "airplane",
        9: "boat",
    }


def test_inspect_read_annotated_set_and_balance_agree(tmp_path: Path) -> None:
    path = _write(tmp_path / "train.record", [_example(s, t, lab) for s, t, lab in DISAGREE])
    lm = read_label_map(MSCOCO)
    # The API's classes: x -> person (text wins over label 3), y -> bicycle, z -> car, w -> boat, boat.
    expected = {"person": 1, "bicycle": 1, "car": 1, "airplane": 0, "boat": 2}

    report = inspect_records(path, lm)
    assert {name: c["boxes"] for name, c in report.per_class.items()} == expected
    assert report.issue("class_text_mismatch") is not None

    data = read_annotated_set(path, lm)
    assert data.ground_truth.classes.tolist() == [1, 2, 3, 9, 9]
    assert data.categories == category_names(lm)

    m = balance([path], MSCOCO, tmp_path / "bal.record", strategy="oversample", seed=0)
    before = {k: v["boxes"] for k, v in m["counts_before"].items() if k != "negative"}
    assert before == expected


def test_unknown_text_beside_a_valid_label_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.record", [_example("x", [b"zebra"], [1])])
    report = inspect_records(path, MSCOCO)
    assert report.issue("unknown_label") is not None and report.per_class["person"]["boxes"] == 0
    with pytest.raises(TfodError, match=r"record 0: class texts \['zebra'\] \(labels \[1\]\)"):
        read_annotated_set(path, MSCOCO)
    with pytest.raises(TfodError, match="zebra"):
        balance([path], MSCOCO, tmp_path / "bal.record")


@pytest.mark.parametrize("with_labels", [True, False])
def test_balance_counts_display_name_records(tmp_path: Path, with_labels: bool) -> None:
    """create_coco_tf_record writes the display name as text; counts_after was 0 for every class."""
    examples = [_example(f"p{k}", [b"person"] * 2, [1, 1] if with_labels else []) for k in range(6)] + [
        _example("c0", [b"car"], [3] if with_labels else [])
    ]
    path = _write(tmp_path / "train.record", examples)
    m = balance([path], MSCOCO, tmp_path / "bal.record", strategy="oversample", seed=0)
    after = m["counts_after"]
    assert m["counts_before"]["person"] == {"images": 6, "boxes": 12}
    assert m["counts_before"]["car"] == {"images": 1, "boxes": 1}
    assert after["person"]["boxes"] >= 12 and after["car"]["images"] > 1  # oversampled, and counted
    assert after["person"]["images"] + after["car"]["images"] == m["records"]
    assert "/m/01g317" not in json.dumps(m) and "NA" not in json.dumps(m["counts_after"])
    assert set(m["plan"]["class_fraction"]) == {"person", "car"}


def test_evaluate_names_categories_like_the_api() -> None:
    """tfod evaluate's per-class tags use display names, as the API's category index does."""
    from tfod_tools.evaluation.runner import EvaluationSession
    from tfod_tools.evaluation.scoring import checkpoint_metrics

    session = object.__new__(EvaluationSession)
    session.label_map = read_label_map(MSCOCO)
    session._names = {}
    image = SimpleNamespace(
        key=7,
        width=100,
        height=100,
        gt_boxes=np.array([[0.0, 0.0, 50.0, 50.0]]),
        gt_classes=np.array([1]),
        gt_crowd=np.array([False]),
        gt_difficult=np.array([False]),
        gt_area=None,
        det_boxes=np.array([[0.0, 0.0, 50.0, 50.0]]),
        det_classes=np.array([1]),
        det_scores=np.array([0.9]),
    )
    data, _ = session._annotated(SimpleNamespace(images=[image]))
    tags = checkpoint_metrics(data, ("coco", "voc"))
    assert tags["DetectionBoxes_PerformanceByCategory/mAP/person"] == pytest.approx(1.0)
    assert "PascalBoxes_PerformanceByCategory/AP@0.5IOU/person" in tags
    assert not any("/m/" in tag for tag in tags)


def test_per_class_tags_spell_names_as_the_api() -> None:
    """Pascal tags carry the NFKD form of a name (object_detection_evaluation), COCO tags the name."""
    from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
    from tfod_tools.evaluation.scoring import checkpoint_metrics

    data = AnnotatedSet(
        images=ImageTable.from_sizes([1], [100], [100]),
        categories={1: "caf\u00e9"},
        ground_truth=GroundTruth.from_arrays([1], [[0, 0, 50, 50]], [1]),
        detections=Detections.from_arrays([1], [[0, 0, 50, 50]], [1], [0.9]),
    )
    tags = checkpoint_metrics(data, ("coco", "voc"))
    assert "DetectionBoxes_PerformanceByCategory/mAP/caf\u00e9" in tags
    assert "PascalBoxes_PerformanceByCategory/AP@0.5IOU/cafe\u0301" in tags


@pytest.mark.slow
def test_the_rule_is_the_api_decoders(tmp_path: Path) -> None:
    """The API's TfExampleDecoder, given the label map, decodes the same classes."""
    from tfod_tools.odapi import compat

    compat.install()
    import tensorflow as tf
    from object_detection.core import standard_fields as fields
    from object_detection.data_decoders.tf_example_decoder import TfExampleDecoder

    decoder = TfExampleDecoder(label_map_proto_file=str(MSCOCO))
    lookup = ClassLookup(read_label_map(MSCOCO))
    cases = [*DISAGREE, ("u", [b"zebra"], [1]), ("v", [b"car", b"airplane"], [])]
    for source_id, texts, labels in cases:
        example = _example(source_id, texts, labels)
        decoded = decoder.decode(tf.constant(example))
        api = decoded[fields.InputDataFields.groundtruth_classes].numpy().tolist()
        record = ImageRecord.decode(example)
        assert lookup.ids(record.class_text, record.class_label, record.num_boxes) == api, source_id
