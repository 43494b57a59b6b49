"""The CLI reference in docs/cli.md is generated from the app and must not drift; every command works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tfod_tools.cli.app import COMMAND_MODULES, main
from tfod_tools.cli.reference import render_reference

ROOT = Path(__file__).resolve().parents[2]


def test_docs_cli_md_is_the_generated_reference() -> None:
    checked_in = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert checked_in == render_reference(), (
        "docs/cli.md is stale: run `.venv/bin/python -m tfod_tools.cli.reference > docs/cli.md`"
    )


def test_every_command_module_registers_a_documented_command() -> None:
    text = render_reference()
    for name in COMMAND_MODULES:
        assert f"## `tfod {name}`" in text, name


@pytest.mark.parametrize("command", COMMAND_MODULES)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    assert "--help" in capsys.readouterr().out


def test_help_of_every_command_imports_no_tensorflow() -> None:
    code = (
        "import sys\n"
        "from tfod_tools.cli.app import COMMAND_MODULES, main\n"
        "for name in COMMAND_MODULES:\n"
        "    assert main([name, '--help']) == 0, name\n"
        "heavy = ('tensorflow', 'object_detection', 'tf_keras')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_unknown_command_is_a_usage_error() -> None:
    assert main(["no-such-command"]) == 2
