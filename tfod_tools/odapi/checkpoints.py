"""Training checkpoints of a ``model_dir``: list, validate, hash, read the global step, protect.

``model_main_tf2`` saves ``ckpt-N`` (``N`` counts saves, ``ckpt-1`` is step 0) as
``ckpt-N.index`` plus data shards ``ckpt-N.data-SSSSS-of-NNNNN``, and lists the kept ones in the
text file ``checkpoint``. Its ``CheckpointManager(max_to_keep=...)`` deletes older ones.

- :func:`scan_checkpoints` lists every ``ckpt-N`` seen in the state file or on disk, with the
  files that are missing and a quick truncation check of the index (an SSTable ends in a fixed
  magic number). It needs no TensorFlow.
- :func:`read_step` reads the checkpoint's ``step`` variable (the global step) with TensorFlow.
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
from dataclasses import dataclass
from pathlib import Path

from tfod_tools.errors import TfodError

TABLE_MAGIC = (0xDB4775248B80FB57).to_bytes(8, "little")
"""The last 8 bytes of a complete SSTable (a TensorFlow checkpoint's ``.index`` file)."""

STEP_KEY = "step/.ATTRIBUTES/VARIABLE_VALUE"
"""Where ``model_main_tf2``'s ``tf.train.Checkpoint(step=...)`` stores the global step."""

_NAME = re.compile(r"(?P<name>ckpt-(?P<n>\d+))\.(?:index|data-(?P<shard>\d+)-of-(?P<count>\d+))")
_STATE_LINE = re.compile(r'^all_model_checkpoint_paths:\s*"(?P<path>[^"]*)"', re.MULTILINE)


@dataclass(frozen=True)
class CheckpointFiles:
    """One ``ckpt-N``: its prefix, present files and what is wrong with them (``problem``)."""

    name: str
    number: int
    prefix: Path
    files: tuple[Path, ...]
    problem: str | None = None

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


def _describe(name: str, number: int, directory: Path, files: list[Path]) -> CheckpointFiles:
    problems: list[str] = []
    index = directory / f"{name}.index"
    shards: dict[int, int] = {}
    for file in files:
        match = _NAME.fullmatch(file.name)
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
        number=number,
        prefix=directory / name,
        files=tuple(sorted(files)),
        problem="; ".join(problems) or None,
    )


def scan_checkpoints(model_dir: str | Path) -> list[CheckpointFiles]:
    """Every ``ckpt-N`` in ``model_dir`` (on disk or in the state file), by ``N``."""
    directory = Path(model_dir)
    found: dict[str, list[Path]] = {}
    if directory.is_dir():
        for path in directory.iterdir():
            match = _NAME.fullmatch(path.name)
            if match and path.is_file():
                found.setdefault(match.group("name"), []).append(path)
    for name in state_file_names(directory):
        if re.fullmatch(r"ckpt-\d+", name):
            found.setdefault(name, [])
    return [
        _describe(name, int(name.split("-")[1]), directory, files)
        for name, files in sorted(found.items(), key=lambda item: int(item[0].split("-")[1]))
    ]


def read_step(prefix: str | Path) -> int:
    """The global step stored in a checkpoint (TensorFlow); :class:`TfodError` when unreadable."""
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(str(prefix))
        if not reader.has_tensor(STEP_KEY):
            raise TfodError(f"checkpoint has no global step ({STEP_KEY})", path=prefix)
        return int(reader.get_tensor(STEP_KEY))
    except TfodError:
        raise
    except Exception as exc:  # DataLossError, NotFoundError, OutOfRangeError ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TfodError(f"unreadable checkpoint: {first}", path=prefix) from None


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
    return _describe(checkpoint.name, checkpoint.number, target_dir, linked)


def release(checkpoint: CheckpointFiles) -> None:
    """Remove a protected checkpoint's links (the original files, if still there, are untouched)."""
    for file in checkpoint.files:
        with contextlib.suppress(FileNotFoundError):
            file.unlink()
