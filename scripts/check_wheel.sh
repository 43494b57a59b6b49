#!/usr/bin/env bash
# Build the tfod_tools wheel, install it into a fresh virtualenv (dependencies from PyPI, no
# TensorFlow) and run every TensorFlow-free command on small data, as a new user would after
# `pip install .`. `make test` runs it (so does CI, through .ci/run).
#
#   scripts/check_wheel.sh                 build with .venv/bin/python, test with its base interpreter
#   PYTHON=python3.12 scripts/check_wheel.sh   pick the fresh venv's interpreter (3.10-3.13)
#   KEEP=1 scripts/check_wheel.sh          keep the work directory (printed at the end)
#
# pip's cache (~/.cache/pip) makes a rerun fast; the first run downloads ~150 MB of wheels.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
builder="${BUILDER_PYTHON:-$root/.venv/bin/python}"
python="${PYTHON:-$("$builder" -c 'import sys; print(sys._base_executable)')}"
work="$(mktemp -d "${TMPDIR:-/tmp}/tfod-check-wheel.XXXXXX")"
cleanup() { if [ -z "${KEEP:-}" ]; then rm -rf "$work"; fi; }
trap cleanup EXIT
started=$SECONDS
step() { echo "check_wheel: [$((SECONDS - started))s] $*" >&2; }
fail() { echo "check_wheel: FAILED: $*" >&2; exit 1; }
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off NO_ALBUMENTATIONS_UPDATE=1

# 1. The wheel, built from the files git tracks or would track (a copy: no build/ in the checkout).
step "building the wheel"
mkdir -p "$work/src" "$work/dist"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' file; do
    if [ -e "$file" ]; then printf '%s\0' "$file"; fi
  done | tar -C "$root" --null -T - -cf - | tar -C "$work/src" -xf -
else  # an unpacked source archive
  tar -C "$root" --exclude=./.venv --exclude=./workspace --exclude=./build --exclude='*.egg-info' -cf - . \
    | tar -C "$work/src" -xf -
fi
"$builder" -m pip wheel -q --no-deps --no-build-isolation "$work/src" -w "$work/dist" >&2
wheel="$(ls "$work/dist"/tfod_tools-*.whl)"
"$builder" - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
for needed in ("tfod_tools/py.typed", "tfod_tools/resources/pipelines/", "tfod_tools/resources/augment/"):
    assert any(n.startswith(needed) for n in names), f"the wheel lacks {needed}"
assert not any(n.startswith(("tests/", "scripts/")) for n in names), "the wheel ships tests or scripts"
PY

# 2. A fresh virtualenv with the wheel and its declared dependencies only.
step "installing $(basename "$wheel") into a fresh venv ($("$python" --version))"
"$python" -m venv "$work/venv"
venv_py="$work/venv/bin/python"
"$venv_py" -m pip install -q --no-compile "$wheel" >&2
if "$venv_py" -m pip show -q tensorflow >/dev/null 2>&1; then
  fail "pip install of the wheel pulled in TensorFlow"
fi
tfod="$work/venv/bin/tfod"

# 3. Every TensorFlow-free command, from a directory without the source tree, on small data.
mkdir -p "$work/run" && cd "$work/run"
no_tf() {  # run `tfod ARGS...` in-process and fail if it imported TensorFlow or the API
  "$venv_py" - "$@" <<'PY'
import sys
from tfod_tools.cli.app import main
code = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "object_detection", "tf_keras"))
if heavy:
    sys.exit(f"tfod {sys.argv[1]} imported {heavy[:3]}")
sys.exit(code)
PY
}
step "tfod --version, --help"
"$tfod" --version | grep -q '^tfod ' || fail "tfod --version"
"$tfod" --help >/dev/null
step "synth"
no_tf synth --out data --train-images 12 --eval-images 4 --seed 1 --quiet >/dev/null
no_tf synth --kind xray-like --out xray --train-images 6 --eval-images 2 --seed 1 --quiet --json >/dev/null
step "inspect"
no_tf inspect data/train.record --label-map data/label_map.pbtxt --json >inspect.json
"$venv_py" -c 'import json,sys; d=json.load(open("inspect.json")); assert d["images"] == 12, d["images"]' \
  || fail "inspect counted the wrong number of images"
step "balance"
no_tf balance --input data/train.record --label-map data/label_map.pbtxt --out bal/train.record \
  --recipe natural --strategy oversample --quiet --json >balance.json
[ -s bal/train.record ] || fail "balance wrote no records"
step "convert (records -> COCO JSON + images -> records)"
"$venv_py" - <<'PY'
import json, pathlib
from tfod_tools.data.records import iter_image_records
out = pathlib.Path("coco"); (out / "images").mkdir(parents=True)
images, annotations = [], []
for i, (_, _, rec) in enumerate(iter_image_records("data/eval.record"), start=1):
    name = f"{i:03d}.jpg"
    (out / "images" / name).write_bytes(rec.encoded)
    images.append({"id": i, "file_name": name, "width": rec.width, "height": rec.height})
    for x1, y1, x2, y2, label in zip(rec.xmin, rec.ymin, rec.xmax, rec.ymax, rec.class_label):
        w, h = (x2 - x1) * rec.width, (y2 - y1) * rec.height
        annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": label, "iscrowd": 0,
                            "bbox": [x1 * rec.width, y1 * rec.height, w, h], "area": w * h})
cats = [{"id": 1, "name": "square"}, {"id": 2, "name": "triangle"}]
(out / "instances.json").write_text(json.dumps({"images": images, "annotations": annotations, "categories": cats}))
PY
no_tf convert --from coco -a coco/instances.json -i coco/images -o converted/eval.record --quiet >/dev/null
no_tf inspect converted/eval.record --label-map converted/label_map.pbtxt --json >converted.json
"$venv_py" -c 'import json; d=json.load(open("converted.json")); assert d["images"] == 4, d["images"]' \
  || fail "convert lost images"
step "metrics (COCO, against pycocotools' numbers)"
ref="$root/tests/data/coco_val2014_100"
no_tf metrics --gt "$ref/instances_val2014_100.json" --dt "$ref/instances_val2014_fakebbox100_results.json" \
  --json >metrics.json
"$venv_py" - "$ref/expected.json" <<'PY' || fail "metrics differ from pycocotools"
import json, sys
got, want = json.load(open("metrics.json"))["stats"], json.load(open(sys.argv[1]))["bbox"]
assert all(abs(got[k] - want[k]) < 1e-12 for k in want), (got, want)
PY
no_tf metrics --gt "$ref/instances_val2014_100.json" --dt "$ref/instances_val2014_fakebbox100_results.json" \
  --protocol voc07 >/dev/null
step "curves, diagnose (event files written by tfod_tools' own writer)"
"$venv_py" - <<'PY'
from pathlib import Path
from tfod_tools.tensorboard.reader import ScalarPoint
from tfod_tools.tensorboard.writer import write_scalars_file
m = Path("model")
write_scalars_file(m / "train", [ScalarPoint("train", "Loss/total_loss", s, 2.0 - s / 400, 1e3 + s) for s in (100, 200, 300)])
tags = {"DetectionBoxes_Precision/mAP": 0.1, "DetectionBoxes_Precision/mAP (large)": -1.0, "Loss/total_loss": 1.5}
write_scalars_file(m / "eval", [ScalarPoint("eval", t, s, v, 2e3 + s) for s in (100, 200, 300) for t, v in tags.items()])
PY
no_tf curves --model-dir model --out curves.csv --plot curves.png >/dev/null
[ -s curves.csv ] && [ -s curves.png ] || fail "curves wrote no table or plot"
no_tf diagnose --model-dir model --html report.html --json >diagnose.json
grep -q undefined_area_metric diagnose.json || fail "diagnose missed the -1 large-object metric"
[ -s report.html ] || fail "diagnose wrote no HTML report"
step "commands that need the API, without it: one line and exit 2, no traceback"
expect_2() {  # expect_2 NAME ARGS...: `tfod ARGS` exits 2 with one "error:" line on stderr
  local name="$1" code=0; shift
  "$tfod" "$@" >/dev/null 2>"$name.err" || code=$?
  [ "$code" = 2 ] && [ "$(wc -l <"$name.err")" = 1 ] && grep -q '^error: ' "$name.err" \
    || fail "tfod $1: exit $code: $(cat "$name.err")"
}
expect_2 pipeline pipeline --template tiny-ssd --label-map data/label_map.pbtxt \
  --train-records data/train.record --eval-records data/eval.record --out pipeline.config
expect_2 evaluate evaluate --pipeline pipeline.config --model-dir model
[ ! -e pipeline.config ] && [ ! -e model/logs ] || fail "a failed command left files behind"
step "ok: the wheel's TensorFlow-free commands work in a fresh venv ($work)"
