"""Test helper: ``model_main_tf2`` training (under the layer) with a small ``CheckpointManager``.

``python train_keep.py KEEP <model_main_tf2 flags>`` trains exactly like ``tfod train``'s child,
except that ``model_lib_v2.train_loop`` keeps only ``KEEP`` checkpoints (``model_main_tf2`` has no
flag for ``checkpoint_max_to_keep``; its default is 7).
"""

from __future__ import annotations

import functools
import sys

from tfod_tools.odapi import compat


def main() -> None:
    keep = int(sys.argv[1])
    compat.install()
    from object_detection import model_lib_v2

    model_lib_v2.train_loop = functools.partial(model_lib_v2.train_loop, checkpoint_max_to_keep=keep)
    from tfod_tools.odapi.model_main import main as model_main

    model_main([sys.argv[0], *sys.argv[2:]])


if __name__ == "__main__":
    main()
