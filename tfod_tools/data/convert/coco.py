"""COCO JSON (+ image folder) -> :class:`~tfod_tools.data.convert.core.SourceSet`.

The JSON is read by :func:`tfod_tools.data.coco.load_coco_ground_truth` (the one COCO loader);
here each image's ``file_name`` is resolved against the image folder (default: the JSON's folder).
Category ids of the file are kept as label map ids; ``iscrowd`` becomes ``image/object/is_crowd``,
``area`` (the segmentation area COCO evaluation uses) becomes ``image/object/area``, the image id
becomes ``image/source_id`` (as the API's ``create_coco_tf_record.py`` does). Images without
annotations are negatives.

>>> import json, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> doc = {"images": [{"id": 3, "file_name": "a.jpg", "width": 8, "height": 6}],
...        "categories": [{"id": 5, "name": "cell"}],
...        "annotations": [{"id": 1, "image_id": 3, "category_id": 5, "bbox": [1, 1, 4, 2], "area": 7}]}
>>> _ = (d / "gt.json").write_text(json.dumps(doc))
>>> src = read_coco_source(d / "gt.json")
>>> src.images[0].path.name, src.images[0].source_id, src.images[0].objects[0].box, dict(src.categories)
('a.jpg', '3', (1.0, 1.0, 5.0, 3.0), {5: 'cell'})
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfod_tools.data.coco import load_coco_ground_truth
from tfod_tools.data.convert.core import SourceImage, SourceObject, SourceSet
from tfod_tools.data.convert.registry import register_converter
from tfod_tools.errors import TfodError

__all__ = ["read_coco_source"]


@register_converter("coco", order=10)
def read_coco_source(annotations: str | Path, images: str | Path | None = None) -> SourceSet:
    """Read a COCO ground-truth JSON; image files are looked up in ``images`` (default: the JSON's folder)."""
    path = Path(annotations)
    if path.is_dir():
        raise TfodError("is a directory", path=path, fix="--annotations takes the COCO JSON file")
    image_dir = path.parent if images is None else Path(images)
    if not image_dir.is_dir():
        raise TfodError("image folder not found", path=image_dir, fix="pass --images DIR")
    data = load_coco_ground_truth(path)
    gt = data.ground_truth
    order = np.argsort(gt.image_ids, kind="stable")
    starts = np.searchsorted(gt.image_ids[order], data.images.ids, side="left")
    ends = np.searchsorted(gt.image_ids[order], data.images.ids, side="right")
    out: list[SourceImage] = []
    for k, image_id in enumerate(data.images.ids.tolist()):
        objects = []
        for row in order[starts[k] : ends[k]].tolist():
            x1, y1, x2, y2 = (float(v) for v in gt.boxes[row])
            objects.append(
                SourceObject(
                    box=(x1, y1, x2, y2),
                    class_name=data.categories[int(gt.classes[row])],
                    difficult=int(gt.difficult[row]),
                    is_crowd=int(gt.iscrowd[row]),
                    area=float(gt.area[row]),
                )
            )
        width, height = int(data.images.widths[k]), int(data.images.heights[k])
        out.append(
            SourceImage(
                path=image_dir / data.images.file_names[k],
                source_id=str(image_id),
                objects=tuple(objects),
                width=width or None,
                height=height or None,
                where=f"{path.name}: image id {image_id}",
            )
        )
    names = list(data.categories.values())
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise TfodError(
            f"category names are not unique: {', '.join(dup)}",
            path=path,
            fix="give every category its own name (a label map maps names to ids)",
        )
    return SourceSet("coco", out, inputs=[path], categories=dict(data.categories))
