"""CRC-32C (Castagnoli) and the mask TensorFlow's file formats store (TFRecord framing, tensor bundles).

Defined once here for both users: :mod:`tfod_tools.data.tfrecord` (record framing, event files) and
:mod:`tfod_tools.odapi.checkpoints` (the step tensor's checksum in a checkpoint's index). Uses
``google_crc32c`` or ``crc32c`` when one is importable and otherwise a vectorised numpy
implementation (slicing-by-4 over many chunks at once, then a tree of CRC "combine" steps), fast
enough for image records. The mask is ``((crc >> 15) | (crc << 17)) + 0xA282EAD8``.

>>> hex(crc32c(b"123456789"))
'0xe3069283'
>>> masked_crc32c(b"")
2726488792
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["CRC32C_IMPLEMENTATION", "batch_masked_crc32c", "crc32c", "masked_crc32c"]

_POLY = 0x82F63B78  # CRC-32C, reflected
_MASK_DELTA = 0xA282EAD8
_U32 = np.uint32
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
