"""The detections store: every evaluated checkpoint's detections, and the ground truth once.

Layout under ``MODEL_DIR/eval/detections/``:

- ``groundtruth-<hash>.npz``: the images (id, original width/height, file name, the eval input's
  hash key), the categories and the ground-truth boxes, as the evaluation saw them; ``<hash>``
  is the content hash of those arrays, so a model directory evaluated on one eval set stores it
  once (another eval set gets its own file);
- ``step-<STEP>.npz``: the detections of the checkpoint at global step ``STEP`` (boxes
  ``[x1, y1, x2, y2]`` in original-image pixels, classes, scores), the name of its ground-truth
  file and the per-class PR counts written to TensorBoard.

Files are written atomically. :func:`load_detections` rebuilds the :class:`AnnotatedSet` (ground
truth + detections + images + categories) of a step without running the model again.

>>> import tempfile, pathlib, numpy as np
>>> from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
>>> data = AnnotatedSet(
...     images=ImageTable.from_sizes([1, 2], [64, 64], [48, 48], ["a.jpg", "b.jpg"]),
...     categories={1: "cat"},
...     ground_truth=GroundTruth.from_arrays([1], [[1, 2, 30, 40]], [1]),
...     detections=Detections.from_arrays([2], [[0, 0, 5, 5]], [1], [0.5]))
>>> model_dir = pathlib.Path(tempfile.mkdtemp())
>>> gt_file = save_ground_truth(model_dir, data, keys=[11, 22])
>>> path = save_detections(model_dir, 300, data.detections, gt_file)
>>> path.name, gt_file == save_ground_truth(model_dir, data, keys=[11, 22])
('step-300.npz', True)
>>> back = load_detections(model_dir, 300)
>>> back.images.file_names, back.ground_truth.boxes.tolist(), back.detections.scores.tolist()
(('a.jpg', 'b.jpg'), [[1.0, 2.0, 30.0, 40.0]], [0.5])
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfod_tools.data.model import AnnotatedSet, Detections, GroundTruth, ImageTable
from tfod_tools.errors import TfodError
from tfod_tools.fsutil import atomic_path

__all__ = [
    "detections_dir",
    "detections_path",
    "load_detections",
    "load_pr_counts",
    "save_detections",
    "save_ground_truth",
]


def detections_dir(model_dir: str | Path) -> Path:
    """``MODEL_DIR/eval/detections``."""
    return Path(model_dir) / "eval" / "detections"


def detections_path(model_dir: str | Path, step: int) -> Path:
    """Where the detections of ``step`` are stored."""
    return detections_dir(model_dir) / f"step-{int(step)}.npz"


def _save_npz(path: Path, arrays: Mapping[str, Any]) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return path


def _ground_truth_arrays(data: AnnotatedSet, keys: Sequence[int] | None) -> dict[str, Any]:
    gt = data.ground_truth
    ids = sorted(data.categories)
    return {
        "image_ids": data.images.ids,
        "image_widths": data.images.widths,
        "image_heights": data.images.heights,
        "image_file_names": np.asarray(data.images.file_names, dtype=str),
        "image_keys": np.asarray(keys if keys is not None else data.images.ids, dtype=np.int64),
        "category_ids": np.asarray(ids, dtype=np.int64),
        "category_names": np.asarray([str(data.categories[i]) for i in ids], dtype=str),
        "gt_image_ids": gt.image_ids,
        "gt_boxes": gt.boxes,
        "gt_classes": gt.classes,
        "gt_area": gt.area,
        "gt_iscrowd": gt.iscrowd,
        "gt_difficult": gt.difficult,
        "gt_ignore": gt.ignore,
    }


def save_ground_truth(model_dir: str | Path, data: AnnotatedSet, keys: Sequence[int] | None = None) -> str:
    """Store ``data``'s images, categories and ground truth once; return the file's name."""
    arrays = _ground_truth_arrays(data, keys)
    digest = hashlib.sha256()
    for name in sorted(arrays):
        value = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{value.dtype.str}:{value.shape}".encode())
        digest.update(value.tobytes())
    file_name = f"groundtruth-{digest.hexdigest()[:16]}.npz"
    path = detections_dir(model_dir) / file_name
    if not path.is_file():
        _save_npz(path, arrays)
    return file_name


def save_detections(
    model_dir: str | Path,
    step: int,
    detections: Detections,
    ground_truth_file: str,
    pr_counts: Mapping[str, Any] | None = None,
) -> Path:
    """Store one step's detections (and its per-class PR counts ``name -> (4, T)`` array)."""
    arrays: dict[str, Any] = {
        "ground_truth_file": np.asarray(ground_truth_file),
        "step": np.asarray(int(step), dtype=np.int64),
        "det_image_ids": detections.image_ids,
        "det_boxes": detections.boxes,
        "det_classes": detections.classes,
        "det_scores": detections.scores,
    }
    names = sorted(pr_counts or {})
    if names:
        arrays["pr_names"] = np.asarray(names, dtype=str)
        arrays["pr_counts"] = np.stack([np.asarray((pr_counts or {})[n], dtype=np.float64) for n in names])
    return _save_npz(detections_path(model_dir, step), arrays)


def _open(path: Path) -> Any:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise TfodError(
            "no stored detections for this step", path=path, fix="run `tfod evaluate` on the model directory"
        ) from None
    except (OSError, ValueError) as exc:
        raise TfodError(f"unreadable detections file: {exc}", path=path, fix="re-run with --force") from None


def load_detections(model_dir: str | Path, step: int, path: str | Path | None = None) -> AnnotatedSet:
    """The ground truth, detections, images and categories of the checkpoint at ``step``."""
    det_path = Path(path) if path is not None else detections_path(model_dir, step)
    with _open(det_path) as det:
        gt_path = det_path.parent / str(det["ground_truth_file"])
        detections = Detections.from_arrays(
            det["det_image_ids"], det["det_boxes"], det["det_classes"], det["det_scores"]
        )
    with _open(gt_path) as g:
        images = ImageTable.from_sizes(
            g["image_ids"], g["image_widths"], g["image_heights"], [str(n) for n in g["image_file_names"]]
        )
        categories = {int(i): str(n) for i, n in zip(g["category_ids"], g["category_names"], strict=True)}
        ground_truth = GroundTruth.from_arrays(
            g["gt_image_ids"],
            g["gt_boxes"],
            g["gt_classes"],
            area=g["gt_area"],
            iscrowd=g["gt_iscrowd"],
            difficult=g["gt_difficult"],
            ignore=g["gt_ignore"],
        )
    return AnnotatedSet(
        images=images, categories=categories, ground_truth=ground_truth, detections=detections
    )


def load_pr_counts(path: str | Path) -> dict[str, Any]:
    """The per-class PR counts (``name -> (4, T)``: tp, fp, tn, fn per threshold) stored with a step."""
    with _open(Path(path)) as det:
        if "pr_names" not in det:
            return {}
        return {str(n): det["pr_counts"][i] for i, n in enumerate(det["pr_names"])}
