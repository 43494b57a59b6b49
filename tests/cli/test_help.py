"""Every command's ``--help`` fits an 80-column terminal: no option name is cut off."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from tfod_tools.cli.app import COMMAND_MODULES

_PROBE = """
import contextlib, io, json, sys
from tfod_tools.cli.app import main
pages = {}
for name in sys.argv[1:]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main([name, "--help"])
    pages[name] = (code, buf.getvalue())
print(json.dumps(pages))
"""


def test_help_pages_show_every_option_name_in_80_columns() -> None:
    env = {**os.environ, "COLUMNS": "80", "TERMINAL_WIDTH": "80"}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *COMMAND_MODULES], capture_output=True, text=True, check=True, env=env
    )
    pages = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(pages) == set(COMMAND_MODULES)
    for name, (code, page) in pages.items():
        assert code == 0, name
        assert max(len(line) for line in page.splitlines()) <= 80, name
        table = [line for line in page.splitlines() if line.startswith("│")]
        assert any("--help" in line for line in table), name
        cut = [m.group(0) for line in table for m in re.finditer(r"--[a-z0-9-]*…", line)]
        assert not cut, f"tfod {name} --help cuts option names at 80 columns: {cut}"
