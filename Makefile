# The two commands a new user needs: `make demo` and `make test`. Both set up .venv/ first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export NO_ALBUMENTATIONS_UPDATE := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: setup test lint pytest check-wheel demo demo-quick bench clean

setup:
	@bash scripts/setup.sh

lint: setup
	$(VENV)/bin/ruff check tfod_tools tests scripts
	$(VENV)/bin/ruff format --check tfod_tools tests scripts
	$(VENV)/bin/mypy

# The HTML-report test screenshots the report in headless Chromium; this installs it when missing.
BROWSER_SETUP ?= bash scripts/setup_browser.sh

pytest: setup
	$(BROWSER_SETUP)
	$(PY) -m pytest $(PYTEST_ARGS)

# The wheel in a fresh venv (deps from PyPI, no TensorFlow): the TF-free commands work after `pip install .`.
check-wheel: setup
	bash scripts/check_wheel.sh

test: lint pytest check-wheel

demo: setup
	$(VENV)/bin/tfod demo

demo-quick: setup
	$(VENV)/bin/tfod demo --quick

bench: setup
	bash scripts/bench_all.sh

clean:
	rm -rf workspace/demo workspace/runs .pytest_cache .mypy_cache .ruff_cache
