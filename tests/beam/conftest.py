"""Shared helpers of the Beam tests: pipelines on the in-process DirectRunner, files of a folder."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: Two worker processes: the one multi-processing configuration the tests run.
MULTI_PROCESSING = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def files_in(directory: Path) -> list[str]:
    """Every entry under ``directory``, relative, hidden scratch files and folders included."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def write_sources(directory: Path, num_images: int, *, seed: int = 3, bad: bool = False) -> dict[str, Path]:
    """Synthetic shapes as a COCO file (``coco``) and a VOC root (``voc``) over one image folder.

    The images and boxes come from :func:`write_synthetic_dataset`'s records; with ``bad`` the
    third image file is cut short (undecodable) so ``--on-bad-image`` has something to act on.
    """
    import json

    from tfod_tools.data.records import read_image_records
    from tfod_tools.data.synthetic import write_synthetic_dataset

    ds = write_synthetic_dataset(
        directory / "synth", "shapes", train_images=num_images, eval_images=1, seed=seed, image_size=64
    )
    records = read_image_records(ds.train_record)
    voc = directory / "voc"
    images = voc / "JPEGImages"
    (voc / "Annotations").mkdir(parents=True)
    images.mkdir()
    names = sorted({text for record in records for text in record.class_text})
    coco: dict[str, list[dict[str, object]]] = {
        "images": [],
        "annotations": [],
        "categories": [{"id": k + 1, "name": name} for k, name in enumerate(names)],
    }
    for k, record in enumerate(records):
        name = f"{k:05d}.jpg"
        data = record.encoded[: len(record.encoded) // 3] if bad and k == 2 else record.encoded
        (images / name).write_bytes(data)
        coco["images"].append(
            {"id": k + 1, "file_name": name, "width": record.width, "height": record.height}
        )
        objects = []
        for box, text in zip(record.boxes_pixels().tolist(), record.class_text, strict=True):
            x1, y1, x2, y2 = (round(v, 2) for v in box)
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": k + 1,
                    "category_id": names.index(text) + 1,
                    "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                    "iscrowd": 0,
                }
            )
            objects.append(
                f"<object><name>{text}</name><difficult>0</difficult><bndbox><xmin>{x1}</xmin>"
                f"<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
            )
        (voc / "Annotations" / f"{k:05d}.xml").write_text(
            f"<annotation><filename>{name}</filename><size><width>{record.width}</width>"
            f"<height>{record.height}</height><depth>3</depth></size>{''.join(objects)}</annotation>"
        )
    (directory / "coco.json").write_text(json.dumps(coco))
    return {"coco": directory / "coco.json", "voc": voc, "images": images}
