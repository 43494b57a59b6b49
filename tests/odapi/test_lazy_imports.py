"""``import tfod_tools`` and ``tfod --help`` (and the odapi command modules) never import TensorFlow."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> str:
    probe = (
        code
        + "\nimport sys\nheavy = ('tensorflow', 'object_detection', 'tf_keras')"
        + "\nprint(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    return (
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
        .stdout.strip()
        .splitlines()[-1]
    )


def test_import_tfod_tools_does_not_import_tensorflow() -> None:
    assert _modules_after("import tfod_tools, tfod_tools.odapi, tfod_tools.odapi.compat") == "[]"


def test_tfod_help_does_not_import_tensorflow() -> None:
    code = (
        "from tfod_tools.cli.app import main\n"
        "for args in (['--help'], ['train', '--help'], ['doctor', '--help'], ['pipeline', '--help']):\n"
        "    assert main(args) == 0, args\n"
    )
    assert _modules_after(code) == "[]"


def test_train_help_lists_the_options() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tfod_tools", "train", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in ("--pipeline", "--model-dir", "--num-steps", "--checkpoint-every"):
        assert option in out
