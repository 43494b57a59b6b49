"""Input checks before a training (or evaluation) process is launched.

A run that would fail minutes later inside TensorFlow fails here at once, with one line naming
the file and the fix (:class:`~tfod_tools.errors.TfodError`, exit 2), and nothing is started:

- the pipeline parses;
- every reader's ``input_path`` glob matches at least one file;
- every ``label_map_path`` parses, with ids from 1, unique, and without gaps (1..N);
- the model's ``num_classes`` equals the label map's size;
- a ``fine_tune_checkpoint``, if set, exists;
- ``model_dir`` is (or can be created as) a writable directory.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> check_model_dir(d / "new" / "model").name
'model'
>>> check_model_dir(d / "new").exists()
False
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfod_tools.errors import TfodError
from tfod_tools.odapi import pipeline as pipeline_lib
from tfod_tools.odapi.label_map import LabelMap, read_label_map


@dataclass
class CheckedInputs:
    """What the checks found: the parsed pipeline, its label map and the record files per reader."""

    pipeline_path: Path
    config: Any
    label_map: LabelMap
    records: dict[str, list[str]] = field(default_factory=dict)
    model_dir: Path | None = None


def _is_remote(path: str) -> bool:
    return "://" in path


def check_records(
    config: Any, pipeline_path: str | Path, roles: tuple[str, ...] = ()
) -> dict[str, list[str]]:
    """Expand every reader's ``input_path`` globs; every glob must match a file.

    ``roles`` limits the check to some readers (``("train",)``); empty means all.
    """
    found: dict[str, list[str]] = {}
    readers = [(role, reader) for role, reader in pipeline_lib.input_readers(config)]
    if not any(role == "train" for role, _ in readers) and (not roles or "train" in roles):
        raise TfodError(
            "the pipeline has no train_input_reader", path=pipeline_path, fix="add a train_input_reader block"
        )
    for role, reader in readers:
        if roles and role.split("[")[0] not in roles:
            continue
        if reader.WhichOneof("input_reader") != "tf_record_input_reader":
            continue
        patterns = list(reader.tf_record_input_reader.input_path)
        if not patterns:
            raise TfodError(
                f"{role}_input_reader has no input_path",
                path=pipeline_path,
                fix="set tf_record_input_reader { input_path: '...' } (or render with tfod pipeline)",
            )
        files: list[str] = []
        for pattern in patterns:
            if _is_remote(pattern):
                files.append(pattern)
                continue
            matches = sorted(glob.glob(os.path.expanduser(pattern)))
            if not matches:
                raise TfodError(
                    f"{role}_input_reader input_path {pattern!r} matches no file",
                    path=pipeline_path,
                    fix="write the records first (tfod synth / tfod data) or correct the path",
                )
            files.extend(matches)
        found[role] = files
    return found


def check_label_map(label_map_path: str, pipeline_path: str | Path, role: str) -> LabelMap:
    """Parse a reader's label map; ids must start at 1, be unique and leave no gaps."""
    if not label_map_path:
        raise TfodError(
            f"{role}_input_reader has no label_map_path",
            path=pipeline_path,
            fix="set label_map_path to your label_map.pbtxt",
        )
    if not _is_remote(label_map_path) and not Path(label_map_path).is_file():
        raise TfodError(
            f"{role}_input_reader label_map_path {label_map_path!r} does not exist",
            path=pipeline_path,
            fix="correct label_map_path",
        )
    labels = read_label_map(label_map_path)
    ids = [item.id for item in labels.items]
    if ids != list(range(1, len(ids) + 1)):
        raise TfodError(
            f"label map ids {ids} are not 1..{len(ids)}; the API ignores classes above num_classes",
            path=label_map_path,
            fix="renumber the items 1, 2, ... without gaps",
        )
    return labels


def check_num_classes(config: Any, labels: LabelMap, pipeline_path: str | Path, label_map_path: str) -> None:
    """The model's ``num_classes`` must equal the number of label map items."""
    value = pipeline_lib.num_classes(config)
    if value is not None and value != len(labels.items):
        raise TfodError(
            f"num_classes is {value} but the label map {label_map_path} has {len(labels.items)} classes",
            path=pipeline_path,
            fix=f"set num_classes: {len(labels.items)} in the model block",
        )


def check_fine_tune_checkpoint(config: Any, pipeline_path: str | Path) -> None:
    """A set ``fine_tune_checkpoint`` must name an existing checkpoint (``PREFIX.index``)."""
    prefix = config.train_config.fine_tune_checkpoint
    if not prefix or _is_remote(prefix):
        return
    if pipeline_lib.PLACEHOLDER in prefix or not Path(prefix + ".index").is_file():
        raise TfodError(
            f"fine_tune_checkpoint {prefix!r} does not exist (no {Path(prefix).name}.index)",
            path=pipeline_path,
            fix="point it at a checkpoint prefix (.../checkpoint/ckpt-0) or delete it to train from scratch",
        )


def check_model_dir(model_dir: str | Path) -> Path:
    """``model_dir`` must be a writable directory, or creatable in a writable parent (not created)."""
    path = Path(model_dir).expanduser().absolute()
    if path.exists():
        if not path.is_dir():
            raise TfodError("model_dir is a file, not a directory", path=path, fix="choose a directory path")
        if not os.access(path, os.W_OK | os.X_OK):
            raise TfodError("model_dir is not writable", path=path, fix="choose a directory you can write to")
        return path
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise TfodError(
            f"model_dir cannot be created: {parent} is not a writable directory",
            path=path,
            fix="choose a directory you can write to",
        )
    return path


def check_inputs(
    pipeline_path: str | Path, model_dir: str | Path | None = None, roles: tuple[str, ...] = ()
) -> CheckedInputs:
    """Run every check; the first failure raises :class:`TfodError`. Nothing is written."""
    path = Path(pipeline_path)
    config = pipeline_lib.load_pipeline(path)
    records = check_records(config, path, roles)
    labels: LabelMap | None = None
    for role, reader in pipeline_lib.input_readers(config):
        if roles and role.split("[")[0] not in roles:
            continue
        reader_labels = check_label_map(reader.label_map_path, path, role)
        check_num_classes(config, reader_labels, path, reader.label_map_path)
        labels = labels or reader_labels
    if not roles or "train" in roles:
        check_fine_tune_checkpoint(config, path)
    checked_dir = None if model_dir is None else check_model_dir(model_dir)
    assert labels is not None
    return CheckedInputs(
        pipeline_path=path, config=config, label_map=labels, records=records, model_dir=checked_dir
    )
