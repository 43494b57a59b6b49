"""The only place in tfod_tools that imports ``object_detection`` (the TF Object Detection API).

Everything here imports TensorFlow and the API lazily, inside functions, after
:func:`tfod_tools.odapi.compat.install` has prepared the process.
"""
