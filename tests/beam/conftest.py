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


# A Beam file system of its own scheme over a local folder: ``tfodtest://a/b`` is ``ROOT/a/b``. Beam
# finds FileSystem subclasses by scheme once the class exists (this module is imported), so every
# ``--beam`` command reads and writes it through ``FileSystems`` as it would ``gs://``, without a
# network. Only in-process runners see it (the DirectRunner in memory, the tests' default).
from apache_beam.io.filesystem import FileMetadata, MatchResult  # noqa: E402
from apache_beam.io.localfilesystem import LocalFileSystem  # noqa: E402

SCHEME = "tfodtest"
_LOCAL = LocalFileSystem(None)  # every call goes to it with the local path


class SchemeFileSystem(LocalFileSystem):
    """``tfodtest://`` onto :attr:`root`: ``tfodtest://tmp/x`` is ``/tmp/x``."""

    root = "/"

    @classmethod
    def scheme(cls) -> str:
        return SCHEME

    @classmethod
    def local(cls, path: str) -> str:
        assert path.startswith(f"{SCHEME}://"), path
        return os.path.join(cls.root, path[len(SCHEME) + 3 :])

    @classmethod
    def remote(cls, path: str) -> str:
        rel = os.path.relpath(path, cls.root)
        assert not rel.startswith(".."), path
        return f"{SCHEME}://{rel}"

    def join(self, basepath: str, *paths: str) -> str:
        return "/".join([basepath.rstrip("/"), *(p.strip("/") for p in paths)])

    def split(self, path: str) -> tuple[str, str]:
        head, _, tail = path.rstrip("/").rpartition("/")
        return head, tail

    def match(self, patterns, limits=None):  # type: ignore[no-untyped-def]
        found = _LOCAL.match([self.local(p) for p in patterns], limits)
        return [
            MatchResult(
                pattern,
                [
                    FileMetadata(self.remote(m.path), m.size_in_bytes, m.last_updated_in_seconds)
                    for m in r.metadata_list
                ],
            )
            for pattern, r in zip(patterns, found, strict=True)
        ]

    def mkdirs(self, path):  # type: ignore[no-untyped-def]
        return _LOCAL.mkdirs(self.local(path))

    def create(self, path, *args, **kwargs):  # type: ignore[no-untyped-def]
        return _LOCAL.create(self.local(path), *args, **kwargs)

    def open(self, path, *args, **kwargs):  # type: ignore[no-untyped-def]
        return _LOCAL.open(self.local(path), *args, **kwargs)

    def copy(self, sources, destinations):  # type: ignore[no-untyped-def]
        return _LOCAL.copy([self.local(p) for p in sources], [self.local(p) for p in destinations])

    def rename(self, sources, destinations):  # type: ignore[no-untyped-def]
        return _LOCAL.rename([self.local(p) for p in sources], [self.local(p) for p in destinations])

    def exists(self, path):  # type: ignore[no-untyped-def]
        return _LOCAL.exists(self.local(path))

    def size(self, path):  # type: ignore[no-untyped-def]
        return _LOCAL.size(self.local(path))

    def last_updated(self, path):  # type: ignore[no-untyped-def]
        return _LOCAL.last_updated(self.local(path))

    def checksum(self, path):  # type: ignore[no-untyped-def]
        return _LOCAL.checksum(self.local(path))

    def metadata(self, path):  # type: ignore[no-untyped-def]
        m = _LOCAL.metadata(self.local(path))
        return FileMetadata(path, m.size_in_bytes, m.last_updated_in_seconds)

    def delete(self, paths):  # type: ignore[no-untyped-def]
        return _LOCAL.delete([self.local(p) for p in paths])


def as_remote(path: str | Path) -> str:
    """The same file through the test scheme: ``/tmp/x`` -> ``tfodtest://tmp/x``."""
    return SchemeFileSystem.remote(str(path))
