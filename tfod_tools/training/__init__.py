"""Orchestration of a training run: the trainer child, its loss watch, the continuous evaluator.

:func:`~tfod_tools.training.session.train_with_evaluation` is what ``tfod train`` and the demo run;
:class:`~tfod_tools.training.watch.LossWatch` applies :mod:`tfod_tools.diagnostics.health` to the
losses the trainer logs. This package does not import TensorFlow (the children do).
"""
