"""Beam's ``FileSystems`` for the ``--beam`` runs: paths, small files, record files, folders.

Every path goes through ``apache_beam.io.filesystems.FileSystems``, so ``gs://`` (and any file system
Beam has) works as a local path does. :func:`read_bytes` / :func:`write_bytes_atomic` are for
manifests and JSON; :func:`iter_records_at` / :func:`record_files` read and list record files on any
file system; :func:`copy_tree_to_local` / :func:`publish_tree` move folders; :func:`check_filesystems`
refuses, up front, a scheme no Beam file system here handles. Shards are written by
:mod:`tfod_tools.beam.shards`.

>>> import tempfile
>>> d = tempfile.mkdtemp()
>>> write_bytes_atomic(f"{d}/m.json", b"{}"); read_bytes(f"{d}/m.json")
b'{}'
>>> sorted(os.listdir(d))  # no temporary file left behind
['m.json']
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from tfod_tools.data.tfrecord import (
    expand_record_paths,
    iter_open_records,
    iter_records,
    shard_names,
)
from tfod_tools.errors import TfodError

__all__ = [
    "RAW",
    "check_filesystems",
    "copy_tree_to_local",
    "has_scheme",
    "iter_records_at",
    "publish_tree",
    "read_bytes",
    "record_files",
    "remove_tree",
    "replace_files",
    "scratch_dir",
    "tree_files",
    "url",
    "write_bytes_atomic",
]

RAW = CompressionTypes.UNCOMPRESSED
"""Beam's compression for every file here: none (never guessed from a ".gz" name)."""


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
    with FileSystems.open(str(path), compression_type=RAW) as handle:
        data: bytes = handle.read()
    return data


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` under a temporary name, then rename it onto ``path``."""
    parent, name = FileSystems.split(str(path))
    tmp = FileSystems.join(parent, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with FileSystems.create(tmp, compression_type=RAW) as handle:
            handle.write(data)
        replace_files([tmp], [str(path)])
    except BaseException:
        remove_tree(tmp)
        raise


def replace_files(sources: Sequence[str], destinations: Sequence[str]) -> None:
    """Rename each source onto its destination, replacing what is there (local: ``os.replace``)."""
    if all("://" not in name for name in [*sources, *destinations]):
        for source, destination in zip(sources, destinations, strict=True):
            os.replace(source, destination)
        return
    existing = [name for name in destinations if FileSystems.exists(name)]
    if existing:
        FileSystems.delete(existing)
    FileSystems.rename(list(sources), list(destinations))


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
    with FileSystems.open(text, compression_type=RAW) as handle:
        yield from iter_open_records(handle, text, matched[0].size_in_bytes, verify=verify)


_CHUNK = 8 << 20  # bytes per read when copying a file between file systems


def _copy_file(source: str, destination: str) -> None:
    """Stream one file from ``source`` to ``destination`` (any Beam file systems; parents made)."""
    with (
        FileSystems.open(source, compression_type=RAW) as reader,
        FileSystems.create(destination, compression_type=RAW) as writer,
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
