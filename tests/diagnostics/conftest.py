"""Fixtures for the diagnostics tests: model directories built from real files (event files written
with the project's writer, synthetic TF OD API records, a rendered pipeline, stored detections)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tfod_tools.data.model import AnnotatedSet, Detections
from tfod_tools.data.records import read_annotated_set
from tfod_tools.data.synthetic import SyntheticDataset, write_synthetic_dataset
from tfod_tools.odapi.pipeline import render_template, save_pipeline
from tfod_tools.tensorboard.writer import EventWriter

MAP = "DetectionBoxes_Precision/mAP"
LOSS = "Loss/total_loss"

# The numbers users reported: train loss flat, eval loss rising, mAP past its peak.
STEPS = (3000, 4000, 5000)
TRAIN_LOSS = (0.20, 0.21, 0.19)
EVAL_LOSS = (0.26, 0.27, 0.37)
MAPS = (0.80, 0.837, 0.81)


def write_events(model_dir: Path, *, large: float = -1.0, steps: tuple[int, ...] = STEPS) -> None:
    """train/ and eval/ event files with the reported numbers (mAP (large) and AR@100 (large) = ``large``)."""
    with EventWriter(model_dir / "train") as train:
        for step, loss in zip(steps, TRAIN_LOSS, strict=False):
            train.add_scalar(LOSS, loss, step=step)
    with EventWriter(model_dir / "eval") as ev:
        for step, loss, m in zip(steps, EVAL_LOSS, MAPS, strict=False):
            ev.add_scalar(LOSS, loss, step=step)
            ev.add_scalar(MAP, m, step=step)
            ev.add_scalar("DetectionBoxes_Precision/mAP@.50IOU", min(1.0, m + 0.1), step=step)
            ev.add_scalar("DetectionBoxes_Precision/mAP (small)", m - 0.1, step=step)
            ev.add_scalar("DetectionBoxes_Precision/mAP (medium)", m, step=step)
            ev.add_scalar("DetectionBoxes_Precision/mAP (large)", large, step=step)
            ev.add_scalar("DetectionBoxes_Recall/AR@100", m + 0.05, step=step)
            ev.add_scalar("DetectionBoxes_Recall/AR@100 (large)", large, step=step)


def noisy_detections(
    data: AnnotatedSet, seed: int = 0, miss: float = 0.15, fp_per_image: float = 0.5
) -> Detections:
    """Detections synthesised from the ground truth: jittered boxes, some missed, some on background."""
    rng = np.random.default_rng(seed)
    gt = data.ground_truth
    keep = rng.random(len(gt)) > miss
    boxes = gt.boxes[keep].copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    jitter = rng.normal(0.0, 0.08, size=boxes.shape) * np.stack([w, h, w, h], axis=1)
    boxes = boxes + jitter
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1.0)
    scores = np.clip(rng.normal(0.75, 0.15, size=boxes.shape[0]), 0.05, 0.99)
    image_ids = gt.image_ids[keep]
    classes = gt.classes[keep]
    n_fp = int(fp_per_image * len(data.images))
    fp_img = rng.choice(data.images.ids, size=n_fp)
    row = np.searchsorted(data.images.ids, fp_img)
    side = rng.uniform(8, 40, size=n_fp)
    x = rng.uniform(0, data.images.widths[row] - side)
    y = rng.uniform(0, data.images.heights[row] - side)
    fp_boxes = np.stack([x, y, x + side, y + side], axis=1)
    fp_classes = rng.choice(data.category_ids, size=n_fp)
    return Detections.from_arrays(
        np.concatenate([image_ids, fp_img]),
        np.concatenate([boxes, fp_boxes]),
        np.concatenate([classes, fp_classes]),
        np.concatenate([scores, rng.uniform(0.05, 0.6, size=n_fp)]),
    )


def store_detections(model_dir: Path, step: int, data: AnnotatedSet, detections: Detections) -> Path:
    """Store detections in the evaluator's format."""
    from tfod_tools.data.store import save_detections, save_ground_truth

    gt_file = save_ground_truth(model_dir, data)
    return save_detections(model_dir, step, detections, gt_file)


class Builders:
    """The helpers above, handed to tests through the ``b`` fixture (test modules cannot import conftest)."""

    MAP = MAP
    LOSS = LOSS
    STEPS = STEPS
    TRAIN_LOSS = TRAIN_LOSS
    EVAL_LOSS = EVAL_LOSS
    MAPS = MAPS
    write_events = staticmethod(write_events)
    noisy_detections = staticmethod(noisy_detections)
    store_detections = staticmethod(store_detections)


@pytest.fixture(scope="session")
def b() -> type[Builders]:
    """The builders namespace (:class:`Builders`)."""
    return Builders


@pytest.fixture(scope="session")
def xray(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    """A small xray-like data set (no COCO-large boxes by construction)."""
    return write_synthetic_dataset(
        tmp_path_factory.mktemp("xray"), "xray-like", train_images=40, eval_images=24, seed=3
    )


@pytest.fixture(scope="session")
def pipeline_file(xray: SyntheticDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny SSD template rendered for the xray-like records, with ``score_threshold: 0.3``."""
    config = render_template(
        "tiny-ssd", label_map=xray.label_map, train_records=xray.train_record, eval_records=xray.eval_record
    )
    nms = config.model.ssd.post_processing.batch_non_max_suppression
    nms.score_threshold = 0.3
    return save_pipeline(config, tmp_path_factory.mktemp("pipe") / "pipeline.config")


@pytest.fixture()
def model_dir(tmp_path: Path, xray: SyntheticDataset) -> Path:
    """Event files with the reported numbers and detections stored at every step."""
    write_events(tmp_path)
    data = read_annotated_set(xray.eval_record, xray.label_map)
    for k, step in enumerate(STEPS):
        store_detections(tmp_path, step, data, noisy_detections(data, seed=k))
    return tmp_path
