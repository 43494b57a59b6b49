"""``tfod predict`` end to end on an export of the session's trained tiny SSD (the real CLI)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tfod_tools.data.records import iter_image_records
from tfod_tools.metrics.coco import COCO_TAGS

pytestmark = pytest.mark.slow


def _json(run_tfod: Callable[..., Any], args: list[str]) -> tuple[int, dict[str, Any], str]:
    proc = run_tfod([*args, "--json"])
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else {}), proc.stderr


def test_records_results_score_like_tfod_evaluate(
    tmp_path: Path, exported_model: Path, trained_model_dir: Any, run_tfod: Callable[..., Any]
) -> None:
    out = tmp_path / "pred"
    code, result, stderr = _json(
        run_tfod,
        ["predict", "--model", str(exported_model), "--records", str(trained_model_dir.eval_record),
         "--out", str(out), "--score-threshold", "0", "--no-draw"],
    )  # fmt: skip
    assert code == 0, stderr[-3000:]
    assert result["images"] == 16 and result["skipped"] == []
    assert sorted(p.name for p in out.iterdir()) == [
        "detections.csv", "detections.json", "groundtruth.json", "predict.json", "predict.log"
    ]  # fmt: skip
    code, ours, stderr = _json(
        run_tfod, ["metrics", "--gt", str(out / "groundtruth.json"), "--dt", str(out / "detections.json")]
    )
    assert code == 0, stderr[-3000:]

    model_dir = tmp_path / "model"
    shutil.copytree(
        trained_model_dir.model_dir,
        model_dir,
        copy_function=os.link,
        ignore=shutil.ignore_patterns("eval", "logs"),
    )
    manifest = json.loads((exported_model / "export.json").read_text())
    final = str(manifest["source"]["step"])  # the exported checkpoint (the ledger's best)
    code, evaluated, stderr = _json(
        run_tfod,
        ["evaluate", "--pipeline", str(trained_model_dir.pipeline), "--model-dir", str(model_dir),
         "--checkpoints", final, "--metrics", "coco"],
    )  # fmt: skip
    assert code == 0, stderr[-3000:]
    (entry,) = evaluated["evaluated"]
    for key, tag in COCO_TAGS.items():  # tfod metrics' stats are the evaluation's tags
        assert ours["stats"][key] == pytest.approx(entry["metrics"][tag], abs=1e-6), tag


def _eval_images(record: Path, count: int) -> list[np.ndarray]:
    found = []
    for _, _, rec in iter_image_records(str(record)):
        with Image.open(io.BytesIO(rec.encoded)) as img:
            found.append(np.asarray(img.convert("RGB")))
        if len(found) == count:
            break
    return found


def test_image_folder_outputs_exif_and_bad_images(
    tmp_path: Path, exported_model: Path, trained_model_dir: Any, run_tfod: Callable[..., Any]
) -> None:
    first, second = _eval_images(trained_model_dir.eval_record, 2)
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    Image.fromarray(first).save(images / "a.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view": stored turned the other way
    Image.fromarray(np.ascontiguousarray(np.rot90(first, 1))).save(images / "a_rotated.png", exif=exif)
    Image.fromarray(second[..., 0]).save(images / "sub" / "gray.png")
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "pred"
    code, result, stderr = _json(
        run_tfod, ["predict", "--model", str(exported_model), "--images", str(images), "--out", str(out),
                   "--score-threshold", "0.3"],
    )  # fmt: skip
    assert code == 0, stderr[-3000:]
    assert result["images"] == 3
    assert [s["image"] for s in result["skipped"]] == ["broken.jpg"]
    doc = json.loads((out / "detections.json").read_text())
    assert [im["file_name"] for im in doc["images"]] == ["a.png", "a_rotated.png", "sub/gray.png"]
    assert all(im["width"] == 128 and im["height"] == 128 for im in doc["images"])
    assert {c["id"]: c["name"] for c in doc["categories"]} == {1: "square", 2: "triangle"}
    by_image: dict[int, list[tuple[Any, ...]]] = {}
    for det in doc["annotations"]:
        assert det["score"] >= 0.3
        by_image.setdefault(det["image_id"], []).append((det["category_id"], det["score"], *det["bbox"]))
    assert by_image.get(1), "the trained model finds shapes on an eval image"
    # The rotated copy, turned upright by its EXIF tag, is the same image: the same detections.
    np.testing.assert_allclose(np.array(by_image[1]), np.array(by_image[2]), atol=1e-4)
    with open(out / "detections.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(doc["annotations"])
    assert set(rows[0]) == {"file", "class", "score", "xmin", "ymin", "xmax", "ymax"}
    assert {r["class"] for r in rows} <= {"square", "triangle"}
    annotated = sorted(p.relative_to(out / "images").as_posix() for p in (out / "images").rglob("*.png"))
    assert annotated == ["a.png", "a_rotated.png", "sub/gray.png"]
    with Image.open(out / "images" / "a.png") as drawn:
        assert np.any(np.asarray(drawn.convert("RGB")) != first)  # boxes and labels drawn

    failed = tmp_path / "failed"
    code, _, stderr = _json(
        run_tfod, ["predict", "--model", str(exported_model), "--images", str(images), "--out", str(failed),
                   "--on-bad-image", "fail"],
    )  # fmt: skip
    assert code == 2 and not failed.exists()
    assert stderr.strip().splitlines()[-1].startswith("error: broken.jpg: image does not decode")
    assert not list(tmp_path.glob(".failed.*"))  # the temporary directory is gone too


def test_label_map_that_disagrees_exits_2_and_writes_nothing(
    tmp_path: Path, exported_model: Path, trained_model_dir: Any, run_tfod: Callable[..., Any]
) -> None:
    three = tmp_path / "three.pbtxt"
    three.write_text("".join(f'item {{ id: {i} name: "{n}" }}\n' for i, n in enumerate("abc", 1)))
    swapped = tmp_path / "swapped.pbtxt"
    swapped.write_text('item { id: 1 name: "triangle" }\nitem { id: 2 name: "square" }\n')
    for label_map, message in ((three, "has 2 classes but the label map has 3"), (swapped, "class 1 is")):
        out = tmp_path / f"out_{label_map.stem}"
        proc = run_tfod(
            ["predict", "--model", str(exported_model), "--records", str(trained_model_dir.eval_record),
             "--out", str(out), "--label-map", str(label_map)],
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr[-2000:]
        (line,) = proc.stderr.strip().splitlines()
        assert line.startswith(f"error: {label_map}: ") and message in line
        assert not out.exists()


def test_tflite_model_finds_what_the_saved_model_finds(
    tmp_path: Path,
    exported_model: Path,
    exported_tflite: Path,
    trained_model_dir: Any,
    run_tfod: Callable[..., Any],
) -> None:
    found: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for name, model in (("saved_model", exported_model), ("tflite", exported_tflite / "model.tflite")):
        out = tmp_path / name
        code, _, stderr = _json(
            run_tfod, ["predict", "--model", str(model), "--records", str(trained_model_dir.eval_record),
                       "--out", str(out), "--score-threshold", "0.3", "--no-draw"],
        )  # fmt: skip
        assert code == 0, stderr[-3000:]
        doc = json.loads((out / "detections.json").read_text())
        found[name] = {im["id"]: [] for im in doc["images"]}
        for det in doc["annotations"]:
            found[name][det["image_id"]].append(det)
    assert found["saved_model"].keys() == found["tflite"].keys()
    compared = 0
    for image_id, dets in found["saved_model"].items():
        if not dets:
            continue
        best = max(dets, key=lambda d: d["score"])
        other = max(found["tflite"][image_id], key=lambda d: d["score"])
        # Same top detection: same class (1-based in both), near-equal box and score.
        assert other["category_id"] == best["category_id"]
        np.testing.assert_allclose(other["bbox"], best["bbox"], atol=1.0)
        assert other["score"] == pytest.approx(best["score"], abs=0.02)
        compared += 1
    assert compared >= 8


def test_one_decode_finds_what_two_decodes_found(
    tmp_path: Path, exported_model: Path, trained_model_dir: Any
) -> None:
    """The reader's single decode (TensorFlow's) gives the pixels and detections of the old path:
    ``load_image`` (Pillow's verifying decode), then TensorFlow's decode, then the EXIF tag."""
    from tfod_tools.data.convert.images import load_image
    from tfod_tools.odapi.exported import ExportedModel, decode_image
    from tfod_tools.predict.inputs import read_file_images, upright

    first, second = _eval_images(trained_model_dir.eval_record, 2)
    exif = Image.Exif()
    exif[0x0112] = 6
    writers: dict[str, Callable[[Path], None]] = {
        "a.jpg": lambda p: Image.fromarray(first).save(p, quality=92),
        "a_rotated.jpg": lambda p: Image.fromarray(np.rot90(first, 1)).save(p, quality=92, exif=exif),
        "b_gray.jpg": lambda p: Image.fromarray(second[..., 0]).save(p),
        "b.png": lambda p: Image.fromarray(second).save(p),
        "b_palette.png": lambda p: Image.fromarray(second).convert("P").save(p),
        "b.bmp": lambda p: Image.fromarray(second).save(p),
    }
    files = []
    for name, write in writers.items():
        write(tmp_path / name)
        files.append(tmp_path / name)
    model = ExportedModel.load(exported_model)
    new = list(read_file_images(files, [f.name for f in files], decode_image))
    found = 0
    for file, image in zip(files, new, strict=True):
        with Image.open(file) as img:
            orientation = img.getexif().get(0x0112)
        old = upright(decode_image(load_image(file).encoded), orientation)
        assert image.pixels is not None
        np.testing.assert_array_equal(image.pixels, old, err_msg=file.name)
        before, after = model.detect_one(old), model.detect_one(image.pixels)
        for field_name in ("boxes", "classes", "scores"):
            np.testing.assert_array_equal(getattr(after, field_name), getattr(before, field_name))
        found += len(after.above(0.3))
    assert found > 0, "the trained model finds shapes on the eval images"
