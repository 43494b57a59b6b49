"""Legacy Keras: TensorFlow >= 2.16 must use ``tf-keras`` (Keras 2) for the API to work.

From TensorFlow 2.16 on, ``tf.keras`` is Keras 3 unless ``TF_USE_LEGACY_KERAS=1`` is set before
``tf.keras`` is first touched and the ``tf-keras`` package is installed. The API's models are
Keras 2 code. TensorFlow 2.13-2.15 ship Keras 2 themselves and need nothing.

Versions are read from package metadata, so deciding costs no TensorFlow import.

>>> needs_legacy_keras("2.20.0"), needs_legacy_keras("2.15.1"), needs_legacy_keras(None)
(True, False, False)
>>> parse_version("2.16.0rc1")
(2, 16, 0)
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import sys

ENV_VAR = "TF_USE_LEGACY_KERAS"
TF_DISTRIBUTIONS: tuple[str, ...] = (
    "tensorflow",
    "tensorflow-cpu",
    "tensorflow-gpu",
    "tensorflow-macos",
    "tensorflow-intel",
    "tf-nightly",
    "tf-nightly-cpu",
)


def parse_version(text: str) -> tuple[int, ...]:
    """The leading numeric components of a version string."""
    parts: list[int] = []
    for piece in text.split(".")[:3]:
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group()))
    return tuple(parts)


def distribution_version(*names: str) -> str | None:
    """The installed version of the first of ``names`` found, else None.

    >>> distribution_version("tfod-tools-no-such-distribution") is None
    True
    """
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def tensorflow_version() -> str | None:
    """TensorFlow's version: from the loaded module if imported, else from package metadata."""
    module = sys.modules.get("tensorflow")
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    return distribution_version(*TF_DISTRIBUTIONS)


def needs_legacy_keras(tf_version: str | None) -> bool:
    """True for TensorFlow >= 2.16, whose default ``tf.keras`` is Keras 3."""
    return tf_version is not None and parse_version(tf_version)[:2] >= (2, 16)


def tf_keras_installed() -> bool:
    """True when the ``tf_keras`` package (Keras 2 for TF >= 2.16) can be imported."""
    return importlib.util.find_spec("tf_keras") is not None


def legacy_switch_on() -> bool:
    """True when ``TF_USE_LEGACY_KERAS`` is set to a true value in this process."""
    return os.environ.get(ENV_VAR, "").strip().lower() in ("1", "true", "yes")


def active_keras_major() -> int:
    """The major version of the Keras behind ``tf.keras`` (imports TensorFlow and touches tf.keras)."""
    import tensorflow as tf

    layer_module = tf.keras.layers.Layer.__module__
    top = layer_module.split(".", 1)[0]
    if top == "tf_keras":
        return 2
    if top == "keras":
        keras_version = distribution_version("keras") or "2"
        return parse_version(keras_version)[0]
    # tensorflow.python.keras (TF <= 2.5) is Keras 2.
    return 2
