"""The TF OD API's own no-copy rebalancing: ``sample_from_datasets_weights``.

With ``--emit-sampling-config`` the originals are also written one file per group (each image in
the group of its rarest class, or ``negative``), and a ``train_input_reader`` snippet lists those
files as ``tf_record_input_reader.input_path`` with one ``sample_from_datasets_weights`` each (the
API's ``dataset_builder`` requires one weight per input file, in order). The weights are the
planned share of each group, so sampling reproduces the plan's mixture without writing copies.

>>> print(input_reader_text(["a.record", "b.record"], [0.75, 0.25], label_map_path="lm.pbtxt"))
label_map_path: "lm.pbtxt"
shuffle: true
tf_record_input_reader {
  input_path: "a.record"
  input_path: "b.record"
}
sample_from_datasets_weights: 0.75
sample_from_datasets_weights: 0.25
"""

from __future__ import annotations

import json
from collections.abc import Sequence

__all__ = ["input_reader_text", "sampling_config_text"]


def _quote(text: str) -> str:
    # Protobuf text format accepts JSON string escapes for printable text and paths.
    return json.dumps(text, ensure_ascii=False)


def input_reader_text(paths: Sequence[str], weights: Sequence[float], *, label_map_path: str = "") -> str:
    """The body of an ``InputReader`` message (protobuf text format) sampling ``paths`` by ``weights``."""
    if len(paths) != len(weights):
        raise ValueError(f"{len(paths)} paths for {len(weights)} weights")
    lines = []
    if label_map_path:
        lines.append(f"label_map_path: {_quote(label_map_path)}")
    lines.append("shuffle: true")
    lines.append("tf_record_input_reader {")
    lines.extend(f"  input_path: {_quote(p)}" for p in paths)
    lines.append("}")
    lines.extend(f"sample_from_datasets_weights: {w:.6g}" for w in weights)
    return "\n".join(lines)


def sampling_config_text(paths: Sequence[str], weights: Sequence[float], *, label_map_path: str = "") -> str:
    """A commented ``train_input_reader { ... }`` block for a ``pipeline.config``.

    >>> "train_input_reader {" in sampling_config_text(["a"], [1.0])
    True
    """
    body = input_reader_text(paths, weights, label_map_path=label_map_path)
    header = (
        "# Written by tfod balance --emit-sampling-config: the TF OD API rebalances by sampling\n"
        "# each group file with its weight (no augmented copies). Replace the train_input_reader\n"
        "# block of your pipeline.config with this one.\n"
    )
    inner = "\n".join(f"  {line}" for line in body.splitlines())
    return f"{header}train_input_reader {{\n{inner}\n}}\n"
