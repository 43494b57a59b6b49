"""``tfod predict``: run an exported model over images or records and write its detections.

- :mod:`tfod_tools.predict.inputs`: which images (a folder, a glob, TFRecords) and how they are read
  (image files as ``tfod convert`` reads them, EXIF orientation applied; record images as stored);
- :mod:`tfod_tools.predict.draw`: annotated copies (boxes and ``class score`` labels);
- :mod:`tfod_tools.predict.run`: the run (label map check, inference with progress, bad images
  listed and skipped, the outputs written to a temporary directory renamed into place).
"""

from tfod_tools.predict.run import PredictOptions, PredictResult, predict

__all__ = ["PredictOptions", "PredictResult", "predict"]
