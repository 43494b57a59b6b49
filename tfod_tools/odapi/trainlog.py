"""Read ``model_main_tf2``'s log: training progress, and the lines that explain a crash.

``model_lib_v2.train_loop`` logs, every 100 steps, ``Step N per-step time S s`` and then a
pretty-printed dict of the losses and the learning rate (``'Loss/total_loss': X`` on its own line,
or on the first line behind the logging prefix; TensorFlow's and absl's loggers may each print it).
:class:`TrainProgressParser` turns that into :class:`TrainProgress` updates; ``complete`` is set
once the dict's closing brace is read, so a reader can act once per logged step on every term.
:func:`crash_summary` picks the last exception out of a log.

>>> parser = TrainProgressParser()
>>> parser.feed("I1121 23:18:53.48 123 model_lib_v2.py:705] Step 200 per-step time 0.251s")
TrainProgress(step=200, per_step_s=0.251, total_loss=None, learning_rate=None, losses={}, complete=False)
>>> parser.feed("{'Loss/classification_loss': np.float32(nan),")
TrainProgress(step=200, per_step_s=0.251, total_loss=None, learning_rate=None, \
losses={'Loss/classification_loss': nan}, complete=False)
>>> parser.feed(" 'Loss/total_loss': 0.93,").total_loss
0.93
>>> last = parser.feed(" 'learning_rate': 0.001}")
>>> last.learning_rate, last.complete, sorted(last.losses)
(0.001, True, ['Loss/classification_loss', 'Loss/total_loss'])
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

LOSS_PREFIX = "Loss/"
"""The API's loss keys (logged dict and train event tags) start with this."""
TOTAL_LOSS = "Loss/total_loss"
"""The API's total loss key."""
LEARNING_RATE = "learning_rate"
"""The API's learning-rate key."""

_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|-?inf)"
STEP_RE = re.compile(r"Step (\d+) per-step time ([\d.]+)s")
LOSS_RE = re.compile(r"'(Loss/[^']+)':\s*(?:np\.float(?:32|64)\()?" + _NUMBER)
LEARNING_RATE_RE = re.compile(r"'learning_rate':\s*(?:np\.float(?:32|64)\()?" + _NUMBER)


@dataclass(frozen=True)
class TrainProgress:
    """The newest training state read from the log."""

    step: int
    per_step_s: float | None = None
    total_loss: float | None = None
    learning_rate: float | None = None
    losses: dict[str, float] = field(default_factory=dict)
    """Every ``Loss/*`` term logged for ``step`` so far."""
    complete: bool = False
    """True once the step's logged dict has been read to its end."""

    @property
    def steps_per_s(self) -> float | None:
        """Steps per second (from the per-step time).

        >>> TrainProgress(100, 0.25).steps_per_s
        4.0
        """
        return None if not self.per_step_s else 1.0 / self.per_step_s


class TrainProgressParser:
    """Feed log lines one by one; returns an updated :class:`TrainProgress` when a line changes it."""

    def __init__(self) -> None:
        self.progress: TrainProgress | None = None

    def feed(self, line: str) -> TrainProgress | None:
        """Parse one line; the new progress if the line carried any, else None."""
        match = STEP_RE.search(line)
        if match:
            self.progress = TrainProgress(step=int(match.group(1)), per_step_s=float(match.group(2)))
            return self.progress
        if self.progress is None or self.progress.complete:
            return None
        losses = {key: float(value) for key, value in LOSS_RE.findall(line)}
        rate = LEARNING_RATE_RE.search(line)
        closed = line.rstrip().endswith("}")
        if not losses and rate is None and not (closed and self.progress.losses):
            return None
        updated = self.progress
        if losses:
            merged = {**updated.losses, **losses}
            updated = replace(updated, losses=merged, total_loss=merged.get(TOTAL_LOSS, updated.total_loss))
        if rate is not None:
            updated = replace(updated, learning_rate=float(rate.group(1)))
        if closed and updated.losses:
            updated = replace(updated, complete=True)
        self.progress = updated
        return updated


_NOISE_RE = re.compile(r"^(W\d{4}|I\d{4}|WARNING:|INFO:|\s*warnings\.warn)")


_TF_DETAIL_RE = re.compile(r"^(Detected at node|<stack traces unavailable>|\s*\[\[)")


def crash_summary(lines: Iterable[str], max_lines: int = 6) -> list[str]:
    """The lines that explain a crash: the last traceback's location and exception message.

    >>> log = ["I0000 starting", "Traceback (most recent call last):", '  File "a.py", line 3, in f',
    ...        "    g()", "ValueError: bad input", "I0000 shutting down"]
    >>> crash_summary(log)
    ['File "a.py", line 3, in f', 'ValueError: bad input']
    >>> crash_summary(["plain failure", "E0000 fatal: out of memory"])
    ['plain failure', 'E0000 fatal: out of memory']
    """
    text = [line.rstrip("\n") for line in lines]
    starts = [i for i, line in enumerate(text) if line.startswith("Traceback (most recent call last)")]
    if starts:
        block = text[starts[-1] + 1 :]
        frames = [line.strip() for line in block if line.startswith("  File ")]
        first = next((i for i, line in enumerate(block) if line.strip() and not line.startswith(" ")), None)
        messages: list[str] = []
        for line in [] if first is None else block[first:]:
            if _NOISE_RE.match(line):
                break
            if messages and (not line.strip() or line[0].isspace() or _TF_DETAIL_RE.match(line)):
                continue  # TensorFlow's node/stack details between the message lines
            messages.append(line.strip())
        return (frames[-1:] + messages)[:max_lines]
    meaningful = [line for line in text if line.strip() and not _NOISE_RE.match(line)]
    return meaningful[-max_lines:]
