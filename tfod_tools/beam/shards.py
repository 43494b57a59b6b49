"""Shard writing from a Beam pipeline: the local writer's bytes, whatever order Beam uses.

:class:`WriteShards` is the one way a ``--beam`` run writes records: the same bytes
:func:`tfod_tools.data.tfrecord.write_records` would write, in an order fixed by the caller's keys
(never by the runner), and under the final names only when every shard is complete. A record's bytes
need not travel through the runner to get there: a DoFn that makes records puts them in its bundle's
:class:`Spill` file and passes on only where they are (:data:`Spilled`); the shard writers read them
back (:func:`resolve_spilled`, :class:`SliceReader`), from any Beam file system.

>>> import tempfile, apache_beam as beam
>>> d = tempfile.mkdtemp()
>>> with beam.Pipeline() as p:
...     _ = (p | beam.Create([(1, (2, b"c")), (0, (0, b"a")), (1, (1, b"b"))])
...            | WriteShards(f"{d}/x.record", 2))
>>> from tfod_tools.data.tfrecord import read_records
>>> [list(read_records(f"{d}/x.record-0000{i}-of-00002")) for i in range(2)]
[[b'a'], [b'b', b'c']]
>>> sorted(os.listdir(d))  # no temporary folder left behind
['x.record-00000-of-00002', 'x.record-00001-of-00002']
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from tfod_tools.beam import carry_error
from tfod_tools.beam.io import RAW, has_scheme, remove_tree, replace_files, scratch_dir
from tfod_tools.data.tfrecord import frame_record, shard_names
from tfod_tools.errors import TfodError

__all__ = [
    "ShardItem",
    "SliceReader",
    "Spill",
    "Spilled",
    "WriteShards",
    "Written",
    "final_names",
    "resolve_spilled",
]

Spilled = tuple[str, int, int]
"""Where :class:`Spill` put one record's bytes: ``(file, offset, length)``."""

ShardItem = tuple[int, tuple[Any, "bytes | Spilled"]]
"""One element of :class:`WriteShards`' input: ``(shard_index, (order_key, record_bytes or where a
Spill put them))``."""


def final_names(prefix: str, num_shards: int) -> list[str]:
    """The files ``num_shards`` shards at ``prefix`` end up in: the prefix itself for one shard.

    >>> final_names("out/t.record", 1), final_names("out/t.record", 2)[1]
    (['out/t.record'], 'out/t.record-00001-of-00002')
    """
    return [str(prefix)] if num_shards == 1 else shard_names(prefix, num_shards)


class Spill:
    """Record bytes written to one scratch file per bundle, so only ``(file, offset, length)`` travels.

    A record's bytes that go through the runner (a ``Reshuffle``, a ``GroupByKey``, a side input's
    main input) are encoded, copied between processes and decoded at every step: at 512 px that
    was 5 of the 11.6 s of a 2,000-image ``convert --beam`` on one DirectRunner worker. A DoFn that
    makes records opens a Spill in ``start_bundle``, :meth:`put` s each record's bytes and emits
    the :data:`Spilled` reference instead, and :meth:`close` s it in ``finish_bundle``; the runner
    hands a bundle's outputs on only once the bundle finished, so the file is complete when
    :class:`WriteShards` reads the slices back. A retried bundle writes a new file (the old one
    is unreferenced). ``folder`` is a scratch folder the driver removes after the run.

    >>> import tempfile
    >>> spill = Spill(tempfile.mkdtemp())
    >>> refs = [spill.put(b"abc"), spill.put(b"de")]
    >>> spill.close()
    >>> [r[1:] for r in refs], resolve_spilled([b"x", *refs])
    ([(0, 3), (3, 2)], [b'x', b'abc', b'de'])
    """

    def __init__(self, folder: str) -> None:
        self.folder = str(folder)
        self.path = FileSystems.join(self.folder, f"{uuid.uuid4().hex}.spill")
        self._handle: Any = None
        self._offset = 0

    def put(self, data: bytes) -> Spilled:
        """Append ``data``; where it went."""
        if self._handle is None:
            if not has_scheme(self.folder):
                os.makedirs(self.folder, exist_ok=True)
            self._handle = FileSystems.create(self.path, compression_type=RAW)
        self._handle.write(data)
        at = self._offset
        self._offset += len(data)
        return self.path, at, len(data)

    def close(self) -> None:
        """Complete the file (nothing was created when nothing was put)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class SliceReader:
    """Reads ``(file, offset, length)`` slices (:data:`Spilled`) of files on any Beam file system,
    each file opened once and kept open until :meth:`close`.

    >>> import tempfile
    >>> from tfod_tools.beam.io import write_bytes_atomic
    >>> path = f"{tempfile.mkdtemp()}/f.bin"; write_bytes_atomic(path, b"abcdef")
    >>> reader = SliceReader(); reader.read((path, 1, 3)), reader.read((path, 4, 2))
    (b'bcd', b'ef')
    >>> from tfod_tools.beam import error_from_text
    >>> try:
    ...     reader.read((path, 5, 3))
    ... except RuntimeError as exc:  # carried to the driver as the TfodError
    ...     print(error_from_text(str(exc)).message)
    3 bytes at offset 5 are not there: it changed while the job read it
    >>> reader.close()
    """

    def __init__(self) -> None:
        self._handles: dict[str, Any] = {}

    def read(self, where: Spilled) -> bytes:
        """The ``length`` bytes at ``offset`` of ``file``; a carried error if the file is shorter."""
        path, offset, length = where
        handle = self._handles.get(path)
        if handle is None:
            handle = self._handles[path] = FileSystems.open(path, compression_type=RAW)
        handle.seek(offset)
        data: bytes = handle.read(length)
        if len(data) != length:
            raise carry_error(
                TfodError(
                    f"{length} bytes at offset {offset} are not there: it changed while the job read it",
                    path=path,
                    fix="re-run the job on files nothing else writes to",
                )
            )
        return data

    def close(self) -> None:
        """Close every file opened."""
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()


def resolve_spilled(values: Sequence[bytes | Spilled]) -> list[bytes]:
    """``values`` with each :data:`Spilled` reference replaced by its bytes (file by file, each
    opened once and closed before the next: a shard's records come from many bundles' files)."""
    out: list[bytes | None] = [v if isinstance(v, bytes) else None for v in values]
    wanted = sorted((v, i) for i, v in enumerate(values) if not isinstance(v, bytes))
    reader, current = SliceReader(), None
    try:
        for where, i in wanted:
            if where[0] != current:
                reader.close()
                current = where[0]
            out[i] = reader.read(where)
    finally:
        reader.close()
    return [v for v in out if v is not None]


class Written(NamedTuple):
    """One shard :class:`WriteShards` wrote: its final path, how many records, the SHA-256 of its bytes
    (computed as they were written, so nothing reads a shard back to hash it)."""

    path: str
    records: int
    sha256: str


def _write_shard(
    item: tuple[int, Iterable[tuple[Any, bytes | Spilled]]], scratch: str, num_shards: int
) -> tuple[int, Written]:
    """One shard's records, sorted by key (ties by bytes: no runner order leaks in), to a scratch file."""
    shard, records = item
    if not (isinstance(shard, int) and 0 <= shard < num_shards):
        raise carry_error(TfodError(f"shard index {shard!r} is outside 0..{num_shards - 1}"))
    listed = list(records)
    keyed = list(zip([k for k, _ in listed], resolve_spilled([v for _, v in listed]), strict=True))
    path = FileSystems.join(scratch, f"shard-{shard:05d}.{uuid.uuid4().hex[:12]}")  # one per attempt
    digest = hashlib.sha256()
    with FileSystems.create(path, compression_type=RAW) as handle:
        for _, data in sorted(keyed, key=lambda kv: (kv[0], kv[1])):
            framed = frame_record(data)
            digest.update(framed)
            handle.write(framed)
    return shard, Written(path, len(keyed), digest.hexdigest())


def _finish(written: list[tuple[int, Written]], scratch: str, finals: list[str]) -> list[Written]:
    """Every shard is written: empty files for shards without records, then all renamed into place."""
    by_shard = dict(written)
    if len(by_shard) != len(written):
        raise carry_error(TfodError("a shard was written twice", path=scratch, fix="re-run the job"))
    for shard in range(len(finals)):
        if shard not in by_shard:
            empty = FileSystems.join(scratch, f"shard-{shard:05d}.empty")
            FileSystems.create(empty, compression_type=RAW).close()
            by_shard[shard] = Written(empty, 0, hashlib.sha256(b"").hexdigest())
    replace_files([by_shard[shard].path for shard in range(len(finals))], finals)
    remove_tree(scratch)
    return [by_shard[shard]._replace(path=final) for shard, final in enumerate(finals)]


class WriteShards(beam.PTransform):
    """``(shard_index, (order_key, record_bytes))`` -> TFRecord shards at ``prefix``; outputs the paths.

    Each shard holds its records sorted by ``order_key``, framed as :mod:`tfod_tools.data.tfrecord`
    frames them, so a run gives the bytes of ``write_records(name, records_in_key_order)``. The
    shards are written to a scratch folder beside ``prefix`` (:attr:`scratch`) and renamed to
    :func:`final_names` only after all were written: when any stage fails, nothing appears under
    the final names (call :meth:`cleanup` in the driver to drop the scratch folder then). The output
    is one element: a :class:`Written` per shard, in shard order. A shard's records are sorted in
    one worker's memory, so choose ``num_shards`` so that a shard fits (a few hundred MB).
    """

    def __init__(self, prefix: str, num_shards: int, *, scratch: str | None = None) -> None:
        super().__init__()
        if num_shards < 1:
            raise TfodError(f"--shards must be >= 1, got {num_shards}")
        self.prefix = str(prefix)
        self.num_shards = num_shards
        self.finals = final_names(self.prefix, num_shards)
        self.scratch = scratch if scratch is not None else scratch_dir(self.prefix)

    def expand(self, items: beam.PCollection) -> beam.PCollection:
        written = (
            items
            | "GroupByShard" >> beam.CombinePerKey(beam.combiners.ToListCombineFn())
            | "WriteShard" >> beam.Map(_write_shard, self.scratch, self.num_shards)
        )
        return (
            written
            | "AllShards" >> beam.combiners.ToList()
            | "RenameIntoPlace" >> beam.Map(_finish, self.scratch, list(self.finals))
        )

    def cleanup(self) -> None:
        """Remove the scratch folder (after a failed run; a finished run removes it itself)."""
        remove_tree(self.scratch)
