"""Evaluation of every checkpoint of a model directory (``tfod evaluate``, ``tfod train --eval continuous``).

- :mod:`~tfod_tools.evaluation.runner`: one process, the model built once, checkpoints in global-step order.
- :mod:`~tfod_tools.evaluation.selection`: which checkpoints to evaluate (``--checkpoints all|latest|STEPS``).
- :mod:`~tfod_tools.evaluation.results`: what a run reports (evaluated, skipped, the result).
- :mod:`~tfod_tools.evaluation.follow`: follow a training run, protecting its checkpoints by hard links.
- :mod:`~tfod_tools.evaluation.continuous`: the evaluator as a supervised child beside ``tfod train``.
- :mod:`~tfod_tools.evaluation.channel`: the evaluator child's records (a JSON line per checkpoint).
- :mod:`~tfod_tools.evaluation.protocols`: the metric protocols (coco, voc07, voc), one module each.
- :mod:`~tfod_tools.evaluation.scoring`: metrics under the stock TensorBoard tags, PR counts.
- :mod:`~tfod_tools.evaluation.events`: ``MODEL_DIR/eval`` rewritten from the ledger.
- :mod:`~tfod_tools.evaluation.summary`: the step -> mAP, AP50, AR@100, eval loss table.

The detections store they write is :mod:`tfod_tools.data.store`.

Importing this package does not import TensorFlow.
"""
