"""The one error type of tfod_tools.

Every expected failure (bad input, missing file, wrong configuration) is raised as
:class:`TfodError`. Its message is one line that names the offending file or id and the fix;
the CLI prints it to stderr and exits with :attr:`TfodError.exit_code` (2).

>>> err = TfodError("label map has id 0", path="data/label_map.pbtxt", fix="ids start at 1")
>>> str(err)
'data/label_map.pbtxt: label map has id 0 (fix: ids start at 1)'
>>> err.exit_code
2
"""

from __future__ import annotations

from pathlib import Path


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
