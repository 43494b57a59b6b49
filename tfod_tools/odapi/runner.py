"""A supervised child process: its full output in a log file, line callbacks, clean stop.

:class:`SupervisedProcess` starts a command in its own session (a terminal's Ctrl-C reaches only
the parent, which then stops the child on purpose), copies every line of the child's merged
stdout/stderr into a log file and hands each line to callbacks (progress parsing). :meth:`stop`
sends SIGINT, then SIGTERM, then SIGKILL, each after a grace period. Several can run side by
side (training plus a continuous evaluator).

>>> import sys, tempfile, pathlib
>>> log = pathlib.Path(tempfile.mkdtemp()) / "logs" / "child.log"
>>> seen = []
>>> proc = SupervisedProcess([sys.executable, "-c", "print('hello'); print('world')"], log,
...                          on_line=seen.append)
>>> result = proc.run()
>>> result.returncode, seen, log.read_text().splitlines()
(0, ['hello', 'world'], ['hello', 'world'])
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from tfod_tools.odapi.trainlog import crash_summary

LineCallback = Callable[[str], None]


@dataclass
class ProcessResult:
    """How a supervised process ended."""

    name: str
    returncode: int
    interrupted: bool
    log_path: Path
    elapsed_s: float
    tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the process exited 0 and was not stopped."""
        return self.returncode == 0 and not self.interrupted

    def error_lines(self, max_lines: int = 6) -> list[str]:
        """The lines of the log's tail that explain a failure."""
        return crash_summary(self.tail, max_lines=max_lines)


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a TensorFlow child: quiet C++ logs, unbuffered Python output.

    >>> env = child_environment({"X": "1"})
    >>> env["TF_CPP_MIN_LOG_LEVEL"], env["PYTHONUNBUFFERED"], env["X"]
    ('2', '1', '1')
    """
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = env.get("TF_CPP_MIN_LOG_LEVEL") or "2"
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    if extra:
        env.update(extra)
    return env


class SupervisedProcess:
    """One child process under supervision (see the module docstring)."""

    def __init__(
        self,
        argv: Sequence[str],
        log_path: str | Path,
        *,
        name: str = "child",
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        on_line: LineCallback | None = None,
        tail_lines: int = 400,
    ) -> None:
        self.argv = [str(arg) for arg in argv]
        self.log_path = Path(log_path)
        self.name = name
        self.env = dict(env) if env is not None else child_environment()
        self.cwd = None if cwd is None else str(cwd)
        self.callbacks: list[LineCallback] = [on_line] if on_line else []
        self.tail: deque[str] = deque(maxlen=tail_lines)
        self.interrupted = False
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._started = 0.0
        self._callback_error: BaseException | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id once started."""
        return None if self._process is None else self._process.pid

    def start(self) -> SupervisedProcess:
        """Start the child and the thread that copies its output; returns self."""
        if self._process is not None:
            raise RuntimeError(f"{self.name} already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._started = time.monotonic()
        self._process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._copy_output, name=f"{self.name}-log", daemon=True)
        self._reader.start()
        return self

    def _copy_output(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        with open(self.log_path, "a", encoding="utf-8") as log:
            for raw in iter(self._process.stdout.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                log.write(line + "\n")
                log.flush()
                self.tail.append(line)
                for callback in self.callbacks:
                    try:
                        callback(line)
                    except BaseException as exc:  # reported by wait(); the log keeps flowing
                        self._callback_error = self._callback_error or exc

    def poll(self) -> int | None:
        """The exit code, or None while running."""
        return None if self._process is None else self._process.poll()

    def wait(self, timeout: float | None = None) -> ProcessResult:
        """Wait for the child to exit (``subprocess.TimeoutExpired`` after ``timeout``)."""
        if self._process is None:
            raise RuntimeError(f"{self.name} was not started")
        returncode = self._process.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join()
        if self._callback_error is not None:
            raise self._callback_error
        return ProcessResult(
            name=self.name,
            returncode=returncode,
            interrupted=self.interrupted,
            log_path=self.log_path,
            elapsed_s=time.monotonic() - self._started,
            tail=list(self.tail),
        )

    def _signal(self, signum: int) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signum)

    def stop(self, grace_s: float = 15.0) -> ProcessResult:
        """Stop the child: SIGINT, then SIGTERM and SIGKILL after ``grace_s`` each; wait for it."""
        self.interrupted = True
        steps = [signal.SIGINT, signal.SIGTERM] if sys.platform != "win32" else []
        for signum in steps:
            self._signal(signum)
            try:
                return self.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                continue
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        return self.wait()

    def run(self) -> ProcessResult:
        """Start, wait; on KeyboardInterrupt stop the child cleanly and return its result."""
        if self._process is None:
            self.start()
        try:
            return self.wait()
        except KeyboardInterrupt:
            return self.stop()

    def __enter__(self) -> SupervisedProcess:
        return self if self._process is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.poll() is None and self._process is not None:
            self.stop()
