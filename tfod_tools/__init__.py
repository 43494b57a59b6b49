"""tfod_tools: companion toolkit for the TensorFlow Object Detection API.

Importing the package is cheap: TensorFlow and ``object_detection`` are imported lazily,
only by the commands that need them.

>>> import tfod_tools
>>> tfod_tools.__version__
'0.1.0'
"""

__version__ = "0.1.0"
