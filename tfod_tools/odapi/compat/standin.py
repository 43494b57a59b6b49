"""Stand-in modules: a module object that lets an import succeed and explains any other use.

The estimator stand-in (:mod:`tfod_tools.odapi.compat.estimator`) and the ``tensorflow_io`` one
(:mod:`tfod_tools.odapi.compat.tfio`) are both made here: the attributes the API really reads are
given, and every other attribute raises an ``AttributeError`` that names what is missing and why.

>>> module = stand_in_module("demo_missing", "a demo", shown_as="demo", reason="not here", answer=42)
>>> module.answer, is_stand_in(module), is_stand_in(types)
(42, True, False)
>>> module.question
Traceback (most recent call last):
...
AttributeError: demo.question: not here
"""

from __future__ import annotations

import types
from typing import Any

__all__ = ["is_stand_in", "stand_in_module"]


class _StandInModule(types.ModuleType):
    """Module type whose missing attributes explain themselves."""

    tfod_stand_in = True

    def __init__(self, name: str, doc: str, shown_as: str, reason: str) -> None:
        super().__init__(name, doc)
        self._stand_in_message = (shown_as, reason)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        shown_as, reason = self._stand_in_message
        raise AttributeError(f"{shown_as}.{name}: {reason}")


def stand_in_module(
    name: str, doc: str, *, shown_as: str, reason: str, **attributes: Any
) -> types.ModuleType:
    """A fresh module named ``name`` holding ``attributes``; any other attribute raises
    ``AttributeError("{shown_as}.{attribute}: {reason}")``."""
    module = _StandInModule(name, doc, shown_as, reason)
    for key, value in attributes.items():
        setattr(module, key, value)
    return module


def is_stand_in(module: object) -> bool:
    """True when ``module`` was made by :func:`stand_in_module` (False for None or a real module)."""
    return bool(getattr(module, "tfod_stand_in", False))
