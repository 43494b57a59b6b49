"""File-system helpers: outputs appear whole or not at all.

Every output tfod_tools writes goes to a temporary name in the same directory and is renamed
into place when complete, so an interrupted run never leaves a half-written file behind. Missing
parent directories are created, and removed again when the write fails
(:func:`output_parents`), so a failed run leaves no empty output directory either.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> with atomic_path(d / "out.txt") as tmp:
...     _ = tmp.write_text("hello")
>>> (d / "out.txt").read_text()
'hello'
>>> sorted(p.name for p in d.iterdir())
['out.txt']
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tfod_tools.errors import TfodError


@contextlib.contextmanager
def output_parents(path: str | Path) -> Iterator[Path]:
    """Create the missing parent directories of the output ``path`` for the block; yield the parent.

    When the block raises, the directories created here are removed again (those left empty), so
    a failed write leaves nothing behind. A parent that is a file, or that cannot be created, is a
    :class:`~tfod_tools.errors.TfodError` naming it.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> try:
    ...     with output_parents(d / "new" / "dir" / "out.record") as parent:
    ...         made = parent.is_dir()
    ...         raise ValueError("the write failed")
    ... except ValueError:
    ...     pass
    >>> made, (d / "new").exists()
    (True, False)
    >>> _ = (d / "file").write_text("x")
    >>> with output_parents(d / "file" / "out.record"):
    ...     pass
    Traceback (most recent call last):
    ...
    tfod_tools.errors.TfodError: .../file: cannot create the output directory: it is a file (fix: ...)
    """
    parent = Path(path).parent
    created: list[Path] = []
    probe = parent
    while not probe.is_dir():
        if probe.exists() or probe.is_symlink():
            raise TfodError(
                "cannot create the output directory: it is a file",
                path=probe,
                fix="choose an output path in a directory",
            )
        created.append(probe)
        probe = probe.parent
    try:
        for directory in reversed(created):
            directory.mkdir(exist_ok=True)
    except OSError as exc:
        _remove_empty(created)
        raise TfodError(
            f"cannot create the output directory ({exc.strerror or exc})",
            path=parent,
            fix="choose an output path you can write to",
        ) from None
    try:
        yield parent
    except BaseException:
        _remove_empty(created)
        raise


def _remove_empty(directories: list[Path]) -> None:
    """Remove ``directories`` (deepest first) where they are empty."""
    for directory in directories:
        with contextlib.suppress(OSError):
            directory.rmdir()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    On an exception the temporary file is removed, ``path`` is left untouched and parent
    directories created for it are removed again (:func:`output_parents`).
    """
    target = Path(path)
    if target.is_dir():
        raise TfodError("the output path is a directory", path=target, fix="name a file, not a directory")
    with output_parents(target):
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        except OSError as exc:
            raise TfodError(
                f"cannot write the output here ({exc.strerror or exc})",
                path=target,
                fix="choose an output path you can write to",
            ) from None
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            yield tmp
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"
    >>> _ = p.write_bytes(b"abc")
    >>> sha256_file(p)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def json_ready(value: Any) -> Any:
    """``value`` with every non-finite float (NaN: an undefined metric; inf) as None, in nested
    dicts and lists too, so ``json.dumps`` writes ``null`` rather than the non-standard ``NaN``.

    >>> json_ready({"mAP": float("nan"), "rows": [1.5, float("inf")], "n": 3})
    {'mAP': None, 'rows': [1.5, None], 'n': 3}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_ready(v) for v in value]
    return value
