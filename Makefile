# The two commands a new user needs: `make demo` and `make test`. Both set up .venv/ first.
SHELL := /bin/bash
# TF_VERSION=2.21 make test: everything in .venv-tf2.21/ on that TensorFlow (docs/compatibility.md);
# without it, .venv/ on the pinned one (requirements.txt).
TF_VERSION ?=
ifeq ($(strip $(TF_VERSION)),)
VENV := .venv
else
VENV := .venv-tf$(TF_VERSION)
endif
PY := $(VENV)/bin/python
export NO_ALBUMENTATIONS_UPDATE := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: setup test lint pytest check-wheel test-newest demo demo-quick bench clean

setup:
	@TF_VERSION=$(TF_VERSION) bash scripts/setup.sh

lint: setup
	$(VENV)/bin/ruff check tfod_tools tests scripts
	$(VENV)/bin/ruff format --check tfod_tools tests scripts
	$(VENV)/bin/mypy

# The HTML-report test screenshots the report in headless Chromium; this installs it when missing.
BROWSER_SETUP ?= bash scripts/setup_browser.sh

# The 30 slowest tests are listed at the end (where CI's 90 minutes go); PYTEST_ARGS= to drop it.
PYTEST_ARGS ?= --durations=30
pytest: setup
	$(BROWSER_SETUP)
	$(PY) -m pytest $(PYTEST_ARGS)

# The wheel in a fresh venv (deps from PyPI, no TensorFlow): the TF-free commands work after `pip install .`.
check-wheel: setup
	bash scripts/check_wheel.sh

# CI's second leg: the newest TensorFlow (its own .venv-tf$(TF_NEWEST)/, without Beam): set-up, doctor and
# the real-API test where a new TensorFlow's breaks show first: a real training, then stock parity of its
# checkpoint (docs/compatibility.md, "CI's second leg": its cost; fine-tuning on TF 2.21 ran in the matrix,
# NEWEST_TESTS="... tests/training/test_fine_tune.py" adds it: +4 min). Only without TF_VERSION.
TF_NEWEST := 2.21
NEWEST_TESTS ?= tests/evaluation/test_parity.py
test-newest:
ifeq ($(strip $(TF_VERSION)),)
	@TF_VERSION=$(TF_NEWEST) TFOD_SETUP_BEAM=0 bash scripts/setup.sh
	.venv-tf$(TF_NEWEST)/bin/tfod doctor
	.venv-tf$(TF_NEWEST)/bin/python -m pytest -q -p no:cacheprovider $(NEWEST_TESTS)
endif

test: lint pytest check-wheel test-newest

demo: setup
	$(VENV)/bin/tfod demo

demo-quick: setup
	$(VENV)/bin/tfod demo --quick

bench: setup
	bash scripts/bench_all.sh

clean:
	rm -rf workspace/demo workspace/runs .pytest_cache .mypy_cache .ruff_cache
