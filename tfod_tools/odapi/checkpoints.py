"""Training checkpoints of a ``model_dir`` without TensorFlow: list, validate, read the global step,
read the tensor keys, protect from deletion.

``model_main_tf2`` saves ``ckpt-N`` (``N`` counts saves, ``ckpt-1`` is step 0) as
``ckpt-N.index`` plus data shards ``ckpt-N.data-SSSSS-of-NNNNN``, and lists the kept ones in the
text file ``checkpoint``. Its ``CheckpointManager(max_to_keep=...)`` deletes older ones.

The ``.index`` file is a sorted string table (LevelDB layout, uncompressed blocks, ending in
:data:`TABLE_MAGIC`) mapping each saved tensor's name to a ``BundleEntryProto``: dtype, shard,
offset and size of its bytes in the data shards. The global step is the int64
tensor :data:`STEP_KEY`. Nothing here imports TensorFlow.

- :func:`scan_checkpoints` lists every ``ckpt-N`` seen in the state file or on disk, with the
  files that are missing and a quick truncation check of the index.
- :func:`list_checkpoints` lists every checkpoint below a model directory (also the evaluator's
  kept hard links under ``MODEL_DIR/eval``) with its global step.
- :func:`read_step` reads the global step (its bytes checked against the CRC-32C the index
  stores); :func:`checkpoint_keys` the tensor names;
  :func:`read_index` the raw table.
- :func:`protect` hard-links a checkpoint's files into another directory so that the manager's
  deletion cannot take them away before they are evaluated (a copy where hard links are not
  possible); :func:`release` removes such links.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "ckpt-2.index").write_bytes(b"x" * 40 + TABLE_MAGIC)
>>> _ = (d / "ckpt-2.data-00000-of-00001").write_bytes(b"weights")
>>> _ = (d / "ckpt-3.index").write_bytes(b"cut")
>>> [(c.name, c.problem) for c in scan_checkpoints(d)]
[('ckpt-2', None), ('ckpt-3', 'truncated index file ckpt-3.index; missing ckpt-3.data-00000-of-00001')]
>>> [(c.name, c.step, c.kept) for c in list_checkpoints(d)]  # neither index is a real table
[('ckpt-2', None, False), ('ckpt-3', None, False)]
>>> kept = protect(scan_checkpoints(d)[0], d / "eval" / "protected")
>>> (d / "ckpt-2.index").unlink()
>>> kept.prefix.name, kept.problem, (kept.prefix.parent / "ckpt-2.index").read_bytes()[:2]
('ckpt-2', None, b'xx')
>>> release(kept); sorted(p.name for p in (d / "eval" / "protected").iterdir())
[]
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import struct
from dataclasses import dataclass, replace
from pathlib import Path

from tfod_tools.crc32c import masked_crc32c
from tfod_tools.errors import TfodError

__all__ = [
    "STEP_KEY",
    "TABLE_MAGIC",
    "CheckpointFiles",
    "checkpoint_keys",
    "list_checkpoints",
    "protect",
    "read_index",
    "read_step",
    "release",
    "scan_checkpoints",
    "state_file_names",
]

TABLE_MAGIC = (0xDB4775248B80FB57).to_bytes(8, "little")
"""The last 8 bytes of a complete SSTable (a TensorFlow checkpoint's ``.index`` file)."""

STEP_KEY = "step/.ATTRIBUTES/VARIABLE_VALUE"
"""Where ``model_main_tf2``'s ``tf.train.Checkpoint(step=...)`` stores the global step."""

_FOOTER_SIZE = 48  # two block handles (padded) and the magic number
_DT_INT32, _DT_STRING, _DT_INT64 = 3, 7, 9  # TensorFlow's DataType enum

_FILE = re.compile(r"(?P<name>.+?)\.(?:index|data-(?P<shard>\d+)-of-(?P<count>\d+))")
_TRAINING_NAME = re.compile(r"ckpt-(?P<n>\d+)")
_STATE_LINE = re.compile(r'^all_model_checkpoint_paths:\s*"(?P<path>[^"]*)"', re.MULTILINE)


@dataclass(frozen=True)
class CheckpointFiles:
    """One checkpoint: its prefix, present files and what is wrong with them (``problem``).

    :func:`list_checkpoints` also fills ``step`` (the global step, None when unreadable) and
    ``kept`` (the files lie below the model directory's top level: the evaluator's kept links).
    ``number`` is ``N`` of ``ckpt-N`` (-1 for another name).
    """

    name: str
    number: int
    prefix: Path
    files: tuple[Path, ...]
    problem: str | None = None
    step: int | None = None
    kept: bool = False

    @property
    def index(self) -> Path:
        """The ``.index`` file."""
        return self.prefix.with_name(self.name + ".index")


def state_file_names(model_dir: str | Path) -> list[str]:
    """Checkpoint names listed in ``model_dir/checkpoint`` (``all_model_checkpoint_paths``).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "checkpoint").write_text('model_checkpoint_path: "ckpt-3"\\n'
    ...     'all_model_checkpoint_paths: "ckpt-2"\\nall_model_checkpoint_paths: "/x/ckpt-3"\\n')
    >>> state_file_names(d)
    ['ckpt-2', 'ckpt-3']
    """
    path = Path(model_dir) / "checkpoint"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, IsADirectoryError):
        return []
    return [os.path.basename(m.group("path")) for m in _STATE_LINE.finditer(text)]


def _number(name: str) -> int:
    match = _TRAINING_NAME.fullmatch(name)
    return int(match.group("n")) if match else -1


def _describe(name: str, directory: Path, files: list[Path]) -> CheckpointFiles:
    problems: list[str] = []
    index = directory / f"{name}.index"
    shards: dict[int, int] = {}
    for file in files:
        match = _FILE.fullmatch(file.name)
        if match and match.group("shard") is not None:
            shards[int(match.group("shard"))] = int(match.group("count"))
    if not index.is_file():
        problems.append(f"missing {index.name}")
    else:
        size = index.stat().st_size
        if size < len(TABLE_MAGIC):
            problems.append(f"truncated index file {index.name}")
        else:
            with open(index, "rb") as handle:
                handle.seek(size - len(TABLE_MAGIC))
                if handle.read() != TABLE_MAGIC:
                    problems.append(f"truncated index file {index.name}")
    count = max(shards.values(), default=1)
    for shard in range(count):
        data = directory / f"{name}.data-{shard:05d}-of-{count:05d}"
        if not data.is_file():
            problems.append(f"missing {data.name}")
    return CheckpointFiles(
        name=name,
        number=_number(name),
        prefix=directory / name,
        files=tuple(sorted(files)),
        problem="; ".join(problems) or None,
    )


def _files_by_name(directory: Path) -> dict[str, list[Path]]:
    """Checkpoint files (``NAME.index``, ``NAME.data-*``) directly in ``directory``, by ``NAME``."""
    found: dict[str, list[Path]] = {}
    if directory.is_dir():
        for path in directory.iterdir():
            match = _FILE.fullmatch(path.name)
            if match and path.is_file():
                found.setdefault(match.group("name"), []).append(path)
    return found


def scan_checkpoints(model_dir: str | Path) -> list[CheckpointFiles]:
    """Every ``ckpt-N`` in ``model_dir`` (on disk or in the state file), by ``N``."""
    directory = Path(model_dir)
    found = {name: files for name, files in _files_by_name(directory).items() if _number(name) >= 0}
    for name in state_file_names(directory):
        if _number(name) >= 0:
            found.setdefault(name, [])
    return [_describe(name, directory, found[name]) for name in sorted(found, key=_number)]


def list_checkpoints(
    model_dir: str | Path, ledger_steps: dict[str, int] | None = None
) -> list[CheckpointFiles]:
    """Every checkpoint below ``model_dir`` whose ``.index`` exists, with its step, by path.

    Checkpoints outside the model directory's top level (the evaluator's kept copies) have
    ``kept=True``. ``ledger_steps`` (checkpoint name -> step) fills steps the files do not give.
    """
    base = Path(model_dir)
    listing: dict[Path, dict[str, list[Path]]] = {}
    found: list[CheckpointFiles] = []
    for index in sorted(base.rglob("*.index")):
        name = index.name[: -len(".index")]
        files = listing.setdefault(index.parent, _files_by_name(index.parent)).get(name, [index])
        try:
            step: int | None = read_step(index.with_name(name))
        except TfodError:
            step = (ledger_steps or {}).get(name)
        checkpoint = _describe(name, index.parent, files)
        found.append(replace(checkpoint, step=step, kept=index.parent != base))
    return found


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _block_entries(buf: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """Key/value pairs of one table block (prefix-compressed keys, restart array at the end)."""
    if offset + size + 5 > len(buf) or size < 4:
        raise ValueError("block out of range")
    if buf[offset + size] != 0:
        raise ValueError("compressed block")
    block = buf[offset : offset + size]
    (restarts,) = struct.unpack_from("<I", block, size - 4)
    end = size - 4 - 4 * restarts
    pos, key, out = 0, b"", []
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        out.append((key, block[pos : pos + length]))
        pos += length
    return out


def read_index(path: str | Path) -> dict[str, bytes]:
    """Every ``tensor name -> serialized BundleEntryProto`` of a checkpoint ``.index`` file.

    Raises ``OSError`` when the file cannot be read and ``ValueError`` for a file that is not an
    uncompressed table.
    """
    buf = Path(path).read_bytes()
    if len(buf) < _FOOTER_SIZE or buf[-len(TABLE_MAGIC) :] != TABLE_MAGIC:
        raise ValueError("not a checkpoint index (bad magic)")
    pos = len(buf) - _FOOTER_SIZE
    _, pos = _varint(buf, pos)  # metaindex offset
    _, pos = _varint(buf, pos)  # metaindex size
    index_offset, pos = _varint(buf, pos)
    index_size, pos = _varint(buf, pos)
    entries: dict[str, bytes] = {}
    for _, handle in _block_entries(buf, index_offset, index_size):
        offset, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        for key, value in _block_entries(buf, offset, size):
            entries[key.decode("utf-8", errors="replace")] = value
    return entries


def _index_of(prefix: str | Path) -> Path:
    base = Path(prefix)
    return base.with_name(base.name + ".index")


def checkpoint_keys(prefix: str | Path) -> list[str]:
    """The tensor keys of checkpoint ``prefix``, sorted: the names ``tf.train.list_variables`` gives.

    A TF2 object-based checkpoint also holds ``_CHECKPOINTABLE_OBJECT_GRAPH``; the table's header
    entry (the empty key) is left out. Raises ``OSError`` when ``PREFIX.index`` cannot be read and
    ``ValueError`` when it is not an uncompressed checkpoint table.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "ckpt-1.index").write_bytes(b"not a table")
    >>> checkpoint_keys(d / "ckpt-1")
    Traceback (most recent call last):
    ValueError: not a checkpoint index (bad magic)
    """
    return sorted(key for key in read_index(_index_of(prefix)) if key)


def _entry_fields(entry: bytes) -> dict[int, int]:
    """The scalar fields of a BundleEntryProto (dtype 1, shard_id 3, offset 4, size 5, crc32c 6)."""
    fields: dict[int, int] = {}
    pos = 0
    while pos < len(entry):
        tag, pos = _varint(entry, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            fields[number], pos = _varint(entry, pos)
        elif wire == 2:
            length, pos = _varint(entry, pos)
            pos += length
        elif wire == 5:
            if pos + 4 > len(entry):
                raise ValueError("truncated entry")
            (fields[number],) = struct.unpack_from("<I", entry, pos)
            pos += 4
        elif wire == 1:
            pos += 8
        else:
            raise ValueError("bad wire type")
    return fields


def _tensor_bytes(prefix: Path, key: str) -> tuple[int, bytes]:
    """``(dtype, bytes)`` of tensor ``key``; ``ValueError`` naming what is wrong.

    The bytes of a numeric tensor are checked against the CRC-32C its entry stores (a string
    tensor's CRC covers its lengths too, and is not checked).
    """
    entry = read_index(_index_of(prefix)).get(key)
    if entry is None:
        raise ValueError(f"checkpoint has no {key}")
    fields = _entry_fields(entry)
    shard, offset, size = fields.get(3, 0), fields.get(4, 0), fields.get(5, 0)
    shards = sorted(prefix.parent.glob(f"{prefix.name}.data-{shard:05d}-of-*"))
    if not shards:
        raise ValueError(f"missing {prefix.name}.data-{shard:05d}-of-*")
    with open(shards[0], "rb") as handle:
        handle.seek(offset)
        raw = handle.read(size)
    if len(raw) != size:
        raise ValueError(f"truncated {shards[0].name}")
    dtype = fields.get(1, 0)
    if dtype != _DT_STRING and 6 in fields and masked_crc32c(raw) != fields[6]:
        raise ValueError(f"{shards[0].name}: the bytes of {key} fail their CRC-32C check (a damaged file)")
    return dtype, raw


def read_step(prefix: str | Path, key: str = STEP_KEY) -> int:
    """The global step stored in checkpoint ``prefix`` (tensor ``key``), read without TensorFlow.

    Raises :class:`TfodError` when the checkpoint is unreadable (a step whose bytes fail the CRC-32C
    stored in the index included: the message names the data file) or holds no int32/int64 ``key``.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "ckpt-1.index").write_bytes(b"not a table")
    >>> try:
    ...     read_step(d / "ckpt-1")
    ... except TfodError as exc:
    ...     print(exc.message)
    unreadable checkpoint: not a checkpoint index (bad magic)
    """
    base = Path(prefix)
    try:
        dtype, raw = _tensor_bytes(base, key)
    except (OSError, ValueError, struct.error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TfodError(f"unreadable checkpoint: {reason}", path=base) from None
    formats = {_DT_INT64: "<q", _DT_INT32: "<i"}
    if dtype not in formats or len(raw) != struct.calcsize(formats[dtype]):
        raise TfodError(f"checkpoint's {key} is not an integer scalar", path=base)
    return int(struct.unpack(formats[dtype], raw)[0])


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except FileExistsError:
        if not (target.exists() and os.path.samefile(source, target)):
            target.unlink()
            os.link(source, target)
    except OSError:  # cross-device or no hard links: copy (still protects)
        shutil.copy2(source, target)


def protect(checkpoint: CheckpointFiles, directory: str | Path) -> CheckpointFiles:
    """Hard-link the checkpoint's files into ``directory``; return the protected checkpoint.

    Raises :class:`TfodError` when a file vanished before it was linked (the manager deleted it).
    """
    target_dir = Path(directory)
    target_dir.mkdir(parents=True, exist_ok=True)
    linked: list[Path] = []
    try:
        for file in checkpoint.files:
            target = target_dir / file.name
            _link_or_copy(file, target)
            linked.append(target)
    except FileNotFoundError:
        for path in linked:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise TfodError(
            f"{checkpoint.name} was deleted before it could be protected", path=checkpoint.prefix
        ) from None
    return _describe(checkpoint.name, target_dir, linked)


def release(checkpoint: CheckpointFiles) -> None:
    """Remove a protected checkpoint's links (the original files, if still there, are untouched)."""
    for file in checkpoint.files:
        with contextlib.suppress(FileNotFoundError):
            file.unlink()
