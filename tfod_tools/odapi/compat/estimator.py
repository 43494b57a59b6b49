"""A stand-in for ``tf.compat.v1.estimator``, removed in TensorFlow 2.16.

``object_detection/inputs.py`` and ``model_lib.py`` import ``tensorflow.compat.v1.estimator`` at
module level, but the TF2 code paths (``model_lib_v2``, ``model_main_tf2``) only ever read
``ModeKeys``. The stand-in module provides exactly that; any other attribute raises an
``AttributeError`` that says why, instead of failing far away.

>>> module = make_stand_in()
>>> module.ModeKeys.TRAIN, module.ModeKeys.EVAL, module.ModeKeys.PREDICT
('train', 'eval', 'infer')
>>> module.Estimator  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
AttributeError: tf.compat.v1.estimator.Estimator: TensorFlow >= 2.16 has no estimator; ... only ModeKeys
"""

from __future__ import annotations

import sys
import types
from typing import Any

from tfod_tools.odapi.compat.standin import is_stand_in, stand_in_module

STAND_IN_NAME = "tensorflow.compat.v1.estimator"


class ModeKeys:
    """The estimator mode names, with the values ``tf.estimator.ModeKeys`` had."""

    TRAIN = "train"
    EVAL = "eval"
    PREDICT = "infer"


def make_stand_in() -> types.ModuleType:
    """A fresh stand-in module (named like the module it replaces)."""
    return stand_in_module(
        STAND_IN_NAME,
        "tfod_tools stand-in for the removed tf.compat.v1.estimator",
        shown_as="tf.compat.v1.estimator",
        reason="TensorFlow >= 2.16 has no estimator; the tfod compatibility layer provides only ModeKeys",
        ModeKeys=ModeKeys,
    )


def has_estimator(tf_compat_v1: Any) -> bool:
    """True when ``tf.compat.v1`` still provides an estimator (TF <= 2.15 with tensorflow-estimator).

    >>> has_estimator(types.SimpleNamespace())
    False
    >>> has_estimator(types.SimpleNamespace(estimator=make_stand_in()))
    True
    """
    try:
        return getattr(tf_compat_v1, "estimator", None) is not None
    except ImportError:
        return False


def install_stand_in(tf_compat_v1: Any) -> types.ModuleType:
    """Attach the stand-in to ``tf.compat.v1`` and to ``sys.modules``; return it.

    After it, ``from tensorflow.compat.v1 import estimator`` yields the stand-in.
    """
    module = sys.modules.get(STAND_IN_NAME)
    if not is_stand_in(module):
        module = make_stand_in()
        sys.modules[STAND_IN_NAME] = module
    assert module is not None
    tf_compat_v1.estimator = module
    return module
