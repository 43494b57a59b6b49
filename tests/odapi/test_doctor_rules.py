"""``tfod doctor``'s decision on the user's own venvs: installed versions -> lines and pip fixes.

The version sets are the ones measured (Dec 2026, Python 3.11, PyPI) in venvs a user makes without
scripts/setup.sh (docs/compatibility.md, "Your own environment"), each followed by the doctor's
fix lines run in that venv and the versions they left; the requirements are tfod_tools' own
installed metadata. No install here: the rules are a pure function of the versions.
"""

from __future__ import annotations

import pytest
from packaging.requirements import Requirement

from tfod_tools.odapi import doctor_rules as rules
from tfod_tools.odapi.doctor import DoctorReport


def _own(name: str) -> str:
    """The fix line for one of tfod_tools' own requirements, spelled from its installed metadata
    (pyproject.toml's bound, not a copy of it)."""
    (requirement,) = [r for r in map(Requirement, rules.own_requirements()) if r.name == name]
    return f"pip install '{name}{requirement.specifier}'"


# The pieces every scenario shares (tensorflow's own dependencies, tfod_tools' that were present).
COMMON = {
    "protobuf": "7.36.2",
    "rich": "15.0.0",
    "six": "1.17.0",
    "keras": "3.15.1",
}

# (a) pip install tensorflow tf-models-research-object-detection: pip resolves TensorFlow down to
# 2.20 (tf-models-official 2.20.0 pins it), the API's metadata brings pyparsing 2.4.7, Keras 3,
# tensorflow_io and the GUI opencv-python beside the headless one; numpy 2.4.
SDIST_WITH_DEPS = {
    **COMMON,
    "tensorflow": "2.20.0",
    "tf-keras": "2.20.1",
    "tf-models-official": "2.20.0",
    "tf-slim": "1.1.0",
    "tensorflow-io": "0.37.1",
    "gin-config": "0.5.0",
    "pyyaml": "6.0.4",
    "lvis": "0.5.3",
    "pycocotools": "2.0.11",
    "scipy": "1.17.1",
    "matplotlib": "3.10.6",
    "pillow": "13.0.0",
    "pyparsing": "2.4.7",
    "opencv-python": "5.0.0.93",
    "opencv-python-headless": "5.0.0.93",
    "numpy": "2.4.6",
    "tensorboard": "2.20.0",
}
SDIST_WITH_DEPS_FIXES = [
    "pip uninstall -y opencv-python opencv-python-headless && pip install "
    "'opencv-python-headless>=4.9,<4.13'",
    "pip install 'numpy<2.3,>=1.26'",
    "pip install 'typer<0.30,>=0.29'",
    "pip install 'albumentations<2.1,>=2.0.8'",
    "pip install 'google-crc32c>=1.5'",
]
SDIST_WITH_DEPS_FIXED = {
    **SDIST_WITH_DEPS,
    "opencv-python": None,
    "opencv-python-headless": "4.12.0.88",
    "numpy": "2.2.6",
    "typer": "0.29.2",
    "albumentations": "2.0.8",
    "google-crc32c": "1.9.0",
}

# (b) pip install tensorflow (2.21.0, the newest), then the API --no-deps.
NO_DEPS = {**COMMON, "tensorflow": "2.21.0", "numpy": "2.4.6", "typer": "0.29.2"}
NO_DEPS_FIXES = [
    "pip install 'tf-keras~=2.21.0'",
    "pip install --no-deps 'tf-models-official==2.20.0'",
    "pip install tf-slim",
    "pip install tensorflow-io",
    "pip install gin-config",
    "pip install pyyaml",
    "pip install --no-deps lvis==0.5.3",
    "pip install pycocotools",
    "pip install scipy",
    "pip install matplotlib",
    "pip install pillow",
    "pip install 'opencv-python-headless>=4.9,<4.13'",
    _own("numpy"),
    _own("tensorboard"),
    _own("albumentations"),
    _own("google-crc32c"),
]
NO_DEPS_FIXED = {
    **NO_DEPS,
    "tf-keras": "2.21.0",
    "tf-models-official": "2.20.0",
    "tf-slim": "1.1.0",
    "tensorflow-io": "0.37.1",
    "gin-config": "0.5.0",
    "pyyaml": "6.0.4",
    "lvis": "0.5.3",
    "pycocotools": "2.0.11",
    "scipy": "1.17.1",
    "matplotlib": "3.11.2",
    "pillow": "13.0.0",
    "opencv-python-headless": "4.12.0.88",
    "numpy": "2.2.6",
    "tensorboard": "2.21.0",
    "albumentations": "2.0.8",
    "google-crc32c": "1.9.0",
}

# (c) (a) fixed, then pip install -U tensorflow: TensorFlow 2.21.0 beside tf-keras 2.20.1.
UPGRADED_TF = {**SDIST_WITH_DEPS_FIXED, "tensorflow": "2.21.0", "tensorboard": "2.21.0"}

# (d) (b) fixed, then pip uninstall -y tf-slim tensorflow-io.
NO_SLIM_NO_IO = {**NO_DEPS_FIXED, "tf-slim": None, "tensorflow-io": None}


def _fixes(installed: dict[str, str | None]) -> list[str]:
    checks = rules.package_checks(installed, rules.own_requirements())
    return DoctorReport(checks).fixes()


@pytest.mark.parametrize(
    ("installed", "fixes"),
    [
        (SDIST_WITH_DEPS, SDIST_WITH_DEPS_FIXES),
        (NO_DEPS, NO_DEPS_FIXES),
        (UPGRADED_TF, ["pip install 'tf-keras~=2.21.0'"]),
        (NO_SLIM_NO_IO, ["pip install tf-slim", "pip install tensorflow-io"]),
    ],
    ids=["sdist-with-deps", "api-no-deps", "tf-keras-of-another-minor", "no-slim-no-io"],
)
def test_each_missing_or_conflicting_piece_gets_its_pip_line(
    installed: dict[str, str | None], fixes: list[str]
) -> None:
    assert _fixes(installed) == fixes
    failed = [c for c in rules.package_checks(installed, rules.own_requirements()) if c.status == "fail"]
    assert failed and all(c.fix.startswith("pip ") and "\n" not in c.fix for c in failed)


@pytest.mark.parametrize("installed", [SDIST_WITH_DEPS_FIXED, NO_DEPS_FIXED], ids=["a-fixed", "b-fixed"])
def test_after_the_fixes_every_package_line_is_ok(installed: dict[str, str | None]) -> None:
    checks = rules.package_checks(installed, rules.own_requirements())
    assert [c for c in checks if c.status != "ok"] == []


def test_model_garden_on_a_tensorflow_newer_than_its_newest_release() -> None:
    # TF 2.21 + tf-models-official 2.20.0: the newest release (pip check reports its pin), ok.
    check = rules.model_garden_check(NO_DEPS_FIXED)
    assert check.status == "ok" and "newest release" in check.detail
    # TF 2.19 + the 2.20 release: pip would move TensorFlow; the matching minor is the fix.
    check = rules.model_garden_check({"tensorflow": "2.19.1", "tf-models-official": "2.20.0"})
    assert check.status == "warn" and check.fix == "pip install 'tf-models-official~=2.19.0'"
    # TF 2.15 needs no tf-keras (Keras 2 ships with it).
    assert rules.tf_keras_check({"tensorflow": "2.15.1"}).status == "ok"


def test_the_gui_opencv_alone_is_a_warning_and_a_headless_one_out_of_bounds_fails() -> None:
    gui = rules.opencv_check({"opencv-python": "4.12.0.88"})
    assert gui.status == "warn" and gui.fix.startswith("pip uninstall -y opencv-python")
    new = rules.opencv_check({"opencv-python-headless": "5.0.0.93"})
    assert new.status == "fail" and new.fix == "pip install 'opencv-python-headless>=4.9,<4.13'"


def test_a_module_the_api_failed_to_import_maps_to_its_install_line() -> None:
    assert rules.import_fix("tf_slim", "2.21.0") == "pip install tf-slim"
    assert rules.import_fix("official.vision.beta", "2.20.0") == "pip install 'tf-models-official~=2.20.0'"
    assert rules.import_fix("tf_keras", "2.18.1") == "pip install 'tf-keras~=2.18.0'"
    assert rules.import_fix("no_such_module", "2.20.0") is None


def test_the_project_venv_is_ok_by_the_same_rules() -> None:
    """The real metadata of this venv (scripts/setup.sh's pinned set): every package line ok."""
    requirements = rules.own_requirements()
    installed = rules.read_installed(rules.requirement_names(requirements))
    checks = rules.package_checks(installed, requirements)
    assert [c for c in checks if c.status != "ok"] == []
    assert {c.name for c in checks} >= {need.distribution for need in rules.API_NEEDS}


def test_tensorflow_2_15_keeps_its_protobuf_below_5() -> None:
    """TF 2.15.1 installed by hand as in docs/compatibility.md's recipe: protobuf 4.25 (TF 2.15
    refuses 5), numpy < 2, the Model Garden of its minor: every line ok, and a stricter protobuf
    bound of tfod_tools (it was >= 5.28 before 2026-12) gives way to TensorFlow's."""
    installed = {
        **NO_DEPS_FIXED,
        "tensorflow": "2.15.1",
        "tf-keras": None,
        "tf-models-official": "2.15.0",
        "protobuf": "4.25.3",
        "numpy": "1.26.4",
        "opencv-python-headless": "4.10.0.84",
        "pycocotools": "2.0.8",
    }
    checks = rules.package_checks(installed, rules.own_requirements())
    assert [c for c in checks if c.status != "ok"] == []
    strict = [*rules.own_requirements(), "protobuf>=5.28"]
    assert [c for c in rules.package_checks(installed, strict) if c.status != "ok"] == []
    # From TF 2.18 on TensorFlow takes protobuf 5: there tfod_tools' bound applies.
    newer = {**installed, "tensorflow": "2.18.1", "tf-keras": "2.18.0", "tf-models-official": "2.18.0"}
    fixes = DoctorReport(rules.package_checks(newer, strict)).fixes()
    assert fixes == ["pip install 'protobuf>=5.28'"]


def test_tensorflow_io_missing_is_a_warning_and_optional_on_python_3_13() -> None:
    (io,) = [c for c in rules.package_checks(NO_SLIM_NO_IO, python=(3, 12)) if c.name == "tensorflow-io"]
    assert io.status == "warn" and io.fix == "pip install tensorflow-io"
    (io,) = [c for c in rules.package_checks(NO_SLIM_NO_IO, python=(3, 13)) if c.name == "tensorflow-io"]
    assert io.status == "warn" and io.fix.startswith("optional: ")
    assert DoctorReport(rules.package_checks(NO_SLIM_NO_IO, python=(3, 13))).fixes() == [
        "pip install tf-slim"
    ]
