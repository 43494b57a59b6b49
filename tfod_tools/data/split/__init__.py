"""``tfod split``: stratified, group-aware train/val/test (or K-fold) splits of a record set.

:func:`split_records` reads the input records twice, without TensorFlow. The first pass verifies
every record (framing, CRCs, layout, class ids against the label map, by the API's rule
:class:`~tfod_tools.data.classes.ClassLookup`) and notes each image's classes and group
(:mod:`.groups`); nothing is written before the whole plan holds. :func:`.stratify.stratify` assigns
whole groups to splits. The second pass copies each record's serialised bytes unchanged into its
split's file (``PREFIX-NAME.record``; with ``folds=K`` ``PREFIX-foldI-of-K.record``, one part per
fold: train on the other K-1 files), every file under a temporary name, renamed when all are
complete. The manifest ``PREFIX-split.json`` holds the seed, fractions, grouping, groups and images
per split, per-class image and box counts and shares per split, and each split's total variation
distance (TVD) from the whole set's label distribution (labels: classes and ``negative``).

>>> import tempfile, pathlib
>>> from tfod_tools.data.records import ImageRecord, write_image_records
>>> from tfod_tools.odapi.label_map import write_label_map
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> recs = [ImageRecord.from_pixels(b"img", width=8, height=8, boxes=[[1, 1, 4, 4]] * (i % 3 > 0),
...         classes=[1 + i % 2] * (i % 3 > 0), label_map=["cat", "dog"], source_id=f"p{i // 2}_{i}")
...         for i in range(20)]
>>> _ = write_image_records(d / "all.record", recs); _ = write_label_map(d / "lm.pbtxt", ["cat", "dog"])
>>> m = split_records(d / "all.record", d / "lm.pbtxt", d / "s", fractions=[0.5, 0.5], seed=1,
...                   group_by="source_id_regex:^(p\\d+)_")
>>> [(s["name"], s["groups"], s["images"]) for s in m["splits"]], round(m["max_tvd"], 3)
([('train', 5, 10), ('val', 5, 10)], 0.05)
>>> sorted(p.name for p in d.glob("s-*"))
['s-split.json', 's-train.record', 's-val.record']
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfod_tools.data.balance.plan import NEGATIVE
from tfod_tools.data.classes import ClassLookup, category_names
from tfod_tools.data.records import decode_record
from tfod_tools.data.records import input_record_files as input_files
from tfod_tools.data.split.groups import GROUP_KINDS, GroupBy, GroupKeys, parse_group_by
from tfod_tools.data.split.plan import default_names, parse_fractions, plan_parts, split_paths
from tfod_tools.data.split.strata import Group, stratify, total_variation
from tfod_tools.data.tfrecord import TFRecordWriter, iter_records
from tfod_tools.errors import TfodError
from tfod_tools.fsutil import output_parents, sha256_file, write_text_atomic
from tfod_tools.odapi.label_map import LabelMap, read_label_map

__all__ = [
    "GROUP_KINDS",
    "default_names",
    "input_files",
    "parse_fractions",
    "parse_group_by",
    "split_paths",
    "split_records",
]


@dataclass(frozen=True)
class _Image:
    """Pass 1 for one record: its file (index into the inputs), record index, group and box classes."""

    file: int
    index: int
    group: str
    classes: tuple[int, ...]


def _scan(
    files: Sequence[Path],
    lookup: ClassLookup,
    keys: GroupKeys,
    progress: Callable[[int], None] | None,
) -> list[_Image]:
    images: list[_Image] = []
    for f, file in enumerate(files):
        for index, data in iter_records(file, verify=True):
            record = decode_record(data, file, index)
            classes = lookup.checked_ids(
                record.class_text, record.class_label, record.num_boxes, file=file, index=index
            )
            group = keys.key(source_id=record.source_id, filename=record.filename, file=file, index=index)
            images.append(_Image(f, index, group, tuple(classes)))
            if progress is not None:
                progress(1)
    return images


def _labels(classes: Sequence[int], names: dict[int, str]) -> set[str]:
    return {names[c] for c in classes} if classes else {NEGATIVE}


def _groups(images: Sequence[_Image], names: dict[int, str]) -> tuple[list[Group], dict[str, int]]:
    """One :class:`Group` per key (first-seen order) and each key's position."""
    position: dict[str, int] = {}
    counts: list[dict[str, int]] = []
    sizes: list[int] = []
    for image in images:
        at = position.setdefault(image.group, len(position))
        if at == len(counts):
            counts.append({})
            sizes.append(0)
        sizes[at] += 1
        for label in _labels(image.classes, names):
            counts[at][label] = counts[at].get(label, 0) + 1
    groups = [Group(key, sizes[i], counts[i]) for key, i in position.items()]
    return groups, position


def _refuse_empty(
    groups: Sequence[Group],
    assignment: Sequence[int],
    names: Sequence[str],
    parts: Sequence[float],
    where: str,
) -> None:
    """A split left without images (too few groups, or a group too large for the others) is refused."""
    total = sum(g.images for g in groups)
    if len(groups) < len(names):
        raise TfodError(
            f"{len(groups)} groups cannot fill {len(names)} splits (a group is never cut)",
            path=where,
            fix="use finer groups, fewer splits, or more images",
        )
    for j, name in enumerate(names):
        if not any(a == j for a in assignment):
            largest = max(groups, key=lambda g: g.images)
            raise TfodError(
                f"split {name!r} would be empty: its target is {parts[j] * total:.1f} of {total} images, and "
                f"group {largest.key!r} alone has {largest.images}",
                path=where,
                fix="use finer groups, or larger fractions for the small splits",
            )


def _write(
    files: Sequence[Path],
    images: Sequence[_Image],
    split_of: Sequence[int],
    paths: Sequence[Path],
    progress: Callable[[int], None] | None,
) -> None:
    """Copy every record's bytes into its split's file; all files appear together or none does."""
    route = {(im.file, im.index): split_of[k] for k, im in enumerate(images)}
    writers: list[TFRecordWriter] = []
    closed = 0
    try:
        writers.extend(TFRecordWriter(p) for p in paths)
        seen = 0
        for f, file in enumerate(files):
            for index, data in iter_records(file, verify=True):
                if (f, index) not in route:
                    raise TfodError("the file changed while tfod split was reading it", path=file)
                writers[route[f, index]].write(data)
                seen += 1
                if progress is not None:
                    progress(1)
        if seen != len(images):
            raise TfodError("the input changed while tfod split was reading it", path=files[0])
        for writer in writers:
            writer.close()
            closed += 1
    except BaseException as exc:
        for writer in writers:
            writer.abort(exc)  # the unfinished ones (a closed writer ignores it)
        _unlink(paths[:closed])  # and those already renamed into place
        raise


def _unlink(paths: Sequence[Path]) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def split_records(
    inputs: str | Path | Sequence[str | Path],
    label_map: str | Path | LabelMap,
    out: str | Path,
    *,
    fractions: Sequence[float] | None = None,
    folds: int | None = None,
    names: Sequence[str] | None = None,
    group_by: str | GroupBy | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Split ``inputs`` into ``out`` (see the module doc) and return the manifest (also written).

    ``fractions`` default to 0.8, 0.1, 0.1 (``train``, ``val``, ``test``); ``progress(k)`` is called
    as ``k`` more records are done, in each of the two passes.
    """
    files = input_files(inputs)
    parts, part_names = plan_parts(fractions, folds, names)
    gb = parse_group_by(group_by) if isinstance(group_by, str) else group_by
    lm = label_map if isinstance(label_map, LabelMap) else read_label_map(label_map)
    lm_path = None if isinstance(label_map, LabelMap) else Path(label_map)
    paths = split_paths(out, part_names, folds)
    protected = {p.resolve() for p in [*files, *([lm_path] if lm_path else [])]}
    if gb is not None and gb.kind == "csv":
        protected.add(Path(gb.value).resolve())
    for p in paths:
        if p.resolve() in protected:
            raise TfodError("the output would overwrite an input", path=p, fix="choose another --out prefix")
    keys = GroupKeys(gb)
    lookup = ClassLookup(lm)
    class_names = category_names(lm)
    images = _scan(files, lookup, keys, progress)
    groups, position = _groups(images, class_names)
    where = gb.value if gb is not None and gb.kind == "csv" else ", ".join(str(f) for f in files)
    assignment = stratify(groups, parts, seed=seed)
    _refuse_empty(groups, assignment, part_names, parts, where)
    split_of = [assignment[position[im.group]] for im in images]
    with output_parents(out):
        _write(files, images, split_of, paths[:-1], progress)
        try:
            manifest = _manifest(
                files,
                lm_path,
                gb,
                seed,
                folds,
                parts,
                part_names,
                paths,
                images,
                split_of,
                groups,
                assignment,
                class_names,
            )
            write_text_atomic(paths[-1], json.dumps(manifest, indent=2) + "\n")
        except BaseException:
            _unlink(paths[:-1])
            raise
    return manifest


def _class_counts(
    images: Sequence[_Image], class_names: dict[int, str]
) -> tuple[dict[str, int], dict[str, int]]:
    """Images and boxes per label (classes by display name, then ``negative``)."""
    image_counts = {name: 0 for name in class_names.values()}
    box_counts = {name: 0 for name in class_names.values()}
    image_counts[NEGATIVE] = 0
    for im in images:
        for label in _labels(im.classes, class_names):
            image_counts[label] += 1
        for c in im.classes:
            box_counts[class_names[c]] += 1
    return image_counts, box_counts


def _manifest(
    files: Sequence[Path],
    lm_path: Path | None,
    gb: GroupBy | None,
    seed: int,
    folds: int | None,
    parts: Sequence[float],
    part_names: Sequence[str],
    paths: Sequence[Path],
    images: Sequence[_Image],
    split_of: Sequence[int],
    groups: Sequence[Group],
    assignment: Sequence[int],
    class_names: dict[int, str],
) -> dict[str, Any]:
    whole_images, whole_boxes = _class_counts(images, class_names)
    splits: list[dict[str, Any]] = []
    for j, name in enumerate(part_names):
        mine = [im for im, s in zip(images, split_of, strict=True) if s == j]
        img, box = _class_counts(mine, class_names)
        classes = {
            label: {
                "images": img[label],
                "image_share": img[label] / whole_images[label] if whole_images[label] else 0.0,
                **(
                    {
                        "boxes": box[label],
                        "box_share": box[label] / whole_boxes[label] if whole_boxes[label] else 0.0,
                    }
                    if label != NEGATIVE
                    else {}
                ),
            }
            for label in img
        }
        splits.append(
            {
                "name": name,
                "path": str(paths[j]),
                "sha256": sha256_file(paths[j]),
                "fraction": parts[j],
                "groups": sum(1 for a in assignment if a == j),
                "images": len(mine),
                "image_share": len(mine) / len(images),
                "boxes": sum(box.values()),
                "classes": classes,
                "tvd": total_variation(img, whole_images),
            }
        )
    return {
        "tool": "tfod split",
        "inputs": [{"path": str(f), "sha256": sha256_file(f)} for f in files],
        "label_map": None if lm_path is None else {"path": str(lm_path), "sha256": sha256_file(lm_path)},
        "seed": seed,
        "folds": folds,
        "fractions": dict(zip(part_names, parts, strict=True)),
        "group_by": None if gb is None else gb.to_dict(),
        "images": len(images),
        "groups": len(groups),
        "boxes": sum(whole_boxes.values()),
        "classes": {
            label: {"images": n, **({"boxes": whole_boxes[label]} if label != NEGATIVE else {})}
            for label, n in whole_images.items()
        },
        "max_tvd": max(s["tvd"] for s in splits),
        "splits": splits,
        "manifest": str(paths[-1]),
    }
