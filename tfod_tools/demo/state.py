"""The demo workdir's state: ``WORKDIR/demo_state.json``, what resuming and refusing rest on.

The file records the settings and each completed step with the files it wrote (see
:mod:`tfod_tools.demo.run` for how a re-run uses it).

>>> import tempfile
>>> from pathlib import Path
>>> from tfod_tools.demo.settings import QUICK
>>> state = prepare_workdir(Path(tempfile.mkdtemp()) / "demo", QUICK, force=False)
>>> state.steps["data"] = {"result": {"n": 1}, "outputs": ["missing.record"]}
>>> state.done("data"), state.result("data")
(False, {'n': 1})
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfod_tools.demo.settings import DemoSettings
from tfod_tools.errors import TfodError
from tfod_tools.fsutil import write_text_atomic

__all__ = ["STATE_FILE", "STATE_FORMAT", "DemoState", "prepare_workdir"]

STATE_FILE = "demo_state.json"
STATE_FORMAT = 1


@dataclass
class DemoState:
    """``WORKDIR/demo_state.json``: the settings and the result of every completed step."""

    workdir: Path
    settings: dict[str, Any]
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        """Where the state lives."""
        return self.workdir / STATE_FILE

    def save(self) -> None:
        """Write the state atomically."""
        doc = {"format": STATE_FORMAT, "tool": "tfod demo", "settings": self.settings, "steps": self.steps}
        write_text_atomic(self.path, json.dumps(doc, indent=2) + "\n")

    def done(self, name: str) -> bool:
        """Whether ``name`` completed and every file it wrote is still there."""
        entry = self.steps.get(name)
        if entry is None:
            return False
        return all((self.workdir / rel).exists() for rel in entry.get("outputs", []))

    def result(self, name: str) -> dict[str, Any]:
        """The stored result of a completed step."""
        return dict(self.steps[name]["result"])


def prepare_workdir(workdir: Path, settings: DemoSettings, force: bool) -> DemoState:
    """Open (resume), start over (``force``) or refuse ``workdir`` (see the module docstring)."""
    state_path = workdir / STATE_FILE
    if workdir.exists() and not workdir.is_dir():
        raise TfodError(
            "the demo workdir exists and is not a directory", path=workdir, fix="pass another --workdir"
        )
    contents = list(workdir.iterdir()) if workdir.is_dir() else []
    if contents and not state_path.is_file():
        raise TfodError(
            "the directory is not empty and is not a tfod demo workdir (no demo_state.json); "
            "refusing to write into it",
            path=workdir,
            fix="pass --workdir with a new or empty directory",
        )
    if force and contents:
        shutil.rmtree(workdir)
        contents = []
    workdir.mkdir(parents=True, exist_ok=True)
    if not contents:
        state = DemoState(workdir, settings.to_dict())
        state.save()
        return state
    try:
        doc = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TfodError(
            f"cannot read the demo state ({exc})", path=state_path, fix="rerun with --force"
        ) from None
    if doc.get("format") != STATE_FORMAT or doc.get("settings") != settings.to_dict():
        old = (doc.get("settings") or {}).get("mode", "unknown")
        raise TfodError(
            f"this workdir holds a demo run with other settings ({old} mode, or another tfod_tools version); "
            f"refusing to mix it with a {settings.mode} run",
            path=workdir,
            fix="rerun with --force to start over, or pass another --workdir",
        )
    return DemoState(workdir, doc["settings"], dict(doc.get("steps") or {}))
