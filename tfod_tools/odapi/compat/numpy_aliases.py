"""numpy >= 1.24 removed the builtin-type aliases ``np.float``, ``np.int``, ... that the API uses.

``object_detection/utils/metrics.py`` (the Pascal VOC evaluator), ``metrics/tf_example_parser.py``
and ``nets/mobilenet/mobilenet_v3.py`` still compare dtypes with ``np.float`` / build with
``np.int``; under numpy 2 they raise ``AttributeError``. The aliases meant exactly the builtins,
so restoring them as the builtins is behaviour-preserving.

>>> missing = missing_aliases()
>>> isinstance(missing, list)
True
"""

from __future__ import annotations

import builtins

import numpy as np

# Only the aliases the API uses; probing np.object or np.str emits FutureWarnings under numpy 2.
ALIASES: tuple[str, ...] = ("float", "int", "bool")


def missing_aliases() -> list[str]:
    """Names of the removed builtin aliases that this numpy lacks."""
    return [name for name in ALIASES if not hasattr(np, name)]


def restore_aliases() -> list[str]:
    """Set each missing alias to its builtin type; return the names restored."""
    restored = missing_aliases()
    for name in restored:
        setattr(np, name, getattr(builtins, name))
    return restored
