"""Writing TFRecord shards and small files from a Beam pipeline, through Beam's ``FileSystems``.

Every path goes through ``apache_beam.io.filesystems.FileSystems``, so ``gs://`` (and any file system
Beam has) works as a local path does. :class:`WriteShards` is the one way a ``--beam`` run writes
records: the same bytes :func:`tfod_tools.data.tfrecord.write_records` would write, in an order
fixed by the caller's keys (never by the runner), and under the final names only when every shard
is complete. :func:`read_bytes` / :func:`write_bytes_atomic` are for manifests and JSON;
:func:`iter_records_at` / :func:`record_files` read and list record files on any file system, and
:func:`check_filesystems` refuses, up front, a scheme no Beam file system here handles.

>>> import tempfile, apache_beam as beam
>>> d = tempfile.mkdtemp()
>>> with beam.Pipeline() as p:
...     _ = (p | beam.Create([(1, (2, b"c")), (0, (0, b"a")), (1, (1, b"b"))])
...            | WriteShards(f"{d}/x.record", 2))
>>> from tfod_tools.data.tfrecord import read_records
>>> [list(read_records(f"{d}/x.record-0000{i}-of-00002")) for i in range(2)]
[[b'a'], [b'b', b'c']]
>>> write_bytes_atomic(f"{d}/m.json", b"{}"); read_bytes(f"{d}/m.json")
b'{}'
>>> sorted(os.listdir(d))  # no temporary folder left behind
['m.json', 'x.record-00000-of-00002', 'x.record-00001-of-00002']
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from tfod_tools.beam import carry_error
from tfod_tools.data.tfrecord import (
    expand_record_paths,
    frame_record,
    iter_open_records,
    iter_records,
    shard_names,
)
from tfod_tools.errors import TfodError

__all__ = [
    "ShardItem",
    "SliceReader",
    "Spill",
    "Spilled",
    "WriteShards",
    "Written",
    "check_filesystems",
    "copy_tree_to_local",
    "final_names",
    "has_scheme",
    "iter_records_at",
    "publish_tree",
    "read_bytes",
    "record_files",
    "remove_tree",
    "resolve_spilled",
    "scratch_dir",
    "tree_files",
    "url",
    "write_bytes_atomic",
]

Spilled = tuple[str, int, int]
"""Where :class:`Spill` put one record's bytes: ``(file, offset, length)``."""

ShardItem = tuple[int, tuple[Any, "bytes | Spilled"]]
"""One element of :class:`WriteShards`' input: ``(shard_index, (order_key, record_bytes or where a
Spill put them))``."""

_RAW = CompressionTypes.UNCOMPRESSED  # never guess a compression from a ".gz" name


def final_names(prefix: str, num_shards: int) -> list[str]:
    """The files ``num_shards`` shards at ``prefix`` end up in: the prefix itself for one shard.

    >>> final_names("out/t.record", 1), final_names("out/t.record", 2)[1]
    (['out/t.record'], 'out/t.record-00001-of-00002')
    """
    return [str(prefix)] if num_shards == 1 else shard_names(prefix, num_shards)


def scratch_dir(near: str) -> str:
    """A new, unique hidden folder name beside ``near`` for one run's partial files (not created).

    >>> os.path.basename(scratch_dir("/tmp/out/t.record")).startswith(".t.record.beam-")
    True
    """
    parent, name = FileSystems.split(str(near))
    return FileSystems.join(parent, f".{name}.beam-{uuid.uuid4().hex[:12]}")


def remove_tree(path: str) -> None:
    """Delete ``path`` (a scratch folder, or a file) and everything under it; nothing if it is gone."""
    with contextlib.suppress(Exception):  # BeamIOError: already gone, or never created
        if "://" in path:  # object stores have no folders: delete the objects under the name
            children = [m.path for r in FileSystems.match([f"{path}/**"]) for m in r.metadata_list]
            if children:
                FileSystems.delete(children)
        if FileSystems.exists(path):
            FileSystems.delete([path])


def read_bytes(path: str) -> bytes:
    """The bytes of ``path`` (any Beam file system); a missing file is a :class:`TfodError`."""
    if not FileSystems.exists(str(path)):
        raise TfodError("file not found", path=path, fix="check the path")
    with FileSystems.open(str(path), compression_type=_RAW) as handle:
        data: bytes = handle.read()
    return data


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` under a temporary name, then rename it onto ``path``."""
    parent, name = FileSystems.split(str(path))
    tmp = FileSystems.join(parent, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with FileSystems.create(tmp, compression_type=_RAW) as handle:
            handle.write(data)
        _replace([tmp], [str(path)])
    except BaseException:
        remove_tree(tmp)
        raise


def _replace(sources: Sequence[str], destinations: Sequence[str]) -> None:
    """Rename each source onto its destination, replacing what is there (local: ``os.replace``)."""
    if all("://" not in name for name in [*sources, *destinations]):
        for source, destination in zip(sources, destinations, strict=True):
            os.replace(source, destination)
        return
    existing = [name for name in destinations if FileSystems.exists(name)]
    if existing:
        FileSystems.delete(existing)
    FileSystems.rename(list(sources), list(destinations))


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
            if "://" not in self.folder:
                os.makedirs(self.folder, exist_ok=True)
            self._handle = FileSystems.create(self.path, compression_type=_RAW)
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
            handle = self._handles[path] = FileSystems.open(path, compression_type=_RAW)
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
    with FileSystems.create(path, compression_type=_RAW) as handle:
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
            FileSystems.create(empty, compression_type=_RAW).close()
            by_shard[shard] = Written(empty, 0, hashlib.sha256(b"").hexdigest())
    _replace([by_shard[shard].path for shard in range(len(finals))], finals)
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


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")  # gs://b/x, or gs:/b/x once it went through Path


_COLLAPSED = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/(?!/)")  # what Path makes of scheme://


def url(path: str | Path) -> str:
    """``path`` as text, with the ``//`` of ``scheme://`` that ``Path`` collapses put back.

    >>> url(Path("gs://b/x.record")), url("gs://b/x.record"), url(Path("data/x.record"))
    ('gs://b/x.record', 'gs://b/x.record', 'data/x.record')
    """
    return _COLLAPSED.sub(r"\1://", str(path), count=1)


def has_scheme(path: str | Path) -> bool:
    """Whether ``path`` names a ``scheme://`` file system (``Path("gs://b")`` too), not a local path.

    >>> has_scheme("gs://b/x"), has_scheme(Path("s3://b/x")), has_scheme("/tmp/x"), has_scheme("x")
    (True, True, False, False)
    """
    return bool(_SCHEME.match(str(path)))


_EXTRAS = {
    "gs": "pip install 'apache-beam[gcp]'",
    "s3": "pip install 'apache-beam[aws]'",
    "azfs": "pip install 'apache-beam[azure]'",
    "hdfs": "pip install hdfs",
}


def check_filesystems(command: str, paths: Iterable[str | Path | None]) -> None:
    """A :class:`TfodError` for a ``scheme://`` path whose scheme no Beam file system here handles
    (``FileSystems.get_filesystem`` finds none, or its libraries are missing); local paths pass.
    The one up-front check of every ``--beam`` command, before the pipeline is built. The workers
    need the same file systems installed (the same extra).

    >>> check_filesystems("tfod inspect --beam", ["train.record", None, "/tmp/x"])
    >>> check_filesystems("tfod inspect --beam", ["nosuch://b/train.record"])
    Traceback (most recent call last):
    ...
    tfod_tools.errors.TfodError: nosuch://b/train.record: tfod inspect --beam: Beam has no file system \
for nosuch:// here (fix: use a local path or a scheme Beam has (gs://, s3://, ...), with its extra \
installed on the driver and the workers)
    """
    for path in paths:
        if path is None or not has_scheme(path):
            continue
        text = url(path)
        scheme = text.split("://", 1)[0]
        try:
            FileSystems.get_filesystem(text)
        except Exception:  # ValueError: no such scheme; BeamIOError: its libraries are missing
            install = _EXTRAS.get(scheme.lower())
            fix = (
                f"{install} (on the driver and the workers)"
                if install
                else "use a local path or a scheme Beam has (gs://, s3://, ...), with its extra installed "
                "on the driver and the workers"
            )
            raise TfodError(
                f"{command}: Beam has no file system for {scheme}:// here", path=text, fix=fix
            ) from None


def _matched(text: str) -> list[Any]:
    """``FileSystems.match`` of one path or glob: its files' metadata, empty when nothing matches
    (some file systems raise ``BeamIOError`` for that instead of an empty list)."""
    try:
        return list(FileSystems.match([text])[0].metadata_list)
    except Exception:  # BeamIOError: nothing matched
        return []


def record_files(pattern: str | Path) -> list[str]:
    """:func:`~tfod_tools.data.tfrecord.expand_record_paths` for any Beam file system: a file, a glob
    (``gs://b/train.record-*``, listed with ``FileSystems.match``) or ``PREFIX@N``; local paths are
    expanded by the local rule itself.

    >>> record_files("gs://b/t.record@2")
    ['gs://b/t.record-00000-of-00002', 'gs://b/t.record-00001-of-00002']
    """
    if not has_scheme(pattern):
        return [str(p) for p in expand_record_paths(pattern)]
    text = url(pattern)
    name = text.rsplit("/", 1)[-1]
    prefix, at, count = text.rpartition("@")
    if at and "@" in name and count.isdigit():
        return shard_names(prefix, int(count))
    if any(ch in name for ch in "*?["):
        matched = _matched(text)
        if not matched:
            raise TfodError("no TFRecord files match", path=text, fix="check the glob pattern")
        return sorted(url(m.path) for m in matched)
    return [text]


def iter_records_at(path: str | Path, *, verify: bool = True) -> Iterator[tuple[int, bytes]]:
    """:func:`~tfod_tools.data.tfrecord.iter_records` of a file on any Beam file system (a local
    path is read by ``iter_records`` itself): the same records, the same errors.

    >>> import tempfile
    >>> from tfod_tools.data.tfrecord import write_records
    >>> f = f"{tempfile.mkdtemp()}/x.record"; _ = write_records(f, [b"a", b"b"])
    >>> list(iter_records_at(f))
    [(0, b'a'), (1, b'b')]
    """
    if not has_scheme(path):
        yield from iter_records(path, verify=verify)
        return
    text = url(path)
    matched = _matched(text)
    if not matched:
        raise TfodError("TFRecord file not found", path=text, fix="check the path")
    with FileSystems.open(text, compression_type=_RAW) as handle:
        yield from iter_open_records(handle, text, matched[0].size_in_bytes, verify=verify)


_CHUNK = 8 << 20  # bytes per read when copying a file between file systems


def _copy_file(source: str, destination: str) -> None:
    """Stream one file from ``source`` to ``destination`` (any Beam file systems; parents made)."""
    with (
        FileSystems.open(source, compression_type=_RAW) as reader,
        FileSystems.create(destination, compression_type=_RAW) as writer,
    ):
        while chunk := reader.read(_CHUNK):
            writer.write(chunk)


def tree_files(root: str | Path) -> list[str]:
    """The files under the folder ``root`` (any Beam file system), as sorted ``/``-separated paths
    relative to it; empty when there is none (or ``root`` is a file).

    >>> import tempfile
    >>> d = tempfile.mkdtemp(); os.makedirs(f"{d}/a/b"); _ = open(f"{d}/a/b/c.txt", "w").write("c")
    >>> _ = open(f"{d}/top", "w").write("t"); tree_files(d), tree_files(f"{d}/top")
    (['a/b/c.txt', 'top'], [])
    """
    text = url(root).rstrip("/")
    found = []
    for metadata in _matched(f"{text}/**"):
        path = url(metadata.path)
        if not has_scheme(text):
            path = os.path.relpath(path, text).replace(os.sep, "/")
        elif path.startswith(f"{text}/"):
            path = path[len(text) + 1 :]
        else:  # not under root (cannot happen with a file system's own match)
            continue
        if path and not path.startswith(".."):
            found.append(path)
    return sorted(set(found))


def copy_tree_to_local(source: str | Path, target: str | Path, files: Sequence[str] | None = None) -> Path:
    """Copy ``files`` (relative paths; default: :func:`tree_files`) of the folder ``source`` (any Beam
    file system) into the local folder ``target``, created; returns ``target``.

    >>> import tempfile
    >>> d = tempfile.mkdtemp(); os.makedirs(f"{d}/src/a"); _ = open(f"{d}/src/a/x", "w").write("x")
    >>> tree_files(copy_tree_to_local(f"{d}/src", f"{d}/copy"))
    ['a/x']
    """
    root = url(source).rstrip("/")
    local = Path(target)
    local.mkdir(parents=True, exist_ok=True)
    for rel in tree_files(root) if files is None else files:
        destination = local.joinpath(*rel.split("/"))
        destination.parent.mkdir(parents=True, exist_ok=True)
        _copy_file(
            FileSystems.join(root, *rel.split("/")) if has_scheme(root) else f"{root}/{rel}", str(destination)
        )
    return local


def publish_tree(local: str | Path, target: str) -> None:
    """Put a copy of the local folder ``local`` at ``target`` (any Beam file system), replacing what
    is there, without half a tree under ``target``'s name while copying.

    Every file is first copied into a hidden scratch folder beside ``target`` (:func:`scratch_dir`);
    only when all are there is the old ``target`` deleted and each file renamed into place, then the
    scratch folder removed (also when anything fails). On a local disk a rename is atomic per file;
    on an object store (``gs://``, ``s3://``) a rename is a copy and a delete per object, so a failure
    in that last step can leave part of the new tree (and none of the old one) under ``target``;
    a failure before it leaves ``target`` as it was.

    >>> import tempfile
    >>> d = tempfile.mkdtemp(); os.makedirs(f"{d}/src/a"); _ = open(f"{d}/src/a/x", "w").write("x")
    >>> os.makedirs(f"{d}/out"); _ = open(f"{d}/out/old", "w").write("old")
    >>> publish_tree(f"{d}/src", f"{d}/out"); tree_files(f"{d}/out"), sorted(os.listdir(d))
    (['a/x'], ['out', 'src'])
    """
    files = tree_files(local)
    target = url(target).rstrip("/")
    scratch = scratch_dir(target)
    try:
        sources = []
        for rel in files:
            sources.append(FileSystems.join(scratch, *rel.split("/")))
            _copy_file(str(Path(local).joinpath(*rel.split("/"))), sources[-1])
        remove_tree(target)
        destinations = [FileSystems.join(target, *rel.split("/")) for rel in files]
        for parent in sorted({FileSystems.split(name)[0] for name in [target, *destinations]}):
            with contextlib.suppress(Exception):  # already there; object stores have no folders
                FileSystems.mkdirs(parent)
        if sources:
            FileSystems.rename(sources, destinations)
    finally:
        remove_tree(scratch)
