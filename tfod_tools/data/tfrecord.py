"""TFRecord files without TensorFlow: framing, masked CRC32C, streaming reader and writer.

A TFRecord file is a sequence of records, each framed as::

    uint64 length (little endian)
    uint32 masked_crc32c(length bytes)
    bytes  data[length]
    uint32 masked_crc32c(data)

The CRC is CRC-32C (Castagnoli), masked as ``((crc >> 15) | (crc << 17)) + 0xA282EAD8``
(:mod:`tfod_tools.crc32c`, shared with the checkpoint reader).

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
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from tfod_tools.crc32c import batch_masked_crc32c, crc32c, masked_crc32c
from tfod_tools.errors import TfodError
from tfod_tools.fsutil import atomic_path

__all__ = [
    "TFRecordWriter",
    "batch_masked_crc32c",
    "begins_like_tfrecord",
    "count_records",
    "crc32c",
    "expand_record_paths",
    "frame_length",
    "frame_payload",
    "frame_record",
    "iter_open_records",
    "iter_records",
    "masked_crc32c",
    "payload_span",
    "read_complete_records",
    "read_records",
    "shard_names",
    "with_frame_offsets",
    "write_records",
]

_HEADER = 12  # uint64 length + uint32 masked CRC of the length
_FOOTER = 4  # uint32 masked CRC of the data
U32Array = npt.NDArray[np.uint32]


def frame_payload(frame: bytes | memoryview) -> bytes:
    """The record's bytes inside one whole frame (no check: the frame was verified when found).

    >>> frame_payload(frame_record(b"abc"))
    b'abc'
    """
    return bytes(frame[_HEADER:-_FOOTER])


def frame_length(payload_length: int) -> int:
    """How many bytes the frame of a record of ``payload_length`` bytes takes in the file.

    >>> frame_length(3) == len(frame_record(b"abc"))
    True
    """
    return _HEADER + payload_length + _FOOTER


def with_frame_offsets(records: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, bytes, int]]:
    """One file's ``(index, data)`` records, in file order, each with the offset of its frame.

    >>> [(i, at) for i, _, at in with_frame_offsets([(0, b"abc"), (1, b"")])]
    [(0, 0), (1, 19)]
    """
    at = 0
    for index, data in records:
        yield index, data, at
        at += frame_length(len(data))


def payload_span(offset: int, length: int) -> tuple[int, int]:
    """``(offset, length)`` of the record's bytes inside the frame at ``offset``, ``length`` bytes long.

    >>> frame = frame_record(b"abc")
    >>> start, n = payload_span(0, len(frame)); frame[start : start + n]
    b'abc'
    """
    return offset + _HEADER, length - _HEADER - _FOOTER


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
    with handle:
        yield from iter_open_records(handle, file, os.fstat(handle.fileno()).st_size, verify=verify)


def iter_open_records(
    handle: BinaryIO, path: str | Path, size: int, *, verify: bool = True
) -> Iterator[tuple[int, bytes]]:
    """:func:`iter_records` over a file already open for binary reading at its start, ``size`` bytes
    long: any object with ``read`` and ``tell`` (a local file, a stream of Beam's ``FileSystems``);
    errors name ``path``. The caller closes ``handle``.

    >>> import io
    >>> data = frame_record(b"a") + frame_record(b"bc")
    >>> list(iter_open_records(io.BytesIO(data), "mem://x.record", len(data)))
    [(0, b'a'), (1, b'bc')]
    >>> list(iter_open_records(io.BytesIO(data[:-5]), "mem://x.record", len(data) - 5))
    Traceback (most recent call last):
    ...
    tfod_tools.errors.TfodError: mem://x.record: record 1: truncated data (2 bytes announced, 1 left) \
(fix: the file is damaged or not a TFRecord file; re-create it)
    """
    fix = "the file is damaged or not a TFRecord file; re-create it"
    file = path
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
