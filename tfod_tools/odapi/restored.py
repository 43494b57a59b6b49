"""Did a fine-tune restore the source checkpoint? Compare the weights, variable by variable.

``model_main_tf2`` saves ``ckpt-1`` at step 0 of a run, right after it restored
``fine_tune_checkpoint``: with ``fine_tune_checkpoint_type: detection`` every variable of the
feature extractor (``model/_feature_extractor/...``, FPN included) in that step-0 checkpoint holds
the source's value exactly, while the box predictor starts fresh (another ``num_classes`` gives the
class head another shape). :func:`compare_restore` counts, over the source's weight variables
under a prefix (:func:`weight_keys`), how many the start checkpoint holds exactly and, given a
later checkpoint of the same run, how many training then moved. The fine-tune test, the
compatibility matrix (``scripts/compat_matrix.sh``) and ``tfod demo --fine-tune`` all use it.

The values are read with TensorFlow's checkpoint reader (imported inside the function); listing
the keys does not import TensorFlow.

>>> weight_keys.__name__, FEATURE_EXTRACTOR
('weight_keys', 'model/_feature_extractor/')
>>> RestoreCheck(variables=300, restored_exactly=300, moved_by_training=12).ok
True
>>> RestoreCheck(variables=300, restored_exactly=299).summary()
'299/300 feature-extractor variables restored exactly'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tfod_tools.errors import TfodError
from tfod_tools.odapi.checkpoints import checkpoint_keys

__all__ = ["FEATURE_EXTRACTOR", "VALUE_SUFFIX", "RestoreCheck", "compare_restore", "weight_keys"]

FEATURE_EXTRACTOR = "model/_feature_extractor/"
"""Where a TF2 detection checkpoint keeps the backbone (and FPN) a ``detection`` fine-tune restores."""

VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
"""The end of a variable's value key in an object-based checkpoint."""


def weight_keys(prefix: str | Path, part: str = FEATURE_EXTRACTOR) -> list[str]:
    """The weight variables of checkpoint ``prefix`` under ``part``: value keys, optimizer slots left out.

    Raises ``OSError`` / ``ValueError`` like :func:`~tfod_tools.odapi.checkpoints.checkpoint_keys`.
    """
    return [
        key
        for key in checkpoint_keys(prefix)
        if key.startswith(part) and key.endswith(VALUE_SUFFIX) and ".OPTIMIZER_SLOT" not in key
    ]


@dataclass(frozen=True)
class RestoreCheck:
    """What :func:`compare_restore` counted (``moved_by_training`` None without a later checkpoint)."""

    variables: int
    """The source's weight variables under the compared prefix."""
    restored_exactly: int
    """How many of them the start checkpoint holds with the same shape and value, bit for bit."""
    moved_by_training: int | None = None
    """How many differ between the start checkpoint and the later one."""
    missing: tuple[str, ...] = ()
    """Source variables the start checkpoint does not hold at all (the first few)."""

    @property
    def ok(self) -> bool:
        """Every variable restored exactly (and, when a later checkpoint was given, some moved)."""
        restored = self.variables > 0 and self.restored_exactly == self.variables
        return restored and (self.moved_by_training is None or self.moved_by_training > 0)

    def summary(self) -> str:
        """One line, e.g. ``300/300 feature-extractor variables restored exactly``."""
        return f"{self.restored_exactly}/{self.variables} feature-extractor variables restored exactly"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with ``ok``."""
        doc = asdict(self)
        doc["missing"] = list(self.missing)
        doc["ok"] = self.ok
        return doc


def compare_restore(
    source: str | Path, start: str | Path, end: str | Path | None = None, *, part: str = FEATURE_EXTRACTOR
) -> RestoreCheck:
    """Compare the weights under ``part`` of checkpoint ``source`` with the fine-tune's step-0
    checkpoint ``start`` (and ``start`` with a later checkpoint ``end`` of the same run).

    Raises :class:`~tfod_tools.errors.TfodError` naming the checkpoint that cannot be read.
    """
    import numpy as np

    from tfod_tools.odapi import compat

    prefixes = [Path(source), Path(start)] + ([] if end is None else [Path(end)])
    try:
        keys = weight_keys(prefixes[0], part)
        held = [set(checkpoint_keys(p)) for p in prefixes[1:]]
    except (OSError, ValueError) as exc:
        raise TfodError(
            f"cannot read the checkpoints to compare ({exc})",
            path=prefixes[0],
            fix="pass checkpoint prefixes (.../ckpt-N) whose .index and data files exist",
        ) from None
    compat.install()
    import tensorflow as tf

    readers = []
    for prefix in prefixes:
        try:
            readers.append(tf.train.load_checkpoint(str(prefix)))
        except (tf.errors.OpError, ValueError) as exc:
            raise TfodError(
                f"TensorFlow cannot read the checkpoint ({type(exc).__name__})",
                path=prefix,
                fix="pass a complete checkpoint prefix (.../ckpt-N)",
            ) from None
    missing = [key for key in keys if key not in held[0]]
    present = [key for key in keys if key in held[0]]
    same = moved = 0
    for key in present:
        at_start = readers[1].get_tensor(key)
        original = readers[0].get_tensor(key)
        if at_start.shape == original.shape and np.array_equal(at_start, original):
            same += 1
        if end is not None and key in held[1]:
            later = readers[2].get_tensor(key)
            if later.shape != at_start.shape or not np.array_equal(later, at_start):
                moved += 1
    return RestoreCheck(
        variables=len(keys),
        restored_exactly=same,
        moved_by_training=None if end is None else moved,
        missing=tuple(missing[:5]),
    )
