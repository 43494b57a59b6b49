#!/usr/bin/env bash
# Create or update a venv at the repository root. Idempotent: a fast no-op when nothing changed.
#
#   scripts/setup.sh                       .venv/: runtime + test requirements, the TF OD API, tfod_tools (editable)
#   PYTHON=python3.12 scripts/setup.sh     pick the interpreter (3.10-3.13)
#   TF_VERSION=2.21 scripts/setup.sh       another TensorFlow (2.15-2.21) in its own .venv-tf2.21/ (.venv/ untouched),
#                                          with the pins that version needs (docs/compatibility.md)
#   TFOD_VENV=/some/dir                    install into that venv instead (scripts/compat_matrix.sh uses it)
#   TFOD_SETUP_BEAM=0                      leave out the optional Apache Beam extra (non-default TF_VERSION only)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tf_version="${TF_VERSION:-}"
if [ -n "$tf_version" ] && ! [[ "$tf_version" =~ ^2\.(1[5-9]|2[0-9])$ ]]; then
  echo "setup: TF_VERSION=$tf_version: give a TensorFlow minor version 2.15-2.21, e.g. TF_VERSION=2.21" >&2
  exit 2
fi
if [ -n "$tf_version" ]; then
  venv="${TFOD_VENV:-$root/.venv-tf$tf_version}"
else
  venv="${TFOD_VENV:-$root/.venv}"
fi
odapi_pin="tf-models-research-object-detection==2.8.0.post1"
lvis_pin="lvis==0.5.3"
beam="${TFOD_SETUP_BEAM:-1}"

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

# The newest tf-models-official (Model Garden) release; a newer TensorFlow gets this one --no-deps,
# because each release pins tensorflow~=<its minor> and tensorflow-text~=<its minor>.
models_newest="2.20"
# Model Garden's dependencies that the API's imports reach, for tf-models-official installed --no-deps
# (measured on TF 2.21: with these, model_builder, model_lib_v2 and exporter_lib_v2 import and train).
models_import_needs="gin-config pandas scipy sentencepiece immutabledict tensorflow-hub tensorflow-model-optimization"

# The requirements for TF_VERSION=X.Y: requirements.txt with the TensorFlow-bound pins replaced.
# $1 = X.Y, $2 = the venv's Python minor (e.g. 3.13).
tf_requirements() {
  local v="$1" py="$2" drop='^(tensorflow|tf-keras|tf-models-official|tensorboard)[=<>~ ]'
  case "$v" in 2.15|2.16|2.17)
    drop='^(tensorflow|tf-keras|tf-models-official|tensorboard|numpy|protobuf|pycocotools|opencv-python-headless)[=<>~ ]'
  esac
  # tensorflow-io 0.37.1 (the last release) has no wheel for Python 3.13.
  if [ "$py" = "3.13" ]; then drop="${drop%)*}|tensorflow-io)[=<>~ ]"; fi
  grep -Ev "$drop" requirements.txt
  echo "tensorflow~=$v.0"
  echo "tf-keras~=$v.0"
  # TF 2.21 no longer depends on tensorboard; tfod_tools reads event files with it.
  echo "tensorboard>=2.15"
  case "$v" in 2.15|2.16|2.17)
    # TF 2.15-2.17 are built against numpy 1.x and protobuf < 5; opencv >= 4.11 and pycocotools >= 2.0.9
    # need numpy 2.
    printf '%s\n' "numpy>=1.26,<2" "protobuf>=4.25,<5" "pycocotools==2.0.8" "opencv-python-headless>=4.9,<4.11"
  esac
  if [ "$(printf '%s\n' "$v" "$models_newest" | sort -V | tail -1)" = "$models_newest" ]; then
    echo "tf-models-official~=$v.0"
  fi
}

if [ -n "$tf_version" ]; then
  if [ -x "$venv/bin/python" ]; then py_exe="$venv/bin/python"; else py_exe="$(pick_python)"; fi
  py_minor="$("$py_exe" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  reqs="$(tf_requirements "$tf_version" "$py_minor")"
  models_no_deps=""
  if ! grep -q '^tf-models-official' <<<"$reqs"; then models_no_deps="tf-models-official==$models_newest.0"; fi
else
  reqs="$(cat requirements.txt)"
  models_no_deps=""
fi

stamp="$venv/.tfod-setup-stamp"
want="$( (echo "$reqs"; cat requirements-test.txt requirements-beam.txt pyproject.toml; echo "$odapi_pin $lvis_pin"; echo "setup-v3"
  if [ -n "$tf_version" ]; then echo "tf=$tf_version beam=$beam $models_no_deps $models_import_needs"; fi) |
  sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/tfod" ]; then
  exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
  py="$(pick_python)"
  echo "setup: creating $venv with $("$py" --version)" >&2
  "$py" -m venv "$venv"
  # A .venv-tfX.Y/ is not in the repository's .gitignore: the venv ignores itself.
  if [ -n "$tf_version" ] && [ ! -f "$venv/.gitignore" ]; then echo '*' > "$venv/.gitignore"; fi
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
export PIP_PROGRESS_BAR=off
echo "setup: installing requirements${tf_version:+ for TensorFlow $tf_version} (first run takes a few minutes)" >&2
# tensorboard 2.20 imports pkg_resources, which setuptools >= 81 no longer ships.
"${pip[@]}" install -q --upgrade pip "setuptools>=70,<81" wheel
if [ -z "$tf_version" ]; then
  "${pip[@]}" install -q -r requirements.txt -r requirements-test.txt -r requirements-beam.txt
else
  extra=(-r requirements-test.txt)
  if [ "$beam" = "1" ]; then extra+=(-r requirements-beam.txt); fi
  # shellcheck disable=SC2086
  "${pip[@]}" install -q -r <(echo "$reqs") "${extra[@]}" ${models_no_deps:+$models_import_needs}
  if [ -n "$models_no_deps" ]; then
    # No Model Garden release for this TensorFlow yet: the newest one, without its tensorflow~= pins.
    "${pip[@]}" install -q --no-deps "$models_no_deps"
  fi
fi
# The API's own metadata pins pyparsing==2.4.7 and pulls Keras 3: install it without dependencies.
# lvis (imported by the API's LVIS evaluator) would pull the GUI opencv-python, whose cv2/ overwrites
# opencv-python-headless's: install it without dependencies too (its real needs come with matplotlib).
"${pip[@]}" install -q --no-deps "$odapi_pin" "$lvis_pin"
if "${pip[@]}" show -q opencv-python >/dev/null 2>&1; then
  "${pip[@]}" uninstall -q -y opencv-python
  "${pip[@]}" install -q --force-reinstall --no-deps -r <(grep -i '^opencv-python-headless' <<<"$reqs")
fi
"${pip[@]}" install -q --no-deps -e .
echo "$want" > "$stamp"
echo "setup: done ($venv)" >&2
