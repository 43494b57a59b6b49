"""The one error type of tfod_tools.

Every expected failure (bad input, missing file, wrong configuration) is raised as
:class:`TfodError`. Its message is one line that names the offending file or id and the fix;
the CLI prints it to stderr and exits with :attr:`TfodError.exit_code` (2). :data:`EXIT_CODES` is
what every ``tfod`` exit code means (rendered into ``docs/cli.md``).

>>> err = TfodError("label map has id 0", path="data/label_map.pbtxt", fix="ids start at 1")
>>> str(err)
'data/label_map.pbtxt: label map has id 0 (fix: ids start at 1)'
>>> err.exit_code
2
>>> EXIT_CODES[err.exit_code].split(":")[0]
'bad input or usage'
"""

from __future__ import annotations

from pathlib import Path

EXIT_CODES: dict[int, str] = {
    0: "done",
    1: "the work ran and failed: every requested checkpoint skipped (`evaluate`), a training crash or "
    "a NaN / diverging loss (`train`), the environment cannot run the API (`doctor`), issues found "
    "(`inspect --fail-on-issues`), TensorFlow failing mid-export (`export`: the log is kept beside "
    "--out), an export scoring below its checkpoint by more than the tolerance (`evaluate --model`)",
    2: "bad input or usage: a missing, unreadable or invalid file, no checkpoint in the model directory, "
    "an unknown option value, a model directory another `tfod train` holds; one line on stderr names "
    "the file and the fix, and nothing is written",
    129: "hung up (SIGHUP: the terminal closed); `train` stops its children first",
    130: "interrupted (Ctrl-C, SIGINT); `train` and `evaluate` stop cleanly and keep what is done",
    143: "terminated (SIGTERM: `timeout`, systemd, a scheduler); `train`, `evaluate`: as Ctrl-C",
}
"""What each exit code of ``tfod`` means (every command; rendered into ``docs/cli.md``)."""


class TfodError(Exception):
    """An expected, user-facing failure: one line, naming the file and the fix."""

    exit_code: int = 2

    def __init__(self, message: str, *, path: str | Path | None = None, fix: str | None = None) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """Render the error as a single line: ``PATH: MESSAGE (fix: FIX)``."""
        text = self.message if self.path is None else f"{self.path}: {self.message}"
        if self.fix:
            text = f"{text} (fix: {self.fix})"
        return " ".join(text.split())

    def to_dict(self) -> dict[str, str | None]:
        """The error as JSON-ready data."""
        return {"error": self.message, "path": self.path, "fix": self.fix}
