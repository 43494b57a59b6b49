#!/usr/bin/env bash
# Create or update .venv/ at the repository root. Idempotent: a fast no-op when nothing changed.
#
#   scripts/setup.sh            runtime + test requirements, the TF OD API, and tfod_tools (editable)
#   PYTHON=python3.12 scripts/setup.sh   pick the interpreter (3.10-3.13)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
odapi_pin="tf-models-research-object-detection==2.8.0.post1"
lvis_pin="lvis==0.5.3"

pick_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  for p in python3.11 python3.12 python3.10 python3.13 python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys; sys.exit(not ((3,10) <= sys.version_info[:2] <= (3,13)))' 2>/dev/null; then
      echo "$p"; return
    fi
  done
  echo "setup: no Python 3.10-3.13 found; install one or set PYTHON=..." >&2
  exit 2
}

stamp="$venv/.tfod-setup-stamp"
want="$( (cat requirements.txt requirements-test.txt requirements-beam.txt pyproject.toml; echo "$odapi_pin $lvis_pin"; echo "setup-v3") | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/tfod" ]; then
  exit 0
fi

py="$(pick_python)"
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv with $("$py" --version)" >&2
  "$py" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
export PIP_PROGRESS_BAR=off
echo "setup: installing requirements (first run takes a few minutes)" >&2
# tensorboard 2.20 imports pkg_resources, which setuptools >= 81 no longer ships.
"${pip[@]}" install -q --upgrade pip "setuptools>=70,<81" wheel
"${pip[@]}" install -q -r requirements.txt -r requirements-test.txt -r requirements-beam.txt
# The API's own metadata pins pyparsing==2.4.7 and pulls Keras 3: install it without dependencies.
# lvis (imported by the API's LVIS evaluator) would pull the GUI opencv-python, whose cv2/ overwrites
# opencv-python-headless's: install it without dependencies too (its real needs come with matplotlib).
"${pip[@]}" install -q --no-deps "$odapi_pin" "$lvis_pin"
if "${pip[@]}" show -q opencv-python >/dev/null 2>&1; then
  "${pip[@]}" uninstall -q -y opencv-python
  "${pip[@]}" install -q --force-reinstall --no-deps -r <(grep -i '^opencv-python-headless' requirements.txt)
fi
"${pip[@]}" install -q --no-deps -e .
echo "$want" > "$stamp"
echo "setup: done ($venv)" >&2
