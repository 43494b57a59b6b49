"""The Beam pipeline options of a ``--beam`` run: the arguments after ``--``, checked up front.

:func:`pipeline_options` turns them into ``PipelineOptions``, with ``--runner=DirectRunner`` unless
another runner is named. An unknown runner, an option no Beam options class defines, or a bad value
is a :class:`~tfod_tools.errors.TfodError` (exit 2) before anything is built or submitted.

>>> options = pipeline_options(["--direct_num_workers=2"])
>>> runner_name(options), options.get_all_options()["direct_num_workers"]
('DirectRunner', 2)
>>> pipeline_options(["--runner=NoSuchRunner"])
Traceback (most recent call last):
...
tfod_tools.errors.TfodError: unknown Beam runner 'NoSuchRunner' (fix: use one of ...)
>>> pipeline_options(["--no_such_option=1"])
Traceback (most recent call last):
...
tfod_tools.errors.TfodError: Beam does not know the option(s) --no_such_option=1 (fix: ...)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from tfod_tools.errors import TfodError

__all__ = ["DEFAULT_RUNNER", "known_runners", "new_pipeline", "pipeline_options", "runner_name"]

DEFAULT_RUNNER = "DirectRunner"
_OPTIONS_HELP = "see `python -m apache_beam.examples.wordcount --help` or the Beam pipeline options docs"


def known_runners() -> list[str]:
    """The runner names Beam resolves itself (``DirectRunner``, ``DataflowRunner``, ``FlinkRunner``, ...).

    >>> {"DirectRunner", "DataflowRunner", "FlinkRunner", "SparkRunner"} <= set(known_runners())
    True
    """
    return list(StandardOptions.KNOWN_RUNNER_NAMES)


def _check_runner(name: str) -> None:
    known = {runner.lower() for runner in known_runners()}
    if name.lower() in known or f"{name.lower()}runner" in known:
        return
    if "." in name:  # a PipelineRunner subclass by its full name
        module, _, cls = name.rpartition(".")
        with contextlib.suppress(ImportError, ValueError):
            if hasattr(importlib.import_module(module), cls):
                return
    raise TfodError(f"unknown Beam runner {name!r}", fix=f"use one of {', '.join(known_runners())}")


def _parser() -> argparse.ArgumentParser:
    """Beam's own parser of every registered options class (what ``get_all_options`` parses with)."""
    captured: list[argparse.ArgumentParser] = []
    PipelineOptions([]).get_all_options(add_extra_args_fn=captured.append)
    return captured[0]


WORKER_LOG_LEVEL = "WARNING"
"""The workers' log level unless ``--default_sdk_harness_log_level`` says otherwise (Beam's is INFO)."""


def pipeline_options(args: Sequence[str]) -> PipelineOptions:
    """``PipelineOptions`` of ``args`` (the command line after ``--``); DirectRunner by default."""
    flags = [str(arg) for arg in args]
    if not any(flag.startswith("--default_sdk_harness_log_level") for flag in flags):
        flags.append(f"--default_sdk_harness_log_level={WORKER_LOG_LEVEL}")  # workers' INFO off stderr
    parser = _parser()
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            _, unknown = parser.parse_known_args(flags)
    except SystemExit:
        lines = [line for line in errors.getvalue().splitlines() if line.strip()]
        reason = lines[-1].split("error: ", 1)[-1] if lines else "cannot parse them"
        raise TfodError(f"bad Beam pipeline options: {reason}", fix=_OPTIONS_HELP) from None
    if unknown:
        raise TfodError(
            f"Beam does not know the option(s) {' '.join(unknown)}",
            fix=f"check the spelling; {_OPTIONS_HELP}",
        )
    options = PipelineOptions(flags)
    runner = options.view_as(StandardOptions).runner
    if runner is None:
        options.view_as(StandardOptions).runner = DEFAULT_RUNNER
    else:
        _check_runner(str(runner))
    return options


def runner_name(options: PipelineOptions) -> str:
    """The runner ``options`` name (:data:`DEFAULT_RUNNER` when none)."""
    return str(options.view_as(StandardOptions).runner or DEFAULT_RUNNER)


_DIRECT = {
    "direct",
    "directrunner",
    "switchingdirectrunner",
    "apache_beam.runners.direct.direct_runner.directrunner",
}
"""The names of Beam's DirectRunner (``--runner=...``; the default)."""


def new_pipeline(options: PipelineOptions) -> beam.Pipeline:
    """A ``beam.Pipeline`` for ``options``; the DirectRunner runs on Beam's Python FnApiRunner.

    Beam's DirectRunner (2.77) first tries the Prism runner, a Go binary it downloads from GitHub at
    the first run: a network fetch on every offline run (here: a failed download, a stray worker-pool
    server and 0.2 s before falling back), and, where the download works, an engine tfod_tools was not
    tested on. The FnApiRunner is the DirectRunner's own batch engine (what it falls back to), honours
    ``--direct_num_workers`` / ``--direct_running_mode``, and is what the tests and
    docs/benchmarks.md measure. ``--runner=PrismRunner`` still picks Prism.

    >>> type(new_pipeline(pipeline_options([])).runner).__name__
    'FnApiRunner'
    >>> type(new_pipeline(pipeline_options(["--runner=PrismRunner"])).runner).__name__
    'PrismRunner'
    """
    if runner_name(options).lower() not in _DIRECT:
        return beam.Pipeline(options=options)
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    info = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return beam.Pipeline(runner=fn_runner.FnApiRunner(provision_info=info), options=options)
