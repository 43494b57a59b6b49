"""divert_stderr: descriptor-2 writes, Python warnings and handlers made inside go to the log; ours do not."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from tfod_tools.odapi.quiet import divert_stderr

CHILD = textwrap.dedent(
    """
    import logging, os, sys, warnings
    from tfod_tools.cli.output import Output
    out = Output()
    out.info("before")
    with out.library_output_to(sys.argv[1], verbose=sys.argv[2] == "1"):
        os.write(2, b"C++ noise\\n")
        warnings.warn("python warning noise")
        logger = logging.getLogger("lib")
        logger.addHandler(logging.StreamHandler(sys.stderr))
        logger.warning("handler noise")
        with out.progress("bar", total=1) as advance:
            warnings.warn("noise during the bar")
            advance()
        out.warn("ours")
    out.info("after")
    """
)


def _run(log: Path, verbose: bool) -> subprocess.CompletedProcess[str]:
    # TTY_COMPATIBLE=1: rich draws a live bar as on a terminal (which would capture sys.stderr)
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(log), "1" if verbose else "0"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TTY_COMPATIBLE": "1"},
    )


def test_library_output_goes_to_the_log_and_ours_to_stderr(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "run.log"
    proc = _run(log, verbose=False)
    assert "noise" not in proc.stderr
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", proc.stderr).replace("\r", "\n")
    assert [line for line in plain.splitlines() if line.strip() and "bar" not in line] == [
        "before",
        "warning: ours",
        "after",
    ]
    text = log.read_text(encoding="utf-8")
    for noise in ("C++ noise", "python warning noise", "handler noise", "noise during the bar"):
        assert noise in text
    assert "ours" not in text and "before" not in text


def test_verbose_moves_nothing(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "run.log"
    proc = _run(log, verbose=True)
    for noise in ("C++ noise", "python warning noise", "handler noise", "noise during the bar", "ours"):
        assert noise in proc.stderr
    assert not log.exists()


def test_no_log_path_yields_stderr_and_writes_nothing(tmp_path: Path) -> None:
    with divert_stderr(None) as stream:
        assert stream is sys.stderr
    assert list(tmp_path.iterdir()) == []
