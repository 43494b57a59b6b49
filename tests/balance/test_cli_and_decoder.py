"""``tfod balance`` on the command line, and the TF OD API's own decoder on every output record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tfod_tools.cli.app import main
from tfod_tools.data.records import ImageRecord
from tfod_tools.data.synthetic import SyntheticDataset
from tfod_tools.data.tfrecord import read_records


def test_cli_json_prints_the_manifest(
    xray: SyntheticDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bal.record"
    args = ["balance", "--input", str(xray.train_record), "--label-map", str(xray.label_map)]
    args += ["--out", str(out), "--recipe", "chest-xray", "--allow-hflip", "--strategy", "oversample"]
    code = main([*args, "--shards", "2", "--workers", "2", "--seed", "3", "--json", "--emit-sampling-config"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    manifest = json.loads(captured.out)
    assert manifest == json.loads((tmp_path / "bal.record.manifest.json").read_text())
    assert manifest["recipe"]["switches"] == {"hflip": True} and manifest["seed"] == 3
    assert len(manifest["shards"]) == 2 and manifest["sampling_config"]["groups"]
    for key in ("counts_before", "counts_after", "recipe", "shards", "seed"):
        assert key in manifest


def test_cli_errors_exit_2_with_one_line(
    xray: SyntheticDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["balance", "--label-map", str(xray.label_map), "--out", str(tmp_path / "o.record")]
    assert main([*base, "--input", str(xray.eval_record)]) == 2
    assert "evaluation split" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nalbumentations:\n  transform:\n    __class_fullname__: Compose\n"
        "    transforms:\n      - {__class_fullname__: ElasticTransform}\n"
    )
    assert main([*base, "--input", str(xray.train_record), "--recipe", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "ElasticTransform is refused" in err and err.count("error:") == 1
    assert main([*base, "--input", str(xray.train_record), "--on-bad-image", "ignore"]) == 2
    assert not (tmp_path / "o.record").exists()


@pytest.mark.slow
def test_object_detection_decoder_reads_every_output_record(
    xray: SyntheticDataset, shapes: SyntheticDataset, tmp_path: Path
) -> None:
    """Every original and augmented copy decodes with the TF OD API's own TfExampleDecoder."""
    from tfod_tools.data.balance import balance
    from tfod_tools.odapi import compat

    compat.install()
    import tensorflow as tf
    from object_detection.core import standard_fields as fields
    from object_detection.data_decoders import tf_example_decoder

    total = 0
    for ds, recipe in ((xray, "chest-xray"), (shapes, "natural"), (xray, "aerial")):
        out = tmp_path / f"{recipe}.record"
        m = balance(
            [ds.train_record], ds.label_map, out, recipe=recipe, strategy="oversample", seed=1, shards=2
        )
        decoder = tf_example_decoder.TfExampleDecoder(label_map_proto_file=str(ds.label_map))
        checked = 0
        for shard in m["shards"]:
            for data in read_records(shard["path"]):
                ours = ImageRecord.decode(data)
                tensors = decoder.decode(tf.convert_to_tensor(data))
                image = tensors[fields.InputDataFields.image].numpy()
                assert image.shape[:2] == (ours.height, ours.width)
                assert image.shape[2] == 3  # the decoder expands 1-channel images
                boxes = tensors[fields.InputDataFields.groundtruth_boxes].numpy()
                want = np.asarray([ours.ymin, ours.xmin, ours.ymax, ours.xmax], np.float32).T.reshape(-1, 4)
                np.testing.assert_allclose(boxes, want)
                assert np.all((boxes >= 0) & (boxes <= 1))
                classes = tensors[fields.InputDataFields.groundtruth_classes].numpy().tolist()
                assert classes == list(ours.class_label)
                assert tensors[fields.InputDataFields.source_id].numpy().decode() == ours.source_id
                assert tensors[fields.InputDataFields.key].numpy().decode() == ours.key_sha256
                checked += 1
        assert checked == m["records"] > 0
        total += checked
    assert total > 0


def test_cli_creates_a_missing_output_directory(
    xray: SyntheticDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two workers spool their copies next to the output: its directory must exist first."""
    out = tmp_path / "no" / "such" / "dir" / "bal.record"
    args = ["balance", "--input", str(xray.train_record), "--label-map", str(xray.label_map)]
    code = main([*args, "--out", str(out), "--workers", "2", "--strategy", "oversample", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert sorted(p.name for p in out.parent.iterdir()) == ["bal.record", "bal.record.manifest.json"]
    assert json.loads(captured.out)["records"] == sum(1 for _ in read_records(out))


def _two_to_one(tmp_path: Path) -> tuple[Path, Path]:
    """100 images: 32 with a nodule only, 67 with an opacity only, one negative."""
    import io

    from PIL import Image

    from tfod_tools.data.records import write_image_records
    from tfod_tools.odapi.label_map import write_label_map

    buffer = io.BytesIO()
    Image.new("L", (32, 32), 128).save(buffer, format="JPEG")
    classes = [[2]] * 32 + [[1]] * 67 + [[]]
    records = [
        ImageRecord.from_pixels(
            buffer.getvalue(),
            width=32,
            height=32,
            boxes=[[4, 4, 20, 20]] * len(c),
            classes=c,
            label_map={1: "opacity", 2: "nodule"},
            source_id=f"img-{i}",
        )
        for i, c in enumerate(classes)
    ]
    (train,) = write_image_records(tmp_path / "train.record", records)
    return train, write_label_map(tmp_path / "label_map.pbtxt", {1: "opacity", 2: "nodule"})


def test_a_plan_that_adds_nothing_says_why_and_what_would(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train, label_map = _two_to_one(tmp_path)
    base = ["balance", "--input", str(train), "--label-map", str(label_map), "--quiet"]
    assert main([*base, "--out", str(tmp_path / "human.record")]) == 0
    human = " ".join(capsys.readouterr().out.split())
    assert "(0 augmented copies)" in human
    assert "every class is in at least --threshold 0.3 of the images (opacity 67%, nodule 32%)" in human
    assert "pass --threshold 0.67" in human and "--strategy oversample" in human
    assert main([*base, "--out", str(tmp_path / "json.record"), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert plan["copies"] == 0
    why = plan["no_copies"]
    assert why["class_fraction"] == {"opacity": 0.67, "nodule": 0.32} and why["threshold"] == 0.3
    assert why["rarest"] == "nodule" and why["options"] == ["--threshold 0.67", "--strategy oversample"]
    # The advice works: --threshold 0.67 repeats the nodule images (r = 1.45), and only them.
    assert main([*base, "--out", str(tmp_path / "t.record"), "--json", "--threshold", "0.67"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["plan"]["no_copies"] is None
    assert manifest["plan"]["copies"] == manifest["counts_after"]["nodule"]["images"] - 32 > 0
    assert manifest["counts_after"]["opacity"]["images"] == 67
