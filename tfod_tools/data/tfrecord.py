"""TFRecord files without TensorFlow: framing, masked CRC32C, streaming reader and writer.

A TFRecord file is a sequence of records, each framed as::

    uint64 length (little endian)
    uint32 masked_crc32c(length bytes)
    bytes  data[length]
    uint32 masked_crc32c(data)

The CRC is CRC-32C (Castagnoli), masked as ``((crc >> 15) | (crc << 17)) + 0xA282EAD8``. CRC32C
uses ``google_crc32c`` or ``crc32c`` when one is importable and otherwise a vectorised numpy
implementation (slicing-by-4 over many chunks at once, then a tree of CRC "combine" steps), fast
enough for image records.

Two readers share this framing:

- :func:`iter_records` streams a finished file (image records) and raises
  :class:`~tfod_tools.errors.TfodError` naming the file and the record index on a CRC mismatch or a
  truncated file.
- :func:`read_complete_records` reads a file that may still be being written (TensorBoard event
  files: thousands of ~100-byte records) in one pass over a memory map, checks the CRCs of all small
  records together in numpy (:func:`batch_masked_crc32c`: one table step per byte column, over every
  record at once, which costs less than one Python call per record) and stops quietly at the first
  incomplete or damaged record.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "x.record"
>>> write_records(path, [b"hello", b"", b"world" * 100])
3
>>> [len(r) for r in read_records(path)]
[5, 0, 500]
>>> _ = path.write_bytes(path.read_bytes() + b"\x05")  # a record still being written
>>> records, complete = read_complete_records(path, verify=True)
>>> [len(r) for r in records], complete
([5, 0, 500], False)
>>> hex(crc32c(b"123456789"))
'0xe3069283'
>>> shard_names("data/train.record", 3)[-1]
'data/train.record-00002-of-00003'
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from tfod_tools.errors import TfodError
from tfod_tools.fsutil import atomic_path

__all__ = [
    "TFRecordWriter",
    "batch_masked_crc32c",
    "begins_like_tfrecord",
    "count_records",
    "crc32c",
    "expand_record_paths",
    "frame_record",
    "iter_records",
    "masked_crc32c",
    "read_complete_records",
    "read_records",
    "shard_names",
    "write_records",
]

_POLY = 0x82F63B78  # CRC-32C, reflected
_MASK_DELTA = 0xA282EAD8
_U32 = np.uint32
_HEADER = 12  # uint64 length + uint32 masked CRC of the length
_FOOTER = 4  # uint32 masked CRC of the data
_BATCH_MAX_LEN = 1024  # records up to this long have their CRCs computed in batch
_BATCH_ROWS = 4096
U32Array = npt.NDArray[np.uint32]


def _make_tables() -> npt.NDArray[np.uint32]:
    table = np.zeros((4, 256), dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table[0, i] = c
    for k in range(1, 4):
        prev = table[k - 1]
        table[k] = (prev >> _U32(8)) ^ table[0][prev & _U32(0xFF)]
    return table


_TABLES = _make_tables()
_T0_LIST: list[int] = [int(v) for v in _TABLES[0]]
_SMALL = 512  # below this many bytes, a plain Python loop beats numpy's per-call overhead
_CHUNK = 16  # bytes per parallel chunk (a multiple of 4; 16 measured fastest for 20 KB..1 MB)
_SHIFT_TABLES: dict[int, npt.NDArray[np.uint32]] = {}


def _crc_small(data: bytes, crc: int) -> int:
    table = _T0_LIST
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def _apply_shift(tables: npt.NDArray[np.uint32], x: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    """Apply a linear CRC operator given as 4 byte tables to each state in ``x``."""
    return (
        tables[0][x & _U32(0xFF)]
        ^ tables[1][(x >> _U32(8)) & _U32(0xFF)]
        ^ tables[2][(x >> _U32(16)) & _U32(0xFF)]
        ^ tables[3][x >> _U32(24)]
    )


def _tables_from_basis(basis: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    """Byte tables of a linear operator from its images of the 32 unit vectors."""
    bits = ((np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1).astype(bool)  # (256, 8)
    tables = np.zeros((4, 256), dtype=np.uint32)
    for k in range(4):
        part = np.where(bits, basis[8 * k : 8 * k + 8][None, :], _U32(0))
        tables[k] = np.bitwise_xor.reduce(part, axis=1)
    return tables


def _shift_tables(level: int) -> npt.NDArray[np.uint32]:
    """Tables of the operator "advance a raw CRC state over ``_CHUNK * 2**level`` zero bytes"."""
    cached = _SHIFT_TABLES.get(level)
    if cached is not None:
        return cached
    if level == 0:
        state = (np.uint32(1) << np.arange(32, dtype=np.uint32)).astype(np.uint32)
        for _ in range(_CHUNK // 4):
            state = _apply_shift(_TABLES[::-1], state)
    else:
        prev = _shift_tables(level - 1)
        unit = (np.uint32(1) << np.arange(32, dtype=np.uint32)).astype(np.uint32)
        state = _apply_shift(prev, _apply_shift(prev, unit))
    tables = _tables_from_basis(state)
    _SHIFT_TABLES[level] = tables
    return tables


def _crc_numpy(data: bytes) -> int:
    """CRC-32C of ``len(data) >= 4`` bytes, vectorised over chunks."""
    n = len(data)
    chunks = 1 << max(0, (n + _CHUNK - 1) // _CHUNK - 1).bit_length()
    total = chunks * _CHUNK
    padded = np.zeros(total, dtype=np.uint8)
    padded[total - n :] = np.frombuffer(data, dtype=np.uint8)
    # Leading zeros leave a zero raw state unchanged; the initial state 0xFFFFFFFF is folded in by
    # XOR-ing it into the first four data bytes (valid for a reflected CRC).
    padded[total - n : total - n + 4] ^= np.uint8(0xFF)
    words = padded.view("<u4").reshape(chunks, _CHUNK // 4)
    t0, t1, t2, t3 = _TABLES
    crc: npt.NDArray[np.uint32] = np.zeros(chunks, dtype=np.uint32)
    for j in range(_CHUNK // 4):
        crc ^= words[:, j]
        crc = (
            t3[crc & _U32(0xFF)]
            ^ t2[(crc >> _U32(8)) & _U32(0xFF)]
            ^ t1[(crc >> _U32(16)) & _U32(0xFF)]
            ^ t0[crc >> _U32(24)]
        )
    level = 0
    while crc.shape[0] > 1:
        crc = _apply_shift(_shift_tables(level), crc[0::2]) ^ crc[1::2]
        level += 1
    return int(crc[0]) ^ 0xFFFFFFFF


def _crc32c_builtin(data: bytes) -> int:
    if len(data) < _SMALL:
        return _crc_small(data, 0xFFFFFFFF) ^ 0xFFFFFFFF
    return _crc_numpy(data)


def _pick_implementation() -> tuple[str, Callable[[bytes], int]]:
    try:
        import google_crc32c

        return "google_crc32c", google_crc32c.value
    except ImportError:
        pass
    try:
        import crc32c as _crc32c_mod

        return "crc32c", _crc32c_mod.crc32c
    except ImportError:
        pass
    return "numpy", _crc32c_builtin


CRC32C_IMPLEMENTATION, _crc32c_impl = _pick_implementation()
"""Which CRC-32C implementation is in use: ``google_crc32c``, ``crc32c`` or ``numpy``."""


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``.

    >>> crc32c(b"")
    0
    >>> crc32c(b"a" * 1000) == crc32c(bytes(bytearray(b"a" * 1000)))
    True
    """
    return int(_crc32c_impl(bytes(data)))


def _mask(crc: Any) -> Any:
    """TFRecord's CRC mask, for one ``int`` or a ``uint32`` array."""
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The masked CRC-32C that TFRecord framing stores.

    >>> masked_crc32c(b"")
    2726488792
    """
    return int(_mask(crc32c(data)))


def _masked_crc_rows(rows: npt.NDArray[np.uint8], lengths: npt.NDArray[np.int64]) -> U32Array:
    """Masked CRC-32C of each row's last ``lengths[i]`` bytes (``>= 4``); the rest must be zero."""
    count, width = rows.shape
    first = width - lengths
    rows = rows.copy()
    for k in range(4):  # fold the initial state 0xFFFFFFFF into the first four data bytes
        rows[np.arange(count), first + k] ^= np.uint8(0xFF)
    t0 = _TABLES[0]
    crc = np.zeros(count, dtype=np.uint32)
    for column in rows.T:  # leading zero bytes leave a zero state unchanged
        crc = t0[(crc ^ column) & _U32(0xFF)] ^ (crc >> _U32(8))
    masked: U32Array = _mask(crc ^ _U32(0xFFFFFFFF)).astype(np.uint32)
    return masked


def batch_masked_crc32c(
    buffer: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]
) -> U32Array:
    """Masked CRC-32C of ``buffer[starts[i] : starts[i] + lengths[i]]`` for every ``i``.

    Slices of 4 to ``_BATCH_MAX_LEN`` bytes are computed together, row by row of a zero-padded
    matrix; the others one by one with :func:`masked_crc32c`.

    >>> data = np.frombuffer(b"123456789abc", dtype=np.uint8)
    >>> got = batch_masked_crc32c(data, np.array([0, 9]), np.array([9, 3]))
    >>> got.tolist() == [masked_crc32c(b"123456789"), masked_crc32c(b"abc")]
    True
    """
    out = np.zeros(len(starts), dtype=np.uint32)
    batch = np.flatnonzero((lengths >= 4) & (lengths <= _BATCH_MAX_LEN))
    batch = batch[np.argsort(lengths[batch], kind="stable")]
    for block in range(0, len(batch), _BATCH_ROWS):
        index = batch[block : block + _BATCH_ROWS]
        block_lengths = lengths[index]
        width = int(block_lengths.max())
        columns = np.arange(width)
        pad = width - block_lengths
        source = starts[index, None] + columns[None, :] - pad[:, None]
        inside = columns[None, :] >= pad[:, None]
        rows = np.where(inside, buffer[np.clip(source, 0, max(len(buffer) - 1, 0))], np.uint8(0))
        out[index] = _masked_crc_rows(rows.astype(np.uint8), block_lengths)
    for i in np.flatnonzero((lengths < 4) | (lengths > _BATCH_MAX_LEN)):
        start = int(starts[i])
        out[i] = masked_crc32c(buffer[start : start + int(lengths[i])].tobytes())
    return out


def frame_record(data: bytes) -> bytes:
    """One record with its TFRecord framing.

    >>> len(frame_record(b"abc"))
    19
    """
    header = struct.pack("<Q", len(data))
    return b"".join(
        (header, struct.pack("<I", masked_crc32c(header)), data, struct.pack("<I", masked_crc32c(data)))
    )


class TFRecordWriter:
    """Write records to one TFRecord file atomically (temp name, renamed on :meth:`close`).

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.record"
    >>> with TFRecordWriter(path) as writer:
    ...     writer.write(b"a")
    ...     writer.write(b"bc")
    >>> writer.count, count_records(path)
    (2, 2)
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.count = 0
        self._ctx = atomic_path(self.path)
        self._tmp = self._ctx.__enter__()
        self._handle: BinaryIO | None = open(self._tmp, "wb")  # noqa: SIM115 - closed in close()

    def write(self, data: bytes) -> None:
        """Append one record."""
        if self._handle is None:
            raise TfodError("write after close", path=self.path)
        self._handle.write(frame_record(data))
        self.count += 1

    def close(self) -> None:
        """Finish the file: flush and rename it into place."""
        if self._handle is None:
            return
        self._handle.close()
        self._handle = None
        self._ctx.__exit__(None, None, None)

    def abort(self, exc: BaseException | None = None) -> None:
        """Drop the partial file; ``path`` is left untouched."""
        if self._handle is None:
            return
        self._handle.close()
        self._handle = None
        error = exc if exc is not None else RuntimeError("aborted")
        try:
            self._ctx.__exit__(type(error), error, error.__traceback__)
        except BaseException as raised:
            if raised is not error:
                raise

    def __enter__(self) -> TFRecordWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.close()
        else:
            self.abort(exc)


def write_records(path: str | Path, records: Iterable[bytes]) -> int:
    """Write ``records`` to a TFRecord file atomically; returns how many were written."""
    with TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)
    return writer.count


def _header_ok(header: bytes) -> bool:
    """Whether a record header's length CRC matches its length."""
    return masked_crc32c(header[:8]) == int.from_bytes(header[8:_HEADER], "little")


def _read_exact(handle: BinaryIO, n: int) -> bytes:
    data = handle.read(n)
    return data if data is not None else b""


def iter_records(path: str | Path, *, verify: bool = True) -> Iterator[tuple[int, bytes]]:
    """Stream ``(record_index, data)`` pairs from one TFRecord file (index starts at 0).

    Raises :class:`TfodError` naming the file and record index for a missing file, a truncated
    record or (with ``verify``) a CRC mismatch.
    """
    file = Path(path)
    try:
        handle = open(file, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise TfodError("TFRecord file not found", path=file, fix="check the path") from None
    except IsADirectoryError:
        raise TfodError("is a directory, not a TFRecord file", path=file) from None
    fix = "the file is damaged or not a TFRecord file; re-create it"
    with handle:
        size = os.fstat(handle.fileno()).st_size
        index = 0
        while True:
            header = _read_exact(handle, _HEADER)
            if not header:
                return
            if len(header) < _HEADER:
                raise TfodError(
                    f"record {index}: truncated header ({len(header)} of {_HEADER} bytes)", path=file, fix=fix
                )
            (length,) = struct.unpack("<Q", header[:8])
            if verify and not _header_ok(header):
                raise TfodError(f"record {index}: length CRC mismatch", path=file, fix=fix)
            if length > size - handle.tell():
                raise TfodError(
                    f"record {index}: truncated data ({length} bytes announced, {size - handle.tell()} left)",
                    path=file,
                    fix=fix,
                )
            data = _read_exact(handle, length)
            footer = _read_exact(handle, _FOOTER)
            if len(data) < length or len(footer) < _FOOTER:
                raise TfodError(
                    f"record {index}: truncated data ({len(data)} of {length} bytes)", path=file, fix=fix
                )
            if verify and masked_crc32c(data) != struct.unpack("<I", footer)[0]:
                raise TfodError(f"record {index}: data CRC mismatch", path=file, fix=fix)
            yield index, data
            index += 1


def read_records(path: str | Path, *, verify: bool = True) -> Iterator[bytes]:
    """Stream the records of one TFRecord file (see :func:`iter_records`)."""
    for _, data in iter_records(path, verify=verify):
        yield data


def read_complete_records(path: str | Path, *, verify: bool) -> tuple[list[bytes], bool]:
    """The complete, CRC-valid records of ``path`` up to the first bad one, and whether the whole
    file was valid: for a file that may still be being written (an event file).

    A missing file reads as empty and complete (removed between listing and reading: an atomic
    rewrite). ``verify=False`` skips the data CRCs (length CRCs are always checked).
    """
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            if size == 0:
                return [], True
            view = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        return [], True
    with view:
        offsets: list[int] = []
        lengths_list: list[int] = []
        position = 0
        while position + _HEADER <= size:
            length = int.from_bytes(view[position : position + 8], "little")
            end = position + _HEADER + length + _FOOTER
            if end > size:
                break
            offsets.append(position)
            lengths_list.append(length)
            position = end
        complete = position == size
        if not offsets:
            return [], complete
        buffer = np.frombuffer(view, dtype=np.uint8)
        try:
            starts = np.array(offsets, dtype=np.int64)
            lengths = np.array(lengths_list, dtype=np.int64)
            ok = _stored_crcs(buffer, starts + 8) == batch_masked_crc32c(
                buffer, starts, np.full(len(starts), 8, dtype=np.int64)
            )
            if verify:
                data_crc = batch_masked_crc32c(buffer, starts + _HEADER, lengths)
                ok &= _stored_crcs(buffer, starts + _HEADER + lengths) == data_crc
            bad = np.flatnonzero(~ok)
            keep = int(bad[0]) if len(bad) else len(offsets)
        finally:
            del buffer  # release the export before the mmap closes
        records = [
            view[o + _HEADER : o + _HEADER + n]
            for o, n in zip(offsets[:keep], lengths_list[:keep], strict=True)
        ]
    return records, complete and keep == len(offsets)


def _stored_crcs(buffer: npt.NDArray[np.uint8], at: npt.NDArray[np.int64]) -> U32Array:
    raw = buffer[at[:, None] + np.arange(4)[None, :]].astype(np.uint32)
    shifted = raw << (np.arange(4, dtype=np.uint32) * np.uint32(8))[None, :]
    stored: U32Array = np.bitwise_or.reduce(shifted, axis=1).astype(np.uint32)
    return stored


def begins_like_tfrecord(path: str | Path) -> bool:
    """Whether ``path`` could begin with a TFRecord frame: under 12 bytes so far (a header still
    being written), a first header whose length CRC matches, or unreadable now (gone: not evidence
    that it is something else).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "r").write_bytes(frame_record(b"x")); _ = (d / "t").write_bytes(b"plain text file")
    >>> begins_like_tfrecord(d / "r"), begins_like_tfrecord(d / "t")
    (True, False)
    """
    try:
        with open(path, "rb") as handle:
            header = handle.read(_HEADER)
    except OSError:
        return True
    return len(header) < _HEADER or _header_ok(header)


def count_records(path: str | Path) -> int:
    """Number of records in a file (framing is checked, data CRCs are not)."""
    return sum(1 for _ in iter_records(path, verify=False))


def shard_names(prefix: str | Path, num_shards: int) -> list[str]:
    """The TF OD API's sharded file names ``PREFIX-00000-of-00010``.

    >>> shard_names("train.record", 2)
    ['train.record-00000-of-00002', 'train.record-00001-of-00002']
    """
    if num_shards < 1:
        raise TfodError(f"num_shards must be >= 1, got {num_shards}")
    return [f"{prefix}-{i:05d}-of-{num_shards:05d}" for i in range(num_shards)]


def expand_record_paths(pattern: str | Path) -> list[Path]:
    """Expand a path, a glob (``train.record-*``) or a shard spec (``train.record@10``) to files.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in shard_names(d / "t.record", 2):
    ...     _ = write_records(name, [b"x"])
    >>> [p.name for p in expand_record_paths(d / "t.record-*")]
    ['t.record-00000-of-00002', 't.record-00001-of-00002']
    >>> [p.name for p in expand_record_paths(f"{d}/t.record@2")]
    ['t.record-00000-of-00002', 't.record-00001-of-00002']
    """
    text = str(pattern)
    if "@" in Path(text).name:
        prefix, _, count = text.rpartition("@")
        if count.isdigit():
            return [Path(p) for p in shard_names(prefix, int(count))]
    if any(ch in Path(text).name for ch in "*?["):
        parent = Path(text).parent
        matches = sorted(parent.glob(Path(text).name))
        if not matches:
            raise TfodError("no TFRecord files match", path=text, fix="check the glob pattern")
        return matches
    return [Path(text)]
