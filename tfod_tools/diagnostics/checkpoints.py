"""Which checkpoints of a model directory still exist, and at which global step, without TensorFlow.

TF2 checkpoints are named by their save counter (``ckpt-7``), not by the step, so the step is read
from the checkpoint itself: the ``.index`` file is a sorted string table (LevelDB layout,
uncompressed blocks) mapping each saved tensor's name to where its bytes lie in the
``.data-NNNNN-of-NNNNN`` shards; ``model_main_tf2`` saves the global step as the int64 tensor
``step/.ATTRIBUTES/VARIABLE_VALUE``. Checkpoints the evaluator kept (hard links under
``MODEL_DIR/eval``) are found by their ``.index`` file anywhere below the model directory, and the
evaluation ledger's step of each evaluated checkpoint is used when the files do not say it.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "ckpt-3.index").write_bytes(b"not a table")
>>> [(c.name, c.step) for c in list_checkpoints(d)]
[('ckpt-3', None)]
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

STEP_TENSOR = "step/.ATTRIBUTES/VARIABLE_VALUE"
_MAGIC = 0xDB4775248B80FB57
_DT_INT64 = 9
_DT_INT32 = 3


@dataclass(frozen=True)
class CheckpointFiles:
    """A checkpoint whose ``.index`` and ``.data-*`` files exist: prefix, name, global step."""

    prefix: Path
    step: int | None
    kept: bool

    @property
    def name(self) -> str:
        """``ckpt-N``."""
        return self.prefix.name


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

    Raises ``ValueError`` for a file that is not an uncompressed table.
    """
    buf = Path(path).read_bytes()
    if len(buf) < 48 or struct.unpack_from("<Q", buf, len(buf) - 8)[0] != _MAGIC:
        raise ValueError("not a checkpoint index (bad magic)")
    pos = len(buf) - 48
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
    base = Path(prefix)
    return sorted(key for key in read_index(base.with_name(base.name + ".index")) if key)


def _entry_fields(entry: bytes) -> dict[int, int]:
    """The varint fields of a BundleEntryProto (dtype 1, shard_id 3, offset 4, size 5)."""
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
            pos += 4
        elif wire == 1:
            pos += 8
        else:
            raise ValueError("bad wire type")
    return fields


def read_step(prefix: str | Path, tensor: str = STEP_TENSOR) -> int | None:
    """The global step saved in checkpoint ``prefix`` (None when absent or unreadable)."""
    base = Path(prefix)
    try:
        entries = read_index(base.with_name(base.name + ".index"))
        entry = entries.get(tensor)
        if entry is None:
            return None
        fields = _entry_fields(entry)
        dtype, shard, offset, size = fields.get(1), fields.get(3, 0), fields.get(4, 0), fields.get(5, 0)
        shards = sorted(base.parent.glob(f"{base.name}.data-{shard:05d}-of-*"))
        if not shards or dtype not in (_DT_INT64, _DT_INT32):
            return None
        with open(shards[0], "rb") as handle:
            handle.seek(offset)
            raw = handle.read(size)
        fmt = "<q" if dtype == _DT_INT64 else "<i"
        if len(raw) != struct.calcsize(fmt):
            return None
        return int(struct.unpack(fmt, raw)[0])
    except (OSError, ValueError, struct.error):
        return None


def list_checkpoints(
    model_dir: str | Path, ledger_steps: dict[str, int] | None = None
) -> list[CheckpointFiles]:
    """Every checkpoint below ``model_dir`` whose ``.index`` exists, with its step.

    Checkpoints outside the model directory's top level (the evaluator's kept copies) have
    ``kept=True``. ``ledger_steps`` (checkpoint name -> step) fills steps the files do not give.
    """
    base = Path(model_dir)
    found: list[CheckpointFiles] = []
    for index in sorted(base.rglob("*.index")):
        prefix = index.with_name(index.name[: -len(".index")])
        step = read_step(prefix)
        if step is None and ledger_steps:
            step = ledger_steps.get(prefix.name)
        found.append(CheckpointFiles(prefix=prefix, step=step, kept=index.parent != base))
    return found
