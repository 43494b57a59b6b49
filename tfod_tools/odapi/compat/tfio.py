"""A stand-in for ``tensorflow_io`` where it is not installed (no wheel for Python 3.13).

``object_detection/meta_architectures/deepmac_meta_arch.py`` imports ``tensorflow_io`` at module
level, and ``model_builder`` imports that module, so every model build needs it; but only DeepMAC's
colour-consistency loss calls it (``tfio.experimental.color.rgb_to_lab``). The stand-in lets the
import succeed; any use raises an ``AttributeError`` that names the fix.

>>> module = make_stand_in()
>>> module.experimental  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
AttributeError: tensorflow_io.experimental: tensorflow-io is not installed ... pip install tensorflow-io ...
"""

from __future__ import annotations

import importlib.util
import sys
import types

from tfod_tools.odapi.compat.standin import is_stand_in, stand_in_module

MODULE = "tensorflow_io"


def make_stand_in() -> types.ModuleType:
    """A fresh stand-in module named ``tensorflow_io``."""
    return stand_in_module(
        MODULE,
        "tfod_tools stand-in for the missing tensorflow_io",
        shown_as=MODULE,
        reason="tensorflow-io is not installed (only DeepMAC's colour-consistency loss needs it); "
        "pip install tensorflow-io (no wheel for Python 3.13: use Python 3.10-3.12)",
    )


def install_stand_in_if_missing() -> bool:
    """Put the stand-in in ``sys.modules`` when ``tensorflow_io`` cannot be found; True if it did.

    >>> missing = importlib.util.find_spec("tensorflow_io") is None
    >>> install_stand_in_if_missing() == missing
    True
    """
    if MODULE in sys.modules:
        return is_stand_in(sys.modules[MODULE])
    if importlib.util.find_spec(MODULE) is not None:
        return False
    sys.modules[MODULE] = make_stand_in()
    return True
