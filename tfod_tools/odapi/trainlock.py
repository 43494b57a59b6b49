"""One trainer per ``model_dir``: the lock ``tfod train`` holds while it trains.

Two trainers writing checkpoints into one directory corrupt each other's ``checkpoint`` state file
and step counter, so ``tfod train`` takes ``MODEL_DIR/tfod-train.lock`` first: an exclusive
``flock`` on the file, whose text records the owner (pid, host, start time, command, and the
trainer child's pid once it runs). The trainer child inherits the locked descriptor, so the lock
is held as long as either process lives: an orphaned trainer (its supervisor killed on a system
without ``PR_SET_PDEATHSIG``) still keeps a second ``tfod train`` out. A second ``tfod train``
exits 2 naming the running pid. The kernel releases a ``flock`` when its holders die, so a lock
file left by a dead owner (``kill -9``) is taken over, with a warning naming it. A clean release
removes the file.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> lock = TrainLock(d).acquire()
>>> lock.owner().pid == os.getpid(), lock.taken_over is None
(True, True)
>>> try:
...     TrainLock(d).acquire()
... except TfodError as exc:
...     "another tfod train" in exc.message
True
>>> lock.release(); (d / LOCK_NAME).exists()
False
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType

from tfod_tools.errors import TfodError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, no lock
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "tfod-train.lock"
"""The lock file's name inside ``model_dir``."""


@dataclass(frozen=True)
class LockOwner:
    """Who holds (or held) a model directory's lock."""

    pid: int
    host: str
    started: str
    argv: list[str] = field(default_factory=list)
    trainer_pid: int | None = None

    def describe(self) -> str:
        """``pid 12 on host, started 2026-12-01T10:00:00`` (and the trainer child's pid).

        >>> LockOwner(12, "h", "2026-12-01T10:00:00", trainer_pid=13).describe()
        'pid 12 on h, started 2026-12-01T10:00:00, trainer pid 13'
        """
        text = f"pid {self.pid} on {self.host}, started {self.started}"
        return text if self.trainer_pid is None else f"{text}, trainer pid {self.trainer_pid}"


def _read_owner(path: Path) -> LockOwner | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return LockOwner(
            pid=int(data["pid"]),
            host=str(data["host"]),
            started=str(data["started"]),
            argv=[str(a) for a in data.get("argv", [])],
            trainer_pid=None if data.get("trainer_pid") is None else int(data["trainer_pid"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


class TrainLock:
    """The lock of one ``model_dir`` (see the module docstring); a context manager."""

    def __init__(self, model_dir: str | Path) -> None:
        self.model_dir = Path(model_dir)
        self.path = self.model_dir / LOCK_NAME
        self.fd: int | None = None
        self.taken_over: LockOwner | None = None
        """The dead owner whose lock this one took over (None when the lock was free)."""
        self._owner: LockOwner | None = None

    def acquire(self) -> TrainLock:
        """Take the lock; :class:`TfodError` (exit 2) naming the owner when another process holds it."""
        if fcntl is None:  # pragma: no cover
            return self
        self.model_dir.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                owner = _read_owner(self.path)
                who = "another process" if owner is None else owner.describe()
                raise TfodError(
                    f"another tfod train is training into this model_dir ({who})",
                    path=self.model_dir,
                    fix="wait for it to finish or stop it, or train into another --model-dir",
                ) from None
            # The file may have been released (unlinked) between open and flock: lock the current one.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.fd = fd
        previous = _read_owner(self.path)
        if previous is not None and previous.pid != os.getpid():
            self.taken_over = previous
        self._write(
            LockOwner(
                pid=os.getpid(),
                host=socket.gethostname(),
                started=datetime.datetime.now().isoformat(timespec="seconds"),
                argv=list(sys.argv),
            )
        )
        return self

    def _write(self, owner: LockOwner) -> None:
        assert self.fd is not None
        data = json.dumps(asdict(owner)).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)
        self._owner = owner

    def owner(self) -> LockOwner | None:
        """The owner recorded in the lock file."""
        return _read_owner(self.path)

    def set_trainer(self, pid: int) -> None:
        """Record the trainer child's pid (it holds the lock too, through the inherited descriptor)."""
        if self.fd is not None and self._owner is not None:
            self._write(LockOwner(**{**asdict(self._owner), "trainer_pid": pid}))

    def release(self) -> None:
        """Remove the lock file and release the lock (children still holding it keep it)."""
        if self.fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                self.path.unlink()
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> TrainLock:
        return self if self.fd is not None else self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
