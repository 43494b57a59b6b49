"""The ``hash`` key the API's eval input gives each image, from its ``image/source_id`` alone.

``inputs.eval_input`` keys every image by ``tf.strings.to_hash_bucket_fast(source_id, HASH_BINS)``
(as int32); stock COCO evaluation numbers images by that key, so any evaluation that must give the
stock values (ties between images broken by image id) orders images by it
(:func:`tfod_tools.evaluation.runner.in_key_order`). :func:`source_keys` computes the keys without
building a model; the checkpoint evaluator's
:meth:`tfod_tools.odapi.evaluator.CheckpointEvaluator.source_keys` calls it. TensorFlow is imported inside.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["source_keys"]


def source_keys(source_ids: Sequence[str]) -> list[int]:
    """The eval input's ``hash`` key of an image with each ``image/source_id``, in order."""
    if not source_ids:
        return []
    from tfod_tools.odapi import compat

    compat.install()
    import tensorflow as tf
    from object_detection import inputs

    hashed = tf.strings.to_hash_bucket_fast(tf.constant(list(source_ids)), inputs.HASH_BINS)
    return [int(v) for v in tf.cast(hashed, tf.int32).numpy().tolist()]
