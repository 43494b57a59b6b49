"""Ground-truth statistics a diagnosis needs: COCO area buckets and class counts.

Area buckets are :func:`tfod_tools.data.areas.area_bucket_counts` of the ground truth's ``area``
(pycocotools' ranges, bounds inclusive on both sides, so a box of exactly 32² counts as small *and*
medium; for records the area the API's evaluation uses, see :mod:`tfod_tools.data.areas`); crowd
and ignored boxes are left out, as COCO leaves them out of every count.

>>> from tfod_tools.data.model import AnnotatedSet, GroundTruth, ImageTable
>>> gt = GroundTruth.from_arrays([1, 1, 2], [[0, 0, 10, 10], [0, 0, 40, 40], [0, 0, 5, 5]], [1, 2, 1])
>>> area_bucket_counts(gt)
{'small': 2, 'medium': 1, 'large': 0}
>>> data = AnnotatedSet(ImageTable.from_sizes([1, 2, 3], [64] * 3, [64] * 3), {1: "a", 2: "b"}, gt)
>>> class_counts(data), images_per_class(data), negative_images(data)
({'a': 2, 'b': 1}, {'a': 2, 'b': 1}, 1)
"""

from __future__ import annotations

import numpy as np

from tfod_tools.data import areas
from tfod_tools.data.model import AnnotatedSet, GroundTruth


def counted(gt: GroundTruth) -> GroundTruth:
    """The boxes COCO counts (not crowd, not ignored)."""
    return gt.select(~(gt.iscrowd | gt.ignore))


def area_bucket_counts(gt: GroundTruth) -> dict[str, int]:
    """Number of counted ground-truth boxes in each COCO area bucket."""
    return areas.area_bucket_counts(gt.area, ignore=gt.iscrowd | gt.ignore)


def class_counts(data: AnnotatedSet) -> dict[str, int]:
    """Boxes per category name (every category listed, zeros included), in id order."""
    gt = data.ground_truth
    return {str(data.categories[c]): int((gt.classes == c).sum()) for c in data.category_ids.tolist()}


def images_per_class(data: AnnotatedSet) -> dict[str, int]:
    """Images holding at least one box of each category."""
    gt = data.ground_truth
    return {
        str(data.categories[c]): int(np.unique(gt.image_ids[gt.classes == c]).shape[0])
        for c in data.category_ids.tolist()
    }


def negative_images(data: AnnotatedSet) -> int:
    """Images without any ground-truth box."""
    return int(len(data.images) - np.unique(data.ground_truth.image_ids).shape[0])
