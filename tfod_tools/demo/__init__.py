"""``tfod demo``: the whole train -> evaluate -> diagnose -> balance -> retrain loop on synthetic data.

:func:`run_demo` is the command; :mod:`.settings` holds the quick/full sizes, :mod:`.continuous`
trains with the continuous evaluator beside, :mod:`.report` renders the before/after comparison,
:mod:`.fine_tune` is the ``--fine-tune`` step.

>>> from tfod_tools.demo import STEPS
>>> STEPS[0], STEPS[-1], len(STEPS)
('data', 'report', 11)
"""

from tfod_tools.demo.run import STEPS, DemoEvents, DemoResult, run_demo
from tfod_tools.demo.settings import FULL, QUICK, DemoSettings

__all__ = ["FULL", "QUICK", "STEPS", "DemoEvents", "DemoResult", "DemoSettings", "run_demo"]
