"""A supervised child process: its full output in a log file, line callbacks, clean stop.

:class:`SupervisedProcess` starts a command in its own session (a terminal's Ctrl-C reaches only
the parent, which then stops the child on purpose), copies every line of the child's merged
stdout/stderr into a log file and hands each line to callbacks (progress parsing). :meth:`stop`
sends SIGINT, then SIGTERM, then SIGKILL, each after a grace period; :meth:`request_stop` does the
same without waiting (safe from a line callback, which runs on the output thread). Several can run
side by side (training plus a continuous evaluator).

A child never outlives its supervisor: on Linux it is started with ``PR_SET_PDEATHSIG`` = SIGKILL,
so the kernel kills it when the supervisor dies however it dies (``kill -9``, the OOM killer, a
closed terminal). The signal follows the *thread* that started the child, so start children from
the main thread (or one that lives as long as they should). :func:`termination_as_interrupt`
makes SIGTERM and SIGHUP (what ``timeout``, systemd, schedulers and a closed terminal send) raise
:class:`Terminated`, a ``KeyboardInterrupt``, so they stop the children like Ctrl-C does;
:func:`interrupt_exit_code` gives 130 / 143 / 129.

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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from tfod_tools.odapi.trainlog import crash_summary

LineCallback = Callable[[str], None]

_PR_SET_PDEATHSIG = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP received inside :func:`termination_as_interrupt` (handled like Ctrl-C)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def interrupt_exit_code(exc: BaseException | None = None, signum: int | None = None) -> int:
    """The exit code of a run stopped by ``exc`` or ``signum``: 128 + the signal (Ctrl-C: 130).

    >>> interrupt_exit_code(KeyboardInterrupt()), interrupt_exit_code(Terminated(signal.SIGTERM))
    (130, 143)
    >>> interrupt_exit_code(signum=signal.SIGHUP)
    129
    """
    if signum is None:
        signum = getattr(exc, "signum", signal.SIGINT)
    return 128 + int(signum)


@contextlib.contextmanager
def termination_as_interrupt(
    signals: Sequence[int] = (signal.SIGTERM, signal.SIGHUP),
) -> Iterator[None]:
    """Within the block, ``signals`` raise :class:`Terminated` in the main thread (elsewhere: no-op).

    >>> import os
    >>> with termination_as_interrupt():
    ...     try:
    ...         os.kill(os.getpid(), signal.SIGTERM); time.sleep(5)
    ...     except Terminated as exc:
    ...         print(exc.signum == signal.SIGTERM)
    True
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated(signum)

    previous = {signum: signal.signal(signum, handler) for signum in signals}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGKILL the child when its parent dies (None elsewhere)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - every Linux libc has prctl
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return hook


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
        pass_fds: Sequence[int] = (),
    ) -> None:
        self.argv = [str(arg) for arg in argv]
        self.log_path = Path(log_path)
        self.name = name
        self.env = dict(env) if env is not None else child_environment()
        self.cwd = None if cwd is None else str(cwd)
        self.callbacks: list[LineCallback] = [on_line] if on_line else []
        self.tail: deque[str] = deque(maxlen=tail_lines)
        self.interrupted = False
        self.interrupt_signal: int | None = None
        """The signal that interrupted the supervisor (SIGINT for Ctrl-C), when one did."""
        self.pass_fds = tuple(pass_fds)
        self._stopper: threading.Thread | None = None
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
            preexec_fn=_die_with_parent_hook(),
            pass_fds=self.pass_fds,
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

    def request_stop(self, grace_s: float = 15.0) -> None:
        """Stop the child as :meth:`stop` does, without waiting (callable from a line callback).

        The caller's :meth:`wait` / :meth:`run` returns once the child has exited.
        """
        if self._stopper is not None or self._process is None or self._process.poll() is not None:
            return
        self.interrupted = True
        process = self._process

        def escalate() -> None:
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._signal(signum)
                try:
                    process.wait(timeout=grace_s)
                    return
                except subprocess.TimeoutExpired:
                    continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

        self._stopper = threading.Thread(target=escalate, name=f"{self.name}-stop", daemon=True)
        self._stopper.start()

    def run(self) -> ProcessResult:
        """Start, wait; on KeyboardInterrupt (or :class:`Terminated`) stop the child cleanly and
        return its result (:attr:`interrupt_signal` says which signal it was)."""
        if self._process is None:
            self.start()
        try:
            return self.wait()
        except KeyboardInterrupt as exc:
            self.interrupt_signal = getattr(exc, "signum", signal.SIGINT)
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
