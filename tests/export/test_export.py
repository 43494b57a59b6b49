"""``tfod export --checkpoint best`` with the real API: what it writes, and what the exports score.

The SavedModel is run on the eval images as ``tfod evaluate`` feeds them (each record's image
decoded by TensorFlow, uint8, one at a time: the model's own ``preprocess`` resizes inside the
graph, as it does in the eval input pipeline), its detections scaled to original-image pixels, and
scored with the same engine against the ground truth ``tfod evaluate`` stored for that step
(:mod:`tfod_tools.data.store`, :func:`tfod_tools.evaluation.scoring.checkpoint_metrics`). Its COCO
values must equal the ledger's within 1e-6; the float TFLite model's mAP within 0.01; the int8
model must run, and its drop (against the float TFLite model at the same score threshold) is
reported.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tfod_tools.data import store
from tfod_tools.data.model import AnnotatedSet, Detections
from tfod_tools.data.records import iter_image_records
from tfod_tools.evaluation.scoring import checkpoint_metrics
from tfod_tools.fsutil import sha256_file
from tfod_tools.ledger import DEFAULT_METRIC, Ledger
from tfod_tools.metrics.coco import COCO_TAGS
from tfod_tools.odapi.pipeline import load_pipeline

pytestmark = pytest.mark.slow


def _eval_images(record: Path) -> Iterator[tuple[str, Any]]:
    from tfod_tools.odapi.export import decode_image

    for _, _, rec in iter_image_records(record):
        yield (rec.filename or rec.source_id), decode_image(rec.encoded)


def _score(
    ground_truth: AnnotatedSet, per_image: dict[str, tuple[Any, Any, Any]], min_score: float = 0.0
) -> dict[str, float]:
    """COCO tags of normalised [ymin, xmin, ymax, xmax] detections (classes from 1) per image name."""
    images = ground_truth.images
    ids, boxes, classes, scores = [], [], [], []
    for image_id, name, width, height in zip(
        images.ids, images.file_names, images.widths, images.heights, strict=True
    ):
        b, c, s = per_image[name]
        keep = s >= min_score
        b, c, s = b[keep], c[keep], s[keep]
        scale = np.array([height, width, height, width], dtype=np.float64)
        pixels = np.asarray(b, dtype=np.float64).reshape(-1, 4) * scale
        boxes.append(pixels[:, [1, 0, 3, 2]])
        ids.append(np.full(len(s), image_id))
        classes.append(np.asarray(c).round().astype(np.int64))
        scores.append(np.asarray(s, dtype=np.float64))
    detections = Detections.from_arrays(
        np.concatenate(ids), np.concatenate(boxes), np.concatenate(classes), np.concatenate(scores)
    )
    data = AnnotatedSet(
        images=images,
        categories=ground_truth.categories,
        ground_truth=ground_truth.ground_truth,
        detections=detections,
    )
    return checkpoint_metrics(data, ("coco",))


def _coco(tags: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in tags.items() if k.startswith("DetectionBoxes_")}


def _ledger_best(model_dir: Path) -> Any:
    with Ledger.open(model_dir, readonly=True) as ledger:
        return ledger.best()


def _tflite_detections(exports: Any, tflite: Path) -> dict[str, tuple[Any, Any, Any]]:
    from tfod_tools.odapi.export import run_tflite, tflite_input

    prepare = tflite_input(load_pipeline(exports.model.pipeline))
    names, inputs = [], []
    for name, image in _eval_images(exports.model.eval_record):
        names.append(name)
        inputs.append(prepare(image))
    return {
        name: (out["boxes"], out["classes"] + 1, out["scores"])
        for name, out in zip(names, run_tflite(tflite, inputs), strict=True)
    }


def test_export_json_names_the_best_checkpoint_and_the_files(exports: Any) -> None:
    best = _ledger_best(exports.model.model_dir)
    out, doc = exports.float_dir, exports.float_json
    manifest = json.loads((out / "export.json").read_text())
    assert doc["source"] == manifest["source"]
    assert manifest["source"]["step"] == best.step
    assert manifest["source"]["content_hash"] == best.content_hash
    assert manifest["metrics"][DEFAULT_METRIC] == pytest.approx(best.metrics[DEFAULT_METRIC], abs=0)
    assert sorted(p.name for p in out.iterdir()) == [
        "export.json",
        "export.log",
        "label_map.pbtxt",
        "model.tflite",
        "pipeline.config",
        "saved_model",
    ]
    assert manifest["files"] == {name: sha256_file(out / name) for name in manifest["files"]}
    assert "saved_model/saved_model.pb" in manifest["files"] and "model.tflite" in manifest["files"]
    assert (out / "label_map.pbtxt").read_bytes() == exports.model.label_map.read_bytes()
    exported = load_pipeline(out / "pipeline.config")
    nms = exported.model.ssd.post_processing.batch_non_max_suppression
    source_nms = load_pipeline(exports.model.pipeline).model.ssd.post_processing.batch_non_max_suppression
    assert manifest["post_processing"]["score_threshold"] == pytest.approx(source_nms.score_threshold)
    assert nms.score_threshold == pytest.approx(source_nms.score_threshold)
    assert exported.eval_input_reader[0].label_map_path == str((out / "label_map.pbtxt").resolve())
    assert manifest["versions"]["tensorflow"] and manifest["versions"]["object_detection"]
    int8 = exports.int8_json
    assert int8["post_processing"]["score_threshold"] == pytest.approx(exports.int8_threshold)
    assert int8["options"]["tflite_quantize"] == "int8"
    thresholded = load_pipeline(exports.int8_dir / "pipeline.config").model.ssd.post_processing
    assert thresholded.batch_non_max_suppression.score_threshold == pytest.approx(exports.int8_threshold)
    assert exports.after == exports.before  # the model directory: not one byte or mtime changed


def test_saved_model_scores_what_the_checkpoint_scored(exports: Any) -> None:
    from tfod_tools.odapi import compat

    compat.install()
    import tensorflow as tf

    best = _ledger_best(exports.model.model_dir)
    ground_truth = store.load_detections(exports.model.model_dir, best.step)
    serve = tf.saved_model.load(str(exports.float_dir / "saved_model")).signatures["serving_default"]
    per_image = {}
    for name, image in _eval_images(exports.model.eval_record):
        out = serve(input_tensor=tf.constant(image[np.newaxis]))
        n = int(out["num_detections"][0])
        per_image[name] = (
            out["detection_boxes"][0, :n].numpy(),
            out["detection_classes"][0, :n].numpy(),
            out["detection_scores"][0, :n].numpy(),
        )
    ours = _coco(_score(ground_truth, per_image))
    ledger = _coco(dict(best.metrics))
    assert set(COCO_TAGS.values()) <= set(ours)
    assert ours.keys() == ledger.keys()
    for tag, value in ledger.items():
        assert ours[tag] == pytest.approx(value, abs=1e-6), tag


def test_tflite_float_within_001_and_int8_runs(exports: Any, record_property: Any) -> None:
    best = _ledger_best(exports.model.model_dir)
    ground_truth = store.load_detections(exports.model.model_dir, best.step)
    float_detections = _tflite_detections(exports, exports.float_dir / "model.tflite")
    float_map = _score(ground_truth, float_detections)[DEFAULT_METRIC]
    record_property("tflite_float_map", float_map)
    record_property("checkpoint_map", best.metrics[DEFAULT_METRIC])
    assert float_map == pytest.approx(best.metrics[DEFAULT_METRIC], abs=0.01)

    int8_detections = _tflite_detections(exports, exports.int8_dir / "model.tflite")
    assert any(len(s) for _, _, s in int8_detections.values())
    assert all((s >= exports.int8_threshold - 1e-6).all() for _, _, s in int8_detections.values())
    int8_map = _score(ground_truth, int8_detections)[DEFAULT_METRIC]
    same_threshold = _score(ground_truth, float_detections, min_score=exports.int8_threshold)[DEFAULT_METRIC]
    drop = same_threshold - int8_map
    record_property("int8_map", int8_map)
    record_property("int8_drop_vs_float_at_threshold", drop)
    print(
        f"mAP: checkpoint {best.metrics[DEFAULT_METRIC]:.4f}, TFLite float {float_map:.4f}; at score "
        f"threshold {exports.int8_threshold}: float {same_threshold:.4f}, int8 {int8_map:.4f} "
        f"(drop {drop:.4f})"
    )
    assert 0.0 <= int8_map <= 1.0
