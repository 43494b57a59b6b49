"""``tfod`` where the CLI's own packages are missing: one line naming the package, exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_missing_cli_package_is_one_line_not_a_traceback() -> None:
    # -S: no site-packages, so typer & co. are really absent; the repository root is the cwd (-m adds it).
    proc = subprocess.run(
        [sys.executable, "-S", "-m", "tfod_tools", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "is not installed" in lines[0] and "python -m tfod_tools.odapi.doctor" in lines[0]
    assert proc.stdout == ""
