"""``python -m tfod_tools.odapi.model_main <model_main_tf2 flags>``: the stock entry point, under the layer.

Runs ``object_detection.model_main_tf2`` exactly as ``python model_main_tf2.py`` would, with the
same flags (``--pipeline_config_path``, ``--model_dir``, ``--num_train_steps``,
``--checkpoint_every_n``, ``--checkpoint_dir`` for evaluation, ...), after
:func:`tfod_tools.odapi.compat.install` has prepared this process. The first log line says which
fixes were applied.

One flag of ours, ``--tfod_save_final_step`` (removed before absl sees the flags): save the final
step when the checkpoint interval did not. ``model_lib_v2.train_loop`` saves only when
``checkpoint_every_n`` steps have passed since the last save, so ``--num_train_steps=100`` with the
default interval of 1000 leaves just the step-0 checkpoint. :func:`save_final_step` wraps
``train_loop``: it records the ``CheckpointManager`` the loop creates for the model directory and,
when the loop returns normally with its step unsaved, calls that manager's ``save()`` once more (the
same checkpoint object: step, model, optimizer; the same numbering and ``max_to_keep``). A run
that stops early (Ctrl-C, a crash) is not saved by it.

>>> compat_banner({"applied": ["protos", "pillow"]})
'tfod compat: applied protos, pillow'
>>> compat_banner({"applied": []})
'tfod compat: nothing to apply'
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from tfod_tools.errors import TfodError
from tfod_tools.odapi.training import SAVE_FINAL_FLAG


def compat_banner(report: dict[str, Any]) -> str:
    """One line naming the fixes the layer applied."""
    applied = report.get("applied") or []
    return "tfod compat: " + (f"applied {', '.join(applied)}" if applied else "nothing to apply")


def _step_of(checkpoint: Any) -> int | None:
    step = getattr(checkpoint, "step", None)
    return None if step is None else int(step.numpy())


def save_final_step(train_loop: Callable[..., Any]) -> Callable[..., Any]:
    """``train_loop`` that also saves its final step when the interval did not (see module doc)."""

    @functools.wraps(train_loop)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        import tensorflow.compat.v1 as tf  # the name model_lib_v2 uses

        namespace = tf.compat.v2.train
        original = namespace.CheckpointManager
        created: list[Any] = []

        class RecordingManager(original):  # type: ignore[misc,valid-type]
            def __init__(self, *a: Any, **k: Any) -> None:
                super().__init__(*a, **k)
                self.tfod_saved_step: int | None = None
                created.append(self)

            def save(self, *a: Any, **k: Any) -> Any:
                path = super().save(*a, **k)
                self.tfod_saved_step = _step_of(self.checkpoint)
                return path

        namespace.CheckpointManager = RecordingManager
        try:
            result = train_loop(*args, **kwargs)
        finally:
            namespace.CheckpointManager = original
        model_dir = os.path.abspath(str(kwargs.get("model_dir", args[1] if len(args) > 1 else "")))
        for manager in created:
            step = _step_of(manager.checkpoint)
            if os.path.abspath(manager.directory) != model_dir or step is None:
                continue  # a non-chief worker's temporary directory
            if step != manager.tfod_saved_step:
                path = manager.save()
                print(f"tfod: saved the final step {step} as {path}", file=sys.stderr, flush=True)
        return result

    return wrapped


def main(argv: Sequence[str] | None = None) -> None:
    """Install the layer, then hand ``argv`` (default ``sys.argv``) to ``model_main_tf2.main``.

    Exits like the stock script (absl's ``app.run`` calls ``sys.exit``); a layer failure prints
    one line and exits 2.
    """
    args = list(sys.argv if argv is None else argv)
    final = SAVE_FINAL_FLAG in args
    args = [arg for arg in args if arg != SAVE_FINAL_FLAG]
    from tfod_tools.odapi import compat

    try:
        report = compat.install()
    except TfodError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    print(compat_banner(report.to_dict()), file=sys.stderr, flush=True)

    from absl import app
    from object_detection import model_lib_v2, model_main_tf2

    if final:
        model_lib_v2.train_loop = save_final_step(model_lib_v2.train_loop)
    app.run(model_main_tf2.main, argv=["model_main_tf2", *args[1:]])


if __name__ == "__main__":
    main()
