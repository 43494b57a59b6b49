"""``pipeline_options``: the Beam options after ``--`` are checked before anything runs."""

from __future__ import annotations

import pytest

from tfod_tools.beam import require_beam
from tfod_tools.beam.options import DEFAULT_RUNNER, pipeline_options, runner_name
from tfod_tools.errors import TfodError


def test_no_options_run_on_the_direct_runner() -> None:
    require_beam()  # the extra is installed for the tests
    options = pipeline_options([])
    assert runner_name(options) == DEFAULT_RUNNER == "DirectRunner"
    assert options.get_all_options()["runner"] == "DirectRunner"


def test_given_options_are_kept() -> None:
    options = pipeline_options(
        ["--runner=DirectRunner", "--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    )
    values = options.get_all_options()
    assert (values["direct_num_workers"], values["direct_running_mode"]) == (2, "multi_processing")
    dataflow = pipeline_options(["--runner=dataflow", "--project=p", "--region=europe-west1"])
    assert runner_name(dataflow) == "dataflow"  # Beam resolves the short, lower-case name itself
    assert dataflow.get_all_options()["region"] == "europe-west1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--runner=NoSuchRunner"], "unknown Beam runner 'NoSuchRunner'"),
        (["--runner=no.such.module.Runner"], "unknown Beam runner 'no.such.module.Runner'"),
        (["--direct_num_workrs=2"], "Beam does not know the option(s) --direct_num_workrs=2"),
        (["stray"], "Beam does not know the option(s) stray"),
        (["--direct_num_workers=two"], "bad Beam pipeline options: argument --direct_num_workers"),
    ],
)
def test_bad_options_are_refused_up_front(args: list[str], message: str) -> None:
    with pytest.raises(TfodError) as raised:
        pipeline_options(args)
    assert str(raised.value).startswith(message)
    assert raised.value.exit_code == 2
    assert "\n" not in str(raised.value)
