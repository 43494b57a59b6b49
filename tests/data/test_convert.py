"""tfod convert: COCO / VOC / CSV -> records, read back with read_annotated_set; images; bad inputs; CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tfod_tools.cli.app import main
from tfod_tools.data.convert import convert, load_image
from tfod_tools.data.records import read_annotated_set, read_image_records
from tfod_tools.data.tfrecord import write_records
from tfod_tools.errors import TfodError
from tfod_tools.odapi.label_map import LabelMap, read_label_map, write_label_map


def _rgb(path: Path, width: int, height: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def _gray(path: Path, width: int, height: int) -> Path:
    Image.fromarray(np.full((height, width), 90, np.uint8)).save(path)
    return path


def _gray16(path: Path, width: int, height: int) -> Path:
    pixels = (np.arange(width * height, dtype=np.uint16).reshape(height, width) * 37) % 4096  # 12-bit data
    assert cv2.imwrite(str(path), pixels)
    return path


def _write_coco(d: Path) -> Path:
    (d / "img").mkdir()
    _rgb(d / "img" / "a.jpg", 64, 48)
    _gray(d / "img" / "b.png", 32, 40)
    _rgb(d / "img" / "c.jpg", 20, 20)
    doc = {
        "images": [
            {"id": 10, "file_name": "a.jpg", "width": 64, "height": 48},
            {"id": 11, "file_name": "b.png", "width": 32, "height": 40},
            {"id": 12, "file_name": "c.jpg", "width": 20, "height": 20},
        ],
        "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 3, "bbox": [4, 5, 20, 10], "area": 150.0, "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 7, "bbox": [30, 0, 34, 48], "iscrowd": 1},
            {"id": 3, "image_id": 11, "category_id": 7, "bbox": [1.5, 2.5, 10, 12], "iscrowd": 0},
        ],
    }
    path = d / "instances.json"
    path.write_text(json.dumps(doc))
    return path


def test_coco_round_trip_keeps_ids_crowd_area_and_negatives(tmp_path: Path) -> None:
    ann = _write_coco(tmp_path)
    summary = convert("coco", ann, tmp_path / "out" / "train.record", images=tmp_path / "img", num_shards=2)
    assert [p.name for p in summary.outputs] == ["train.record-00000-of-00002", "train.record-00001-of-00002"]
    assert read_label_map(tmp_path / "out" / "label_map.pbtxt").categories() == {3: "cat", 7: "dog"}
    assert (summary.images, summary.boxes, summary.negative_images) == (3, 3, 1)
    assert summary.per_class == {"cat": {"images": 1, "boxes": 1}, "dog": {"images": 2, "boxes": 2}}
    # round robin: records 0 and 2 in shard 0, record 1 in shard 1
    assert [len(read_image_records(p)) for p in summary.outputs] == [2, 1]
    records = {r.source_id: r for r in read_image_records(summary.outputs)}
    assert set(records) == {"10", "11", "12"}
    assert records["10"].format == "jpeg" and records["11"].format == "png"
    assert records["11"].encoded == (tmp_path / "img" / "b.png").read_bytes()  # stored as is
    data = read_annotated_set(summary.outputs, tmp_path / "out" / "label_map.pbtxt")
    by_name = dict(zip(data.images.file_names, data.images.ids.tolist(), strict=True))
    gt = data.ground_truth
    rows = {
        (int(i), tuple(np.round(b, 3).tolist()), int(c), bool(k))
        for i, b, c, k in zip(gt.image_ids, gt.boxes, gt.classes, gt.iscrowd, strict=True)
    }
    assert rows == {
        (by_name["10"], (4.0, 5.0, 24.0, 15.0), 3, False),
        (by_name["10"], (30.0, 0.0, 64.0, 48.0), 7, True),
        (by_name["11"], (1.5, 2.5, 11.5, 14.5), 7, False),
    }
    assert sorted(np.round(gt.area, 3).tolist()) == [120.0, 150.0, 1632.0]  # COCO area kept, else w*h


def _write_voc(root: Path) -> None:
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "ImageSets" / "Main").mkdir(parents=True)
    _rgb(root / "JPEGImages" / "000001.jpg", 50, 40)
    _gray(root / "JPEGImages" / "000002.jpg", 30, 30)
    objects = [
        ("dog", 1, 0, (2, 3, 20, 30)),
        ("person", 0, 1, (10, 10, 50, 40)),
    ]
    body = "".join(
        f"<object><name>{n}</name><pose>Left</pose><truncated>{t}</truncated><difficult>{d}</difficult>"
        f"<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, d, t, b in objects
    )
    (root / "Annotations" / "000001.xml").write_text(
        f"<annotation><folder>VOC</folder><filename>000001.jpg</filename>"
        f"<size><width>50</width><height>40</height><depth>3</depth></size>{body}</annotation>"
    )
    (root / "Annotations" / "000002.xml").write_text(
        "<annotation><filename>000002.jpg</filename><size><width>30</width><height>30</height></size>"
        "</annotation>"
    )
    (root / "ImageSets" / "Main" / "train.txt").write_text("000001\n")


def test_voc_round_trip_difficult_truncated_and_negative(tmp_path: Path) -> None:
    root = tmp_path / "VOC"
    _write_voc(root)
    summary = convert("voc", root, tmp_path / "voc.record")
    assert (summary.images, summary.boxes, summary.negative_images) == (2, 2, 1)
    assert read_label_map(tmp_path / "label_map.pbtxt").categories() == {1: "dog", 2: "person"}
    records = read_image_records(tmp_path / "voc.record")
    assert [r.source_id for r in records] == ["000001.jpg", "000002.jpg"]
    assert records[0].difficult == (1, 0)
    assert list(records[0].extra["image/object/truncated"].values) == [0, 1]
    data = read_annotated_set(tmp_path / "voc.record", tmp_path / "label_map.pbtxt")
    np.testing.assert_allclose(data.ground_truth.boxes, [[2, 3, 20, 30], [10, 10, 50, 40]], atol=1e-4)
    assert data.ground_truth.difficult.tolist() == [True, False]
    assert data.ground_truth.classes.tolist() == [1, 2]
    listed = convert(
        "voc", root / "Annotations", tmp_path / "train.record", image_list=root / "ImageSets/Main/train.txt"
    )
    assert listed.images == 1


def test_generic_csv_and_classes_from_existing_label_map(tmp_path: Path) -> None:
    _rgb(tmp_path / "a.jpg", 40, 30)
    _gray(tmp_path / "neg.png", 16, 16)
    (tmp_path / "labels.csv").write_text(
        "filename,width,height,class,xmin,ymin,xmax,ymax\n"
        "a.jpg,40,30,zebra,1,2,11,12\n"
        "neg.png,16,16,,,,,\n"
        "a.jpg,40,30,ant,20,5,45,25\n"  # xmax beyond the image: clipped to 40
    )
    classes = write_label_map(tmp_path / "given.pbtxt", {4: "ant", 9: "zebra"})
    summary = convert("csv", tmp_path / "labels.csv", tmp_path / "o" / "x.record", classes=classes)
    assert summary.label_map is None and not (tmp_path / "o" / "label_map.pbtxt").exists()
    assert (summary.images, summary.boxes, summary.negative_images, summary.boxes_clipped) == (2, 2, 1, 1)
    data = read_annotated_set(tmp_path / "o" / "x.record", classes)
    assert data.ground_truth.classes.tolist() == [9, 4]
    np.testing.assert_allclose(data.ground_truth.boxes, [[1, 2, 11, 12], [20, 5, 40, 25]], atol=1e-4)
    assert data.images.file_names == ("a.jpg", "neg.png")
    with pytest.raises(TfodError, match="classes not in the label map: zebra"):
        convert("csv", tmp_path / "labels.csv", tmp_path / "y.record", classes=LabelMap.from_names(["ant"]))


def test_rsna_csv_negatives_several_rows_and_16_bit_png(tmp_path: Path) -> None:
    (tmp_path / "png").mkdir()
    _gray16(tmp_path / "png" / "p1.png", 64, 64)
    _gray(tmp_path / "png" / "p2.png", 64, 64)
    (tmp_path / "train_labels.csv").write_text(
        "patientId,x,y,width,height,Target\np1,10,12,20,30,1\np2,,,,,0\np1,40,40,8,8,1\n"
    )
    summary = convert(
        "csv",
        tmp_path / "train_labels.csv",
        tmp_path / "rsna.record",
        images=tmp_path / "png",
        class_name="Lung Opacity",
    )
    assert summary.format == "csv-rsna"
    assert (summary.images, summary.boxes, summary.negative_images) == (2, 2, 1)
    assert summary.per_class == {"Lung Opacity": {"images": 1, "boxes": 2}}
    assert summary.image_notes == {"16-bit PNG scaled to 8-bit (min..max -> 0..255)": 1}
    records = read_image_records(tmp_path / "rsna.record")
    pixels = np.asarray(Image.open(io.BytesIO(records[0].encoded)))
    assert pixels.dtype == np.uint8 and pixels.min() == 0 and pixels.max() == 255
    data = read_annotated_set(tmp_path / "rsna.record", tmp_path / "label_map.pbtxt")
    np.testing.assert_allclose(data.ground_truth.boxes, [[10, 12, 30, 42], [40, 40, 48, 48]], atol=1e-4)


def test_sixteen_bit_keep_and_other_formats(tmp_path: Path) -> None:
    src = _gray16(tmp_path / "deep.png", 8, 8)
    kept = load_image(src, sixteen_bit="keep")
    assert kept.encoded == src.read_bytes() and kept.note is not None and "high byte" in kept.note
    Image.fromarray(np.full((5, 7, 3), 40, np.uint8)).save(tmp_path / "x.bmp")
    bmp = load_image(tmp_path / "x.bmp")
    assert (bmp.format, bmp.width, bmp.height) == ("png", 7, 5)
    Image.fromarray(np.full((4, 6), 1000, np.uint16)).save(tmp_path / "x.tif")
    tif = load_image(tmp_path / "x.tif")
    assert tif.format == "png" and np.asarray(Image.open(io.BytesIO(tif.encoded))).shape == (4, 6)


def test_bad_image_fails_or_is_skipped(tmp_path: Path) -> None:
    _rgb(tmp_path / "ok.jpg", 20, 20)
    good = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "labels.csv").write_text(
        "filename,width,height,class,xmin,ymin,xmax,ymax\n"
        "ok.jpg,20,20,a,1,1,5,5\n"
        "trunc.jpg,20,20,a,1,1,5,5\n"
        "missing.jpg,20,20,a,1,1,5,5\n"
        "ok.jpg,20,20,a,9,9,3,3\n"  # inverted box: dropped, listed
    )
    with pytest.raises(TfodError, match=r"trunc\.jpg.*--on-bad-image skip"):
        convert("csv", tmp_path / "labels.csv", tmp_path / "out.record")
    assert not (tmp_path / "out.record").exists()  # nothing half-written
    assert not list(tmp_path.glob(".out.record*"))
    summary = convert("csv", tmp_path / "labels.csv", tmp_path / "out.record", on_bad_image="skip")
    assert (summary.images, summary.boxes, summary.skipped_images, summary.skipped_boxes) == (1, 1, 2, 1)
    reasons = " ".join(item["reason"] for item in summary.skipped)
    assert "image file not found" in reasons and "cannot decode" in reasons and "inverted box" in reasons


def test_size_differing_from_annotation_is_a_bad_image(tmp_path: Path) -> None:
    _rgb(tmp_path / "a.jpg", 20, 10)
    (tmp_path / "l.csv").write_text(
        "filename,width,height,class,xmin,ymin,xmax,ymax\na.jpg,10,20,a,1,1,5,5\n"
    )
    with pytest.raises(TfodError, match="annotated size 10x20 differs from the image's 20x10"):
        convert("csv", tmp_path / "l.csv", tmp_path / "o.record")


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("l.csv", "file,w\na,1\n", "unknown CSV header file,w"),
        (
            "l.csv",
            "filename,width,height,class,xmin,ymin,xmax,ymax\na.jpg,20,20,a,1,x,5,5\n",
            "line 2: ymin 'x'",
        ),
        (
            "l.csv",
            "filename,width,height,class,xmin,ymin,xmax,ymax\na.jpg,20,20,a,1,,5,5\n",
            "line 2: a box row",
        ),
        ("l.csv", "patientId,x,y,width,height,Target\np,1,2,,4,1\n", "line 2: Target is 1"),
    ],
)
def test_bad_csv_names_file_and_line(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(TfodError, match=message) as info:
        convert("csv", tmp_path / name, tmp_path / "o.record")
    assert str(tmp_path / name) in str(info.value)


def test_bad_xml_and_json_name_the_file(tmp_path: Path) -> None:
    root = tmp_path / "VOC"
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "Annotations" / "x.xml").write_text("<annotation><object><name>a</name></object>")
    with pytest.raises(TfodError, match=r"x\.xml: malformed XML at line 1"):
        convert("voc", root, tmp_path / "o.record")
    (root / "Annotations" / "x.xml").write_text("<annotation><object><name>a</name></object></annotation>")
    with pytest.raises(TfodError, match=r"x\.xml: <object> 0 \(a\) has no <bndbox>"):
        convert("voc", root, tmp_path / "o.record")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(TfodError, match=r"bad\.json: malformed JSON"):
        convert("coco", tmp_path / "bad.json", tmp_path / "o.record")


def test_refuses_to_overwrite_an_input(tmp_path: Path) -> None:
    _rgb(tmp_path / "a.jpg", 20, 20)
    (tmp_path / "l.csv").write_text(
        "filename,width,height,class,xmin,ymin,xmax,ymax\na.jpg,20,20,a,1,1,5,5\n"
    )
    before = (tmp_path / "a.jpg").read_bytes()
    with pytest.raises(TfodError, match="would overwrite one of the inputs"):
        convert("csv", tmp_path / "l.csv", tmp_path / "a.jpg")
    with pytest.raises(TfodError, match="would overwrite one of the inputs"):
        convert("csv", tmp_path / "l.csv", tmp_path / "o.record", label_map_out=tmp_path / "l.csv")
    assert (tmp_path / "a.jpg").read_bytes() == before


def test_cli_json_summary_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ann = _write_coco(tmp_path)
    args = ["convert", "--from", "coco", "-a", str(ann), "--images", str(tmp_path / "img")]
    code = main([*args, "--out", str(tmp_path / "r" / "x.record"), "--shards", "3", "--json", "-q"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"images", "boxes", "negative_images", "per_class", "outputs", "label_map", "skipped"} <= set(doc)
    assert doc["images"] == 3 and doc["per_class"]["dog"] == {"images": 2, "boxes": 2}
    assert [Path(p).name for p in doc["outputs"]] == [f"x.record-0000{i}-of-00003" for i in range(3)]
    assert main([*args, "--out", str(tmp_path / "y.record"), "--on-bad-image", "maybe"]) == 2
    assert "--on-bad-image" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert (
        main(
            [
                "convert",
                "--from",
                "coco",
                "-a",
                str(tmp_path / "bad.json"),
                "--out",
                str(tmp_path / "z"),
                "-q",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.json" in err


def test_corrupt_record_file_reported_by_reader(tmp_path: Path) -> None:
    write_records(tmp_path / "x.record", [b"not an example \xff\xff"])
    with pytest.raises(TfodError, match="record 0"):
        read_image_records(tmp_path / "x.record")


@pytest.mark.slow
def test_object_detection_decoder_reads_converted_records(tmp_path: Path) -> None:
    """The TF OD API's TfExampleDecoder decodes converted JPEG, grayscale PNG and 16-bit PNG images."""
    from tfod_tools.odapi import compat

    compat.install()
    import tensorflow as tf
    from object_detection.core import standard_fields as fields
    from object_detection.data_decoders import tf_example_decoder

    _rgb(tmp_path / "a.jpg", 40, 30)
    _gray(tmp_path / "g.png", 16, 24)
    _gray16(tmp_path / "d.png", 32, 32)
    (tmp_path / "l.csv").write_text(
        "filename,width,height,class,xmin,ymin,xmax,ymax\n"
        "a.jpg,40,30,b,4,3,20,15\ng.png,16,24,a,0,0,16,24\nd.png,32,32,,,,,\n"
    )
    summary = convert("csv", tmp_path / "l.csv", tmp_path / "o.record")
    decoder = tf_example_decoder.TfExampleDecoder(label_map_proto_file=str(summary.label_map))
    decoded = [
        {k: v.numpy() for k, v in decoder.decode(raw).items()}
        for raw in tf.data.TFRecordDataset(str(tmp_path / "o.record"))
    ]
    images = [d[fields.InputDataFields.image] for d in decoded]
    assert [im.shape for im in images] == [(30, 40, 3), (24, 16, 3), (32, 32, 3)]
    assert images[2].max() == 255  # scaled 16-bit: not the near-black high byte
    np.testing.assert_allclose(
        decoded[0][fields.InputDataFields.groundtruth_boxes], [[0.1, 0.1, 0.5, 0.5]], rtol=1e-6
    )
    assert decoded[0][fields.InputDataFields.groundtruth_classes].tolist() == [2]
    assert decoded[1][fields.InputDataFields.groundtruth_classes].tolist() == [1]
    assert decoded[2][fields.InputDataFields.groundtruth_boxes].shape == (0, 4)
