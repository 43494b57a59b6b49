"""COCO JSON I/O: a ground-truth file and a results (detections) list to and from an AnnotatedSet.

COCO boxes are ``[x, y, width, height]``; inside tfod_tools they become ``[x, y, x + width,
y + height]`` and keep the file's ``width, height`` beside them (``wh``: ``(x + w) - x`` is not always
``w``), so COCO IoUs are pycocotools' own arithmetic, bit for bit. A ground-truth
annotation without ``area`` gets its box area ``width * height``. Masks (``segmentation``) are kept
only when asked (``masks=True``) and become COCO RLE, polygons included, as pycocotools' ``annToRLE``
does (this needs pycocotools' mask utilities). A results list is read as ``COCO.loadRes`` reads it,
areas included (see :func:`load_coco_results`).

>>> import json, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> gt = {"images": [{"id": 7, "width": 64, "height": 48, "file_name": "a.jpg"}],
...       "categories": [{"id": 1, "name": "cell"}],
...       "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [2, 3, 10, 5], "iscrowd": 0}]}
>>> _ = (d / "gt.json").write_text(json.dumps(gt))
>>> dt = [{"image_id": 7, "category_id": 1, "bbox": [2, 3, 9, 5], "score": 0.5}]
>>> _ = (d / "dt.json").write_text(json.dumps(dt))
>>> data = load_coco(d / "gt.json", d / "dt.json")
>>> data.ground_truth.boxes.tolist(), data.ground_truth.area.tolist(), data.detections.scores.tolist()
([[2.0, 3.0, 12.0, 8.0]], [50.0], [0.5])
>>> coco_results(data.detections)[0]["bbox"]
[2.0, 3.0, 9.0, 5.0]
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfod_tools.data.model import RLE, AnnotatedSet, Detections, GroundTruth, ImageTable, _preview
from tfod_tools.errors import TfodError
from tfod_tools.fsutil import write_text_atomic


def _read_json(path: str | Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise TfodError("file not found", path=path, fix="check the path") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TfodError(f"malformed JSON ({exc})", path=path, fix="pass a COCO JSON file") from None


def _xywh_to_xyxy(rows: Sequence[Any], what: str, ids: Sequence[Any], path: str | Path | None) -> np.ndarray:
    try:
        arr = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    except (TypeError, ValueError):
        raise TfodError(f"{what}: every bbox must be 4 numbers [x, y, w, h]", path=path) from None
    if arr.shape[0] != len(ids):
        raise TfodError(f"{what}: every bbox must be 4 numbers [x, y, w, h]", path=path)
    bad = ~np.all(np.isfinite(arr), axis=1)
    if bad.any():
        raise TfodError(
            f"{what} with NaN/inf bbox: ids {_preview([ids[i] for i in np.flatnonzero(bad)])}", path=path
        )
    neg = (arr[:, 2] < 0) | (arr[:, 3] < 0)
    if neg.any():
        raise TfodError(
            f"{what} with negative width/height: ids {_preview([ids[i] for i in np.flatnonzero(neg)])}",
            path=path,
            fix="COCO boxes are [x, y, width, height] with width, height >= 0",
        )
    out = arr.copy()
    out[:, 2] = arr[:, 0] + arr[:, 2]
    out[:, 3] = arr[:, 1] + arr[:, 3]
    return out


def _to_rle(segm: Any, height: int, width: int) -> RLE:
    from pycocotools import mask as mask_utils

    if isinstance(segm, list):
        rles = mask_utils.frPyObjects(segm, height, width)
        return dict(mask_utils.merge(rles))
    if isinstance(segm, dict) and isinstance(segm.get("counts"), list):
        return dict(mask_utils.frPyObjects(segm, height, width))
    if isinstance(segm, dict) and "counts" in segm and "size" in segm:
        return dict(segm)
    raise TfodError("segmentation is neither polygons nor RLE")


def _masks(
    anns: list[dict[str, Any]],
    sizes: dict[int, tuple[int, int]],
    what: str,
    path: str | Path | None,
    fix: str = "use --iou-type bbox",
) -> tuple[RLE, ...]:
    out: list[RLE] = []
    wrong: list[Any] = []
    for k, ann in enumerate(anns):
        if "segmentation" not in ann:
            raise TfodError(f"{what} {ann.get('id', k)} has no segmentation", path=path, fix=fix)
        h, w = sizes[int(ann["image_id"])]
        rle = _to_rle(ann["segmentation"], h, w)
        if [int(x) for x in rle["size"]] != [h, w]:
            wrong.append(ann.get("id", f"#{k} (image {ann['image_id']})"))
        out.append(rle)
    if wrong:
        raise TfodError(f"{what} masks whose size differs from their image: {_preview(wrong)}", path=path)
    return tuple(out)


def load_coco_ground_truth(path: str | Path, *, masks: bool = False) -> AnnotatedSet:
    """Read a COCO ground-truth file (``images``, ``categories``, ``annotations``)."""
    doc = _read_json(path)
    if not isinstance(doc, dict) or not all(k in doc for k in ("images", "annotations", "categories")):
        absent = [
            k for k in ("images", "annotations", "categories") if not isinstance(doc, dict) or k not in doc
        ]
        raise TfodError(
            f"not a COCO ground-truth file (no {', '.join(absent)}; it needs images, annotations and "
            "categories)",
            path=path,
            fix="pass the ground-truth JSON (e.g. instances_val2017.json), not a results list",
        )
    try:
        images = doc["images"]
        image_ids = [int(im["id"]) for im in images]
        table = ImageTable.from_sizes(
            ids=image_ids,
            widths=[float(im.get("width", 0)) for im in images],
            heights=[float(im.get("height", 0)) for im in images],
            file_names=[str(im.get("file_name", im["id"])) for im in images],
        )
        categories = {int(c["id"]): str(c.get("name", c["id"])) for c in doc["categories"]}
        anns = doc["annotations"]
        ids = [a.get("id", k + 1) for k, a in enumerate(anns)]
        boxes = _xywh_to_xyxy([a["bbox"] for a in anns], "annotations", ids, path)
        raw_w = np.asarray([a["bbox"][2] for a in anns], dtype=np.float64)
        raw_h = np.asarray([a["bbox"][3] for a in anns], dtype=np.float64)
        area = np.asarray(
            [float(a["area"]) if a.get("area") is not None else math.nan for a in anns], dtype=np.float64
        )
        missing = np.isnan(area)
        area[missing] = (raw_w * raw_h)[missing]
        gt = GroundTruth.from_arrays(
            image_ids=[int(a["image_id"]) for a in anns],
            boxes=boxes,
            classes=[int(a["category_id"]) for a in anns],
            area=area,
            iscrowd=[bool(a.get("iscrowd", 0)) for a in anns],
            difficult=[bool(a.get("difficult", 0)) for a in anns],
            ignore=[bool(a.get("ignore", 0)) for a in anns],
            ids=[int(i) for i in ids],
            masks=_masks(anns, _sizes(table), "annotations", path) if masks else None,
            wh=np.stack([raw_w, raw_h], axis=1) if anns else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise TfodError(
            f"malformed COCO ground truth ({type(exc).__name__}: {exc})",
            path=path,
            fix="every image needs an id, every annotation image_id, category_id and bbox [x, y, w, h]",
        ) from None
    data = AnnotatedSet(images=table, categories=categories, ground_truth=gt)
    data.validate(str(path))
    return data


def _sizes(table: ImageTable) -> dict[int, tuple[int, int]]:
    return {int(i): (int(h), int(w)) for i, w, h in zip(table.ids, table.widths, table.heights, strict=False)}


def rle_areas(masks: Sequence[RLE]) -> np.ndarray:
    """Pixel areas of COCO RLE masks (pycocotools' ``mask.area``).

    >>> rle_areas([{"size": [4, 4], "counts": b"02208"}]).tolist()
    [4.0]
    """
    if not len(masks):
        return np.zeros(0, dtype=np.float64)
    from pycocotools import mask as mask_utils

    # pycocotools' area() overflows on lists of more than 255 masks (numpy 2): ask in chunks.
    items = list(masks)
    parts = [
        np.asarray(mask_utils.area(items[i : i + 255]), dtype=np.float64).reshape(-1)
        for i in range(0, len(items), 255)
    ]
    return np.concatenate(parts)


def _box_polygon(bbox: Sequence[float]) -> list[list[float]]:
    """The polygon pycocotools' ``loadRes`` gives a result that has a bbox and no segmentation."""
    x1, y1 = bbox[0], bbox[1]
    x2, y2 = bbox[0] + bbox[2], bbox[1] + bbox[3]
    return [[x1, y1, x1, y2, x2, y2, x2, y1]]


def _has_bbox(det: Any) -> bool:
    return "bbox" in det and det["bbox"] != []


def load_coco_results(path: str | Path, data: AnnotatedSet, *, masks: bool = False) -> Detections:
    """Read a COCO results list (``image_id``, ``category_id``, ``bbox`` and/or ``segmentation``, ``score``).

    Boxes, masks and areas are what pycocotools' ``COCO.loadRes`` makes of the list, which decides
    from the *first* result: if it has a (non-empty) ``bbox``, every result must have one, its
    area is the bbox's ``w * h`` even when a ``segmentation`` is there too (Mask R-CNN exports), and a
    result without ``segmentation`` gets its box as a polygon mask. Otherwise every result needs a
    ``segmentation`` (RLE), its area is the mask's pixel count and its box the given ``bbox`` or else
    the mask's bounding box. Masks are kept with ``masks=True`` (mask IoU). Detections naming an image
    or category id the ground truth does not know are an error that lists them.

    >>> import json, tempfile, pathlib
    >>> from tfod_tools.data.model import GroundTruth, ImageTable
    >>> gt = AnnotatedSet(ImageTable.from_sizes([1], [8], [8]), {1: "a"}, GroundTruth.empty())
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "dt.json"
    >>> rle = {"size": [8, 8], "counts": "02n1"}  # 1 x 2 pixels at the top left corner
    >>> _ = f.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 4],
    ...                               "segmentation": rle, "score": 0.5}]))
    >>> load_coco_results(f, gt, masks=True).area.tolist()  # the bbox's area, as loadRes gives it
    [16.0]
    >>> _ = f.write_text(json.dumps([{"image_id": 1, "category_id": 1, "segmentation": rle, "score": 0.5}]))
    >>> dets = load_coco_results(f, gt)
    >>> dets.area.tolist(), dets.boxes.tolist()  # the mask's area and bounding box
    ([2.0], [[0.0, 0.0, 1.0, 2.0]])
    """
    doc = _read_json(path)
    if isinstance(doc, dict) and "annotations" in doc:
        doc = doc["annotations"]
    if not isinstance(doc, list):
        raise TfodError("not a COCO results list", path=path, fix="pass a JSON list of detections")
    try:
        img = [int(d["image_id"]) for d in doc]
        unknown = sorted(set(img) - set(data.images.ids.tolist()))
        if unknown:
            raise TfodError(
                f"detections refer to image ids not in the ground truth: {_preview(unknown)}",
                path=path,
                fix="pass the detections made on this ground truth's images (same image ids)",
            )
        cls = [int(d["category_id"]) for d in doc]
        unknown = sorted(set(cls) - set(data.categories))
        if unknown:
            raise TfodError(
                f"detections use category ids not in the ground truth: {_preview(unknown)}",
                path=path,
                fix="map the detections' classes to the ground truth's category ids",
            )
        names = [f"#{k}" for k in range(len(doc))]
        rles: tuple[RLE, ...] | None = None
        if not doc or _has_bbox(doc[0]):
            missing = [names[k] for k, d in enumerate(doc) if not _has_bbox(d)]
            if missing:
                raise TfodError(
                    f"detections without bbox: {_preview(missing)} (the first one has a bbox, so "
                    "pycocotools reads every one's)",
                    path=path,
                    fix="give every detection a bbox, or none (then every one needs a segmentation)",
                )
            rows = [d["bbox"] for d in doc]
            boxes = _xywh_to_xyxy(rows, "detections", names, path)
            raw = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
            area = raw[:, 2] * raw[:, 3]
            if masks:
                with_polygons = [
                    d if "segmentation" in d else {**d, "segmentation": _box_polygon(d["bbox"])} for d in doc
                ]
                rles = _masks(with_polygons, _sizes(data.images), "detections", path)
        elif "segmentation" in doc[0]:
            from pycocotools import mask as mask_utils

            fix = "give every detection a segmentation (or every one a bbox: the first decides)"
            all_rles = _masks(doc, _sizes(data.images), "detections", path, fix)
            area = rle_areas(all_rles)
            rows = [
                d["bbox"] if _has_bbox(d) else list(mask_utils.toBbox(r))
                for d, r in zip(doc, all_rles, strict=True)
            ]
            boxes = _xywh_to_xyxy(rows, "detections", names, path)
            rles = all_rles if masks else None
        else:
            raise TfodError(
                "detections without bbox or segmentation", path=path, fix="give every detection a bbox"
            )
        scores = np.asarray([float(d["score"]) for d in doc], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise TfodError(
            f"malformed COCO results ({type(exc).__name__}: {exc})",
            path=path,
            fix="every detection needs image_id, category_id, bbox [x, y, w, h] (or segmentation) and score",
        ) from None
    if not np.all(np.isfinite(scores)):
        raise TfodError(
            f"detections with NaN/inf scores: #{_preview(np.flatnonzero(~np.isfinite(scores)).tolist())}",
            path=path,
            fix="drop those detections or give them finite scores",
        )
    wh = np.asarray(rows, dtype=np.float64).reshape(-1, 4)[:, 2:]
    return Detections.from_arrays(img, boxes, cls, scores, masks=rles, area=area, wh=wh)


def load_coco(gt_path: str | Path, dt_path: str | Path | None = None, *, masks: bool = False) -> AnnotatedSet:
    """Ground truth plus (optionally) a results list, as one validated :class:`AnnotatedSet`."""
    data = load_coco_ground_truth(gt_path, masks=masks)
    if dt_path is None:
        return data
    dets = load_coco_results(dt_path, data, masks=masks)
    out = AnnotatedSet(data.images, data.categories, data.ground_truth, dets)
    out.validate(str(dt_path))
    return out


def _xywh(boxes: np.ndarray, wh: np.ndarray | None = None) -> list[list[float]]:
    out = boxes.copy()
    out[:, 2:] = boxes[:, 2:] - boxes[:, :2] if wh is None else wh
    rows: list[list[float]] = out.tolist()
    return rows


def _jsonable_rle(rle: RLE) -> dict[str, Any]:
    counts = rle["counts"]
    return {
        "size": list(rle["size"]),
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
    }


def coco_ground_truth(data: AnnotatedSet) -> dict[str, Any]:
    """The ground truth of ``data`` as a COCO ground-truth document."""
    gt = data.ground_truth
    images = [
        {"id": int(i), "width": int(w), "height": int(h), "file_name": name}
        for i, w, h, name in zip(
            data.images.ids, data.images.widths, data.images.heights, data.images.file_names, strict=False
        )
    ]
    anns: list[dict[str, Any]] = []
    for k, box in enumerate(_xywh(gt.boxes, gt.wh)):
        ann: dict[str, Any] = {
            "id": int(gt.ids[k]) if gt.ids.shape[0] else k + 1,
            "image_id": int(gt.image_ids[k]),
            "category_id": int(gt.classes[k]),
            "bbox": box,
            "area": float(gt.area[k]),
            "iscrowd": int(gt.iscrowd[k]),
        }
        if gt.difficult[k]:
            ann["difficult"] = 1
        if gt.ignore[k]:
            ann["ignore"] = 1
        if gt.masks is not None:
            ann["segmentation"] = _jsonable_rle(gt.masks[k])
        anns.append(ann)
    cats = [{"id": int(c), "name": data.categories[int(c)]} for c in data.category_ids]
    info = {"description": "written by tfod_tools"}
    return {"info": info, "licenses": [], "images": images, "annotations": anns, "categories": cats}


def coco_results(dets: Detections) -> list[dict[str, Any]]:
    """Detections as a COCO results list."""
    out: list[dict[str, Any]] = []
    for k, box in enumerate(_xywh(dets.boxes, dets.wh)):
        row: dict[str, Any] = {
            "image_id": int(dets.image_ids[k]),
            "category_id": int(dets.classes[k]),
            "bbox": box,
            "score": float(dets.scores[k]),
        }
        if dets.masks is not None:
            row["segmentation"] = _jsonable_rle(dets.masks[k])
        out.append(row)
    return out


def write_coco(data: AnnotatedSet, gt_path: str | Path, dt_path: str | Path | None = None) -> None:
    """Write the ground truth (and, with ``dt_path``, the detections) as COCO JSON, atomically."""
    write_text_atomic(gt_path, json.dumps(coco_ground_truth(data)))
    if dt_path is not None:
        write_text_atomic(dt_path, json.dumps(coco_results(data.detections or Detections.empty())))
