"""tf-slim's calls to ``control_flow_ops.case`` / ``control_flow_ops.cond``, moved by TensorFlow.

``tf-slim`` 1.1.0 (``data/tfexample_decoder.py``, used to decode images in the API's input
pipeline) calls ``tensorflow.python.ops.control_flow_ops.case`` and ``.cond``. TensorFlow 2.13+
moved them to ``tensorflow.python.ops.control_flow_case.case`` and ``tensorflow.python.ops.cond.cond``.
When they are missing, this fix points the old names at the new functions.

>>> import types
>>> ops = types.SimpleNamespace(case=print, cond=print)
>>> missing_names(ops)
[]
>>> missing_names(types.SimpleNamespace())
['case', 'cond']
"""

from __future__ import annotations

from typing import Any

NAMES: tuple[str, ...] = ("case", "cond")


def missing_names(control_flow_ops: Any) -> list[str]:
    """The names tf-slim needs that ``control_flow_ops`` lacks."""
    return [name for name in NAMES if not hasattr(control_flow_ops, name)]


def restore_moved_ops() -> list[str]:
    """Re-attach the moved functions to ``control_flow_ops``; return the names attached.

    Imports TensorFlow; attaches nothing when the functions are still there (TF <= 2.12).
    """
    from tensorflow.python.ops import control_flow_ops

    missing = missing_names(control_flow_ops)
    if "case" in missing:
        from tensorflow.python.ops import control_flow_case

        control_flow_ops.case = control_flow_case.case
    if "cond" in missing:
        from tensorflow.python.ops import cond

        control_flow_ops.cond = cond.cond
    return missing
