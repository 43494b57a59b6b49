"""TensorBoard event files without TensorFlow.

- :mod:`tfod_tools.tensorboard.reader`: scalars (TF1 ``simple_value`` and TF2 tensors) and PR curves
  from every run under a model directory, tolerant of a truncated last record.
- :mod:`tfod_tools.tensorboard.writer`: event files TensorBoard reads (scalars, PR curves, the
  custom-scalars layout), streamed or rewritten whole and atomically.
- :mod:`tfod_tools.tensorboard.pr_curves`: the PR Curves plugin's ``[6, num_thresholds]`` tensor.
- :mod:`tfod_tools.tensorboard.layout`: the custom-scalars layout for TF OD API runs.

Only the ``tensorboard`` package's protobuf modules are used; TensorFlow is never imported.
"""
