"""``tfod export``: a trained checkpoint to a SavedModel and a TFLite model, with its provenance.

- :mod:`~tfod_tools.export.choice`: which checkpoint (``best`` from the ledger, ``latest``, a step).
- :mod:`~tfod_tools.export.run`: the checks before TensorFlow starts, the export into a temporary
  directory renamed into place, ``export.json``.

The exporters themselves are the API's, in :mod:`tfod_tools.odapi.export`. Importing this package
does not import TensorFlow.
"""
