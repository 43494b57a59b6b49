"""``python -m tfod_tools.odapi.model_main <model_main_tf2 flags>``: the stock entry point, under the layer.

Runs ``object_detection.model_main_tf2`` exactly as ``python model_main_tf2.py`` would, with the
same flags (``--pipeline_config_path``, ``--model_dir``, ``--num_train_steps``,
``--checkpoint_every_n``, ``--checkpoint_dir`` for evaluation, ...), after
:func:`tfod_tools.odapi.compat.install` has prepared this process. The first log line says which
fixes were applied.

>>> compat_banner({"applied": ["protos", "pillow"]})
'tfod compat: applied protos, pillow'
>>> compat_banner({"applied": []})
'tfod compat: nothing to apply'
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from tfod_tools.errors import TfodError


def compat_banner(report: dict[str, Any]) -> str:
    """One line naming the fixes the layer applied."""
    applied = report.get("applied") or []
    return "tfod compat: " + (f"applied {', '.join(applied)}" if applied else "nothing to apply")


def main(argv: Sequence[str] | None = None) -> None:
    """Install the layer, then hand ``argv`` (default ``sys.argv``) to ``model_main_tf2.main``.

    Exits like the stock script (absl's ``app.run`` calls ``sys.exit``); a layer failure prints
    one line and exits 2.
    """
    args = list(sys.argv if argv is None else argv)
    from tfod_tools.odapi import compat

    try:
        report = compat.install()
    except TfodError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    print(compat_banner(report.to_dict()), file=sys.stderr, flush=True)

    from absl import app
    from object_detection import model_main_tf2

    app.run(model_main_tf2.main, argv=["model_main_tf2", *args[1:]])


if __name__ == "__main__":
    main()
