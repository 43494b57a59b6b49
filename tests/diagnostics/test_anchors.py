"""Anchors in numpy against the API's own generator and model; coverage of tiny and thin boxes."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfod_tools.data.records import ImageRecord, write_image_records
from tfod_tools.diagnostics.anchors import AnchorModel, SsdAnchorSpec, best_iou
from tfod_tools.diagnostics.engine import diagnose
from tfod_tools.metrics.boxes import iou_matrix
from tfod_tools.odapi.label_map import write_label_map
from tfod_tools.odapi.pipeline import render_template, save_pipeline
from tfod_tools.odapi.resizer import ImageResizer

LABELS = {1: "speck", 2: "wire", 3: "blob"}


def _png(size: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (size, size), 128).save(buffer, format="PNG")
    return buffer.getvalue()


def _records(path: Path, boxes_per_image: list[list[tuple[list[float], int]]], size: int = 256) -> Path:
    encoded = _png(size)
    records = [
        ImageRecord.from_pixels(
            encoded,
            width=size,
            height=size,
            boxes=[b for b, _ in boxes] or np.zeros((0, 4)),
            classes=[c for _, c in boxes],
            label_map=LABELS,
            format="png",
            source_id=f"img-{k}",
        )
        for k, boxes in enumerate(boxes_per_image)
    ]
    (written,) = write_image_records(path, records)
    return written


@pytest.fixture(scope="module")
def tiny_thin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """256 px images with 4-6 px specks, 120x4 / 4x120 wires and well-sized 64 px blobs; tiny SSD pipeline."""
    root = tmp_path_factory.mktemp("tiny_thin")
    rng = np.random.default_rng(0)
    images = []
    for _ in range(12):
        boxes: list[tuple[list[float], int]] = []
        for _ in range(3):
            x, y = rng.uniform(10, 240, size=2)
            s = rng.uniform(4, 6)
            boxes.append(([x, y, x + s, y + s], 1))
        x, y = rng.uniform(10, 120, size=2)
        boxes.append(([x, y, x + 120, y + 4], 2))
        boxes.append(([y, x, y + 4, x + 120], 2))
        # A 76 px square (38 px in the 128 px input) centred on a 4x4-layer cell, where a 38.4 px anchor sits.
        cx = float(rng.choice([96, 160]))
        boxes.append(([cx - 38, cx - 38, cx + 38, cx + 38], 3))
        images.append(boxes)
    records = _records(root / "train.record", images)
    label_map = write_label_map(root / "label_map.pbtxt", LABELS)
    config = render_template("tiny-ssd", label_map=label_map, train_records=records, eval_records=records)
    return save_pipeline(config, root / "pipeline.config")


def test_tiny_and_thin_boxes_raise_anchor_coverage(tiny_thin: Path, tmp_path: Path, b: Any) -> None:
    b.write_events(tmp_path)
    d = diagnose(tmp_path, pipeline=tiny_thin)
    (finding,) = d.get("anchor_coverage")
    ev = finding.evidence
    assert ev["boxes"] == 12 * 6
    assert ev["matched_threshold"] == 0.5
    per_class = {r[0]: r for r in ev["per_class"]["rows"]}
    assert per_class["speck"][3] == 1.0  # every 2-3 px (input) speck is below 0.5
    assert per_class["wire"][3] == 1.0  # every 30:1 wire too
    assert per_class["blob"][3] == 0.0  # the blobs sit on an anchor
    assert ev["tiny"] == 36 and ev["thin"] == 24
    assert ev["share_below"] == round(60 / 72, 3)
    elongation = {r[0]: r for r in ev["per_elongation"]["rows"]}
    assert elongation[">= 5:1"][1:] == [24, 24, 1.0]
    changes = {r[0]: r[2] for r in ev["what_if"]["rows"]}
    assert changes["as configured"] == ev["share_below"]
    added = next(k for k in changes if k.startswith("aspect_ratios +="))
    assert "10" in added and "0.1" in added  # 30:1 wires round to the widest common ratio
    assert finding.severity == "warning"
    assert "tiny" not in finding.fix or "Measured" in finding.fix


def test_well_covered_boxes_raise_nothing() -> None:
    from tfod_tools.data.model import AnnotatedSet, GroundTruth, ImageTable
    from tfod_tools.diagnostics.findings.anchors import anchor_coverage

    model = AnchorModel(
        SsdAnchorSpec(min_scale=0.15, max_scale=0.9, aspect_ratios=(1.0, 2.0, 0.5)),
        ImageResizer("fixed_shape_resizer", height=128, width=128),
    )
    grid = model.anchors(128, 128).boxes()
    picked = grid[::7][:40]  # anchors themselves, in input pixels == original pixels (128 px images)
    data = AnnotatedSet(
        ImageTable.from_sizes([1], [128], [128]),
        {1: "a"},
        GroundTruth.from_arrays(np.ones(len(picked), dtype=int), picked, np.ones(len(picked), dtype=int)),
    )
    assert anchor_coverage(model, data) is None


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(*[st.floats(0, 200)] * 2, *[st.floats(0.5, 80)] * 2), min_size=1, max_size=12),
    st.lists(st.tuples(*[st.floats(0, 200)] * 2, *[st.floats(0.5, 80)] * 2), min_size=1, max_size=30),
)
def test_best_iou_is_the_row_maximum_of_the_iou_matrix(boxes: list[Any], anchors: list[Any]) -> None:
    def xyxy(rows: list[Any]) -> np.ndarray:
        a = np.asarray(rows, dtype=np.float64)
        return np.stack([a[:, 0], a[:, 1], a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]], axis=1)

    bx, an = xyxy(boxes), xyxy(anchors)
    iou, idx = best_iou(bx, an, chunk=5)
    full = iou_matrix(bx, an)
    np.testing.assert_allclose(iou, full.max(axis=1), atol=1e-12)
    np.testing.assert_allclose(full[np.arange(len(bx)), idx], iou, atol=1e-12)


def test_keep_aspect_ratio_inputs_and_fpn_levels() -> None:
    from tfod_tools.diagnostics.anchors import MultiscaleAnchorSpec

    resizer = ImageResizer(
        "keep_aspect_ratio_resizer", min_dimension=320, max_dimension=640, pad_to_max_dimension=True
    )
    # 426.67 px rounds to 427; padded to 640 x 640
    assert resizer.resize(height=480, width=640) == (320, 427, 640, 640, 320 / 480, 427 / 640)
    model = AnchorModel(MultiscaleAnchorSpec(3, 7, 4.0, (1.0, 2.0, 0.5), 2), resizer)
    grid = model.anchors(640, 640)
    assert [layer.grid for layer in grid.layers] == [(80, 80), (40, 40), (20, 20), (10, 10), (5, 5)]
    assert grid.boxes().shape == (6 * (6400 + 1600 + 400 + 100 + 25), 4)
    # Level 3: 32 px base, octave scales 1 and 2^0.5, stride 8 with a half-stride offset.
    first = grid.layers[0].boxes()[:6]
    np.testing.assert_allclose(first[0], [4 - 16, 4 - 16, 4 + 16, 4 + 16])


@pytest.mark.slow
def test_anchors_match_the_api_generator() -> None:
    from tfod_tools.odapi import compat

    compat.install()
    from object_detection.builders import anchor_generator_builder

    for name in ("tiny-ssd", "tiny-fpnlite", "ssd-mobilenet-v2-fpnlite-320"):
        config = render_template(name, label_map={1: "a"}, train_records="t", eval_records="e")
        model = AnchorModel.from_pipeline(config)
        assert model is not None
        for h, w in ((128, 128), (320, 320), (300, 500), (200, 100), (640, 480)):
            generator = anchor_generator_builder.build(config.model.ssd.anchor_generator)
            lists = generator.generate(model.feature_map_sizes(h, w), im_height=h, im_width=w)
            api = np.concatenate([bl.get().numpy() for bl in lists]) * np.array([h, w, h, w])
            np.testing.assert_allclose(model.anchors(h, w).boxes(), api[:, [1, 0, 3, 2]], atol=1e-3)


@pytest.mark.slow
def test_anchors_and_feature_maps_match_the_built_models() -> None:
    from tfod_tools.odapi import compat

    compat.install()
    import tensorflow as tf
    from object_detection.builders import model_builder

    for name in ("tiny-ssd", "tiny-fpnlite", "ssd-mobilenet-v2-fpnlite-320"):
        config = render_template(name, label_map={1: "a"}, train_records="t", eval_records="e")
        model = AnchorModel.from_pipeline(config)
        assert model is not None
        h, w = model.resizer.height, model.resizer.width
        detector = model_builder.build(config.model, is_training=False)
        images, shapes = detector.preprocess(tf.zeros([1, h, w, 3]))
        detector.predict(images, shapes)
        api = detector.anchors.get().numpy() * np.array([h, w, h, w])
        np.testing.assert_allclose(model.anchors(h, w).boxes(), api[:, [1, 0, 3, 2]], atol=1e-3)
