"""Read the records of one TFRecord-framed file fast: a framing pass, then CRCs checked in batch.

An event file holds thousands of small records (one scalar is ~100 bytes). Checking their
CRC-32C one by one in Python costs more than parsing them, so the length and data CRCs of all
small records of a file are computed together with numpy (one table step per byte column, over
every record at once); large records use :func:`tfod_tools.data.tfrecord.masked_crc32c`.
Reading stops at the first record that is incomplete (a file still being written) or whose
CRC does not match, exactly as a record-by-record reader would.

>>> import tempfile, pathlib
>>> from tfod_tools.data.tfrecord import frame_record
>>> path = pathlib.Path(tempfile.mkdtemp()) / "f"
>>> _ = path.write_bytes(b"".join(frame_record(b"x" * n) for n in (0, 3, 10, 2000)) + b"\\x05")
>>> records, complete = read_records(path, verify=True)
>>> [len(r) for r in records], complete
([0, 3, 10, 2000], False)
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tfod_tools.data.tfrecord import masked_crc32c

__all__ = ["batch_masked_crc32c", "read_records"]

_POLY = 0x82F63B78  # CRC-32C, reflected
_MASK_DELTA = np.uint32(0xA282EAD8)
_BATCH_MAX_LEN = 1024  # records up to this long are checked in batch
_BATCH_ROWS = 4096
U32 = npt.NDArray[np.uint32]


def _table() -> U32:
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table[i] = c
    return table


_T0 = _table()


def _masked_crc_rows(rows: npt.NDArray[np.uint8], lengths: npt.NDArray[np.int64]) -> U32:
    """Masked CRC-32C of each row's last ``lengths[i]`` bytes (``>= 4``); the rest must be zero."""
    count, width = rows.shape
    first = width - lengths
    rows = rows.copy()
    for k in range(4):  # fold the initial state 0xFFFFFFFF into the first four data bytes
        rows[np.arange(count), first + k] ^= np.uint8(0xFF)
    crc = np.zeros(count, dtype=np.uint32)
    for column in rows.T:  # leading zero bytes leave a zero state unchanged
        crc = _T0[(crc ^ column) & np.uint32(0xFF)] ^ (crc >> np.uint32(8))
    crc ^= np.uint32(0xFFFFFFFF)
    return ((crc >> np.uint32(15)) | (crc << np.uint32(17))) + _MASK_DELTA


def batch_masked_crc32c(
    buffer: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]
) -> U32:
    """Masked CRC-32C of ``buffer[starts[i] : starts[i] + lengths[i]]`` for every ``i``.

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


def read_records(path: Path, *, verify: bool) -> tuple[list[bytes], bool]:
    """The complete, CRC-valid records of ``path`` up to the first bad one, and whether the whole
    file was valid. ``verify=False`` skips the data CRCs (length CRCs are always checked)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            if size == 0:
                return [], True
            view = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:  # removed between listing and reading (an atomic rewrite)
        return [], True
    with view:
        offsets: list[int] = []
        lengths_list: list[int] = []
        position = 0
        while position + 12 <= size:
            length = int.from_bytes(view[position : position + 8], "little")
            end = position + 16 + length
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
            header_ok = _stored_crcs(buffer, starts + 8) == batch_masked_crc32c(
                buffer, starts, np.full(len(starts), 8, dtype=np.int64)
            )
            ok = header_ok
            if verify:
                data_crc = batch_masked_crc32c(buffer, starts + 12, lengths)
                ok = ok & (_stored_crcs(buffer, starts + 12 + lengths) == data_crc)
            bad = np.flatnonzero(~ok)
            keep = int(bad[0]) if len(bad) else len(offsets)
        finally:
            del buffer  # release the export before the mmap closes
        records = [
            view[o + 12 : o + 12 + n] for o, n in zip(offsets[:keep], lengths_list[:keep], strict=True)
        ]
    return records, complete and keep == len(offsets)


def _stored_crcs(buffer: npt.NDArray[np.uint8], at: npt.NDArray[np.int64]) -> U32:
    raw = buffer[at[:, None] + np.arange(4)[None, :]].astype(np.uint32)
    shifted = raw << (np.arange(4, dtype=np.uint32) * np.uint32(8))[None, :]
    return np.bitwise_or.reduce(shifted, axis=1).astype(np.uint32)
