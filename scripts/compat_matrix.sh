#!/usr/bin/env bash
# The compatibility matrix: one cached venv per (TensorFlow, Python) cell, and in each the real workflow.
#
#   scripts/compat_matrix.sh                    every cell, one at a time, in the order below
#   scripts/compat_matrix.sh 2.21/3.11 2.15/3.11   only these cells (TF minor / Python minor)
#   TFOD_MATRIX_DIR=/big/disk scripts/compat_matrix.sh   where venvs and runs go (default workspace/compat)
#
# Per cell: scripts/setup.sh into DIR/venvs/tfX.Y-pyA.B (TF_VERSION=X.Y, without the Beam extra; or the
# repository's own .venv-tfX.Y/ when its Python is A.B; the
# Python is $(pyenv root)/versions/A.B.*), then `tfod doctor --json`; `tfod synth` + `tfod pipeline`
# (tiny-ssd) + `tfod train --num-steps 100`; `tfod evaluate`; stock `model_main_tf2 --checkpoint_dir` on
# the same checkpoint (parity: every COCO value and eval loss within 1e-6); `tfod diagnose`; and a
# fine-tune from that checkpoint (xray-like, 3 classes, fine_tune_checkpoint_type "detection") whose
# step-0 checkpoint must hold the source's feature extractor exactly. Results: DIR/runs/<cell>/result.json,
# and the whole table in DIR/results.json and DIR/results.md (docs/compatibility.md quotes it).
# A cell whose set-up fails (e.g. no wheel for that Python) is recorded as "setup failed" with pip's reason.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
dir="${TFOD_MATRIX_DIR:-$root/workspace/compat}"
mkdir -p "$dir/venvs" "$dir/runs"
export NO_ALBUMENTATIONS_UPDATE=1 TF_CPP_MIN_LOG_LEVEL=2 CUDA_VISIBLE_DEVICES=-1 PIP_PROGRESS_BAR=off

all_cells=(2.21/3.11 2.15/3.11 2.20/3.13 2.20/3.12 2.16/3.11 2.17/3.11 2.18/3.11 2.19/3.11 2.20/3.11
  2.21/3.13 2.21/3.12 2.20/3.10 2.21/3.10)
if [ "$#" -gt 0 ]; then cells=("$@"); else cells=("${all_cells[@]}"); fi

python_for() {  # $1 = A.B: the newest pyenv-installed A.B.*
  local base
  base="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")/versions"
  find "$base" -maxdepth 1 -name "$1.*" 2>/dev/null | sort -V | tail -1 | sed 's|$|/bin/python'"$1"'|'
}

driver="$(cat <<'PY'
"""One matrix cell's real workflow, run with the cell's own Python (argv: run dir, cell name)."""
import json, os, re, subprocess, sys, time
from importlib import metadata
from pathlib import Path

run, cell = Path(sys.argv[1]), sys.argv[2]
bin_dir = Path(sys.executable).parent
tfod = str(bin_dir / "tfod")
steps: dict = {}
result: dict = {"cell": cell, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "steps": steps}
KEY = ["tensorflow", "tf-keras", "keras", "tf-models-official", "tensorflow-text", "tensorflow-io",
       "protobuf", "numpy", "pycocotools", "opencv-python-headless", "pillow", "tf-slim",
       "tf-models-research-object-detection", "tfod_tools"]
versions = {}
for name in KEY:
    try:
        versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        versions[name] = None
result["python"] = sys.version.split()[0]
result["versions"] = versions


def step(name, args, timeout=1500, parse=True):
    t0 = time.time()
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired:
        rc, out, err = 124, "", f"timed out after {timeout} s"
    entry = {"rc": rc, "seconds": round(time.time() - t0, 1)}
    if rc != 0:
        entry["error"] = (err or out)[-1500:]
    steps[name] = entry
    data = None
    if parse and out.strip():
        try:
            data = json.loads(out)
        except ValueError:
            entry.setdefault("error", "stdout is not JSON: " + out[-300:])
    return rc, data


def finish(status):
    result["status"] = status
    result["seconds"] = round(time.time() - start, 1)
    (run / "result.json").write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps({"cell": cell, "status": status}))
    sys.exit(0)


def on_error(kind, value, tb):  # a bug or surprise in this driver still leaves a result.json
    steps["driver"] = {"rc": 1, "error": f"{kind.__name__}: {value}"[-1500:]}
    finish(f"driver error: {kind.__name__}")


sys.excepthook = on_error
start = time.time()
rc, doctor = step("doctor", [tfod, "doctor", "--json"], timeout=600)
if doctor:
    result["doctor_ok"] = doctor.get("ok")
    result["doctor_problems"] = [f"{c['name']}: {c['status']}: {c['detail']}" for c in doctor["checks"]
                                 if c["status"] == "fail"]
    imp = next((c for c in doctor["checks"] if c["name"] == "object_detection import"), None)
    m = re.search(r"applied: ([^)]*)\)", imp["detail"]) if imp else None
    result["compat_applied"] = m.group(1).split(", ") if m else []
# A failed check (e.g. tensorflow-io, absent on Python 3.13, which the layer stands in for) is recorded;
# the cell stops only when the API itself does not import under the layer.
if not doctor or not imp or imp["status"] == "fail":
    finish("doctor failed")

data = run / "shapes"
model = run / "model"
pipeline = run / "pipeline.config"
rc, _ = step("synth", [tfod, "synth", "--out", str(data), "--train-images", "32", "--eval-images", "8",
                       "--image-size", "128", "--seed", "0", "--json"])
rc2, _ = step("pipeline", [tfod, "pipeline", "--template", "tiny-ssd", "--label-map", str(data / "label_map.pbtxt"),
                           "--train-records", str(data / "train.record"), "--eval-records", str(data / "eval.record"),
                           "--out", str(pipeline), "--num-steps", "100", "--json"])
if rc or rc2:
    finish("synth/pipeline failed")
rc, trained = step("train", [tfod, "train", "--pipeline", str(pipeline), "--model-dir", str(model),
                             "--num-steps", "100", "--checkpoint-every", "100", "--json"])
if rc:
    log = model / "logs" / "train.log"
    if log.exists():
        steps["train"]["error"] += "\n--- train.log:\n" + log.read_text()[-1500:]
    finish("train failed")
rc, ours = step("evaluate", [tfod, "evaluate", "--pipeline", str(pipeline), "--model-dir", str(model),
                             "--checkpoints", "100", "--json"])
if rc or not ours:
    finish("evaluate failed")
entry = ours["evaluated"][0]
result["mAP"] = entry["metrics"].get("DetectionBoxes_Precision/mAP")

# Parity: stock model_main_tf2 (under the layer) on the same checkpoint, alone in its directory.
only = run / "only_final"
only.mkdir(exist_ok=True)
ckpt = entry["checkpoint"]
for f in model.glob(ckpt + ".*"):
    if not (only / f.name).exists():
        os.link(f, only / f.name)
(only / "checkpoint").write_text(f'model_checkpoint_path: "{ckpt}"\nall_model_checkpoint_paths: "{ckpt}"\n')
stock_dir = run / "stock"
rc, _ = step("stock_eval", [sys.executable, "-m", "tfod_tools.odapi.model_main",
                            f"--pipeline_config_path={pipeline}", f"--model_dir={stock_dir}",
                            f"--checkpoint_dir={only}", "--eval_timeout=30"], parse=False)
if rc:
    finish("stock model_main_tf2 failed")
from tfod_tools.metrics.coco import COCO_TAGS
from tfod_tools.tensorboard.reader import read_scalars

stock = {p.tag: p.value for p in read_scalars(stock_dir) if p.run == "eval" and p.step == entry["step"]}
tags = [*COCO_TAGS.values(), "Loss/localization_loss", "Loss/classification_loss",
        "Loss/regularization_loss", "Loss/total_loss"]
missing = [t for t in tags if t not in stock or t not in entry["metrics"]]
diffs = {t: abs(float(entry["metrics"][t]) - float(stock[t])) for t in tags if t not in missing}
worst = max(diffs, key=diffs.get) if diffs else None
result["parity"] = {"max_abs_diff": diffs.get(worst) if worst else None, "worst_tag": worst, "missing": missing,
                    "ok": not missing and max(diffs.values()) <= 1e-6}

rc, diag = step("diagnose", [tfod, "diagnose", "--model-dir", str(model), "--pipeline", str(pipeline), "--json"])

# Fine-tune: xray-like, 3 classes, from the trained checkpoint.
from tfod_tools.odapi.label_map import write_label_map

xray = run / "xray"
rc, _ = step("synth_xray", [tfod, "synth", "--kind", "xray-like", "--out", str(xray), "--train-images", "16",
                            "--eval-images", "4", "--image-size", "128", "--seed", "3", "--json"])
write_label_map(xray / "label_map.pbtxt", {1: "opacity", 2: "nodule", 3: "effusion"})
source = model / ckpt
ft_pipeline, ft_model = run / "ft.config", run / "ft_model"
rc2, rendered = step("ft_pipeline", [tfod, "pipeline", "--template", "tiny-ssd", "--label-map",
                                     str(xray / "label_map.pbtxt"), "--train-records", str(xray / "train.record"),
                                     "--eval-records", str(xray / "eval.record"), "--out", str(ft_pipeline),
                                     "--num-steps", "100", "--fine-tune-checkpoint", str(source), "--json"])
rc3, _ = step("ft_train", [tfod, "train", "--pipeline", str(ft_pipeline), "--model-dir", str(ft_model),
                           "--num-steps", "100", "--checkpoint-every", "100", "--json"])
fine = {"ok": False}
if not (rc or rc2 or rc3):
    from tfod_tools.odapi.restored import compare_restore

    # (the source's own ckpt-1, step 0 of a from-scratch run, holds no model weights to compare with)
    check = compare_restore(source, ft_model / "ckpt-1", ft_model / "ckpt-2")
    fine = {"backbone_variables": check.variables, "restored_exactly": check.restored_exactly,
            "moved_by_training": check.moved_by_training,
            "num_classes": (rendered or {}).get("num_classes"),
            "ok": check.variables > 100 and check.ok}
result["fine_tune"] = fine
failed = [name for name, s in steps.items() if s["rc"] != 0 and name != "doctor"]
if failed:
    finish("failed: " + ", ".join(failed))
if not result.get("doctor_ok"):
    finish("runs; doctor not ok")
if not result["parity"]["ok"]:
    finish("parity off")
if not fine["ok"]:
    finish("fine-tune check failed")
finish("pass")
PY
)"

for cell in "${cells[@]}"; do
  tf="${cell%/*}"; pyv="${cell#*/}"; name="tf$tf-py$pyv"
  venv="$dir/venvs/$name"; run="$dir/runs/$name"
  rm -rf "$run"; mkdir -p "$run"
  echo "matrix: $cell: set-up ($(date -u +%H:%M:%S))" >&2
  py="$(python_for "$pyv")"
  t0=$(date +%s)
  if [ -z "$py" ] || [ ! -x "$py" ]; then
    printf '{"cell": "%s", "status": "skipped: no Python %s under pyenv"}\n' "$cell" "$pyv" > "$run/result.json"
    continue
  fi
  beam=0
  # The CI leg's .venv-tfX.Y/ (make test-newest) serves its cell when the Python matches.
  own="$root/.venv-tf$tf"
  if [ -x "$own/bin/python" ] && [ "$("$own/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = "$pyv" ]; then
    venv="$own"  # without Beam, as `make test-newest` builds it
  fi
  if ! TF_VERSION="$tf" PYTHON="$py" TFOD_VENV="$venv" TFOD_SETUP_BEAM=$beam bash scripts/setup.sh > "$run/setup.log" 2>&1; then
    reason="$(grep -E 'ERROR|No matching distribution|Could not find' "$run/setup.log" | grep -v 'is ignored' | head -3 | tr '\n"' '  ')"
    printf '{"cell": "%s", "status": "setup failed", "setup_seconds": %s, "reason": "%s"}\n' \
      "$cell" "$(($(date +%s) - t0))" "$reason" > "$run/result.json"
    echo "matrix: $cell: setup failed: $reason" >&2
    continue
  fi
  setup_s=$(($(date +%s) - t0))
  echo "matrix: $cell: workflow ($(date -u +%H:%M:%S), set-up took ${setup_s}s)" >&2
  "$venv/bin/python" -c "$driver" "$run" "$cell" > "$run/driver.log" 2>&1
  "$venv/bin/python" - "$run/result.json" "$setup_s" <<'PY' || echo "matrix: $cell: no result" >&2
import json, sys
path, setup = sys.argv[1], int(sys.argv[2])
data = json.load(open(path))
data["setup_seconds"] = setup
json.dump(data, open(path, "w"), indent=2)
print("matrix:", data["cell"], data["status"], file=sys.stderr)
PY
done

# The table over every cell that has a result (this run's and earlier ones).
python3 - "$dir" <<'PY'
import json, sys
from pathlib import Path

d = Path(sys.argv[1])
rows = []
for f in sorted((d / "runs").glob("*/result.json")):
    rows.append(json.loads(f.read_text()))
(d / "results.json").write_text(json.dumps(rows, indent=2))
out = ["| TF / Python | result | date | set-up + run (s) | installed | layer applied | mAP | parity max diff | fine-tune |",
       "|---|---|---|---|---|---|---|---|---|"]
for r in rows:
    v = r.get("versions") or {}
    keys = ["tensorflow", "tf-keras", "tf-models-official", "protobuf", "numpy", "tensorflow-io", "pycocotools"]
    installed = ", ".join(f"{k} {v.get(k) or '-'}" for k in keys) if v else r.get("reason", "")
    parity = (r.get("parity") or {}).get("max_abs_diff")
    ft = r.get("fine_tune") or {}
    ftxt = (f"{ft.get('restored_exactly')}/{ft.get('backbone_variables')} restored" if "backbone_variables" in ft else "-")
    out.append(
        f"| {r['cell']} (py {r.get('python', '-')}) | {r['status']} | {r.get('date', '-')} | "
        f"{r.get('setup_seconds', '-')} + {r.get('seconds', '-')} | {installed} | "
        f"{', '.join(r.get('compat_applied', [])) or '-'} | "
        f"{'%.4f' % r['mAP'] if isinstance(r.get('mAP'), float) else '-'} | "
        f"{'%.2g' % parity if parity is not None else '-'} | {ftxt} |"
    )
(d / "results.md").write_text("\n".join(out) + "\n")
print("\n".join(out))
PY
