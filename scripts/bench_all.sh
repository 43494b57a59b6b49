#!/usr/bin/env bash
# Run every benchmark script in scripts/ (bench_*.py) one after the other and print one summary table
# of the ratios each reports against its peers. Each script's full output is kept in the log folder.
#
#   bash scripts/bench_all.sh                 # full sizes (make bench)
#   bash scripts/bench_all.sh --quick         # smaller inputs where a script has a size option
#   bash scripts/bench_all.sh --only metrics  # one benchmark (name without bench_ and .py)
#   BENCH_LOGS=/tmp/b bash scripts/bench_all.sh   # where the logs go [a new temp folder]
#
# How each script's ratios are read (nothing is re-measured here):
#   bench_metrics.py   the Markdown table's "time ratio tfod_tools / engine" column
#   bench_evaluate.py  its --out JSON: "ratio" (tfod evaluate wall time / stock model_main_tf2's)
#   any other script   its --json output when it has that flag (keys named *ratio*, *speedup*,
#                      *overhead*), else every line of the form "<what>: <number>x (target ...)" or
#                      "... ratio ... <number>"
# The exit code is 1 if a benchmark failed (its row says so); the table is printed either way.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export NO_ALBUMENTATIONS_UPDATE=1 TF_CPP_MIN_LOG_LEVEL=2
QUICK=0
ONLY=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --only) ONLY="$2"; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (use --quick, --only NAME)" >&2; exit 2 ;;
  esac
  shift
done
LOGS=${BENCH_LOGS:-$(mktemp -d -t tfod_bench.XXXXXX)}
mkdir -p "$LOGS"

args_for() {  # extra arguments per script
  local name=$1
  case "$name" in
    metrics) [[ $QUICK == 1 ]] && echo "--images 500" ;;
    evaluate) echo "--out $LOGS/evaluate.json"; [[ $QUICK == 1 ]] && echo "--steps 200 --eval-images 16" ;;
    balance) [[ $QUICK == 1 ]] && echo "--images 100 --repeat 1" ;;
  esac
  if [[ $name != evaluate ]] && grep -q -- 'add_argument("--json"' "scripts/bench_$name.py"; then echo "--json"; fi
}

status=0
ran=()
for script in scripts/bench_*.py; do
  [[ -e $script ]] || continue
  name=$(basename "$script" .py); name=${name#bench_}
  [[ -n $ONLY && $name != "$ONLY" ]] && continue
  # shellcheck disable=SC2046
  extra=$(args_for "$name" | tr '\n' ' ')
  echo "== $script $extra(log: $LOGS/$name.log)" >&2
  start=$(date +%s)
  # shellcheck disable=SC2086
  if "$PY" "$script" $extra >"$LOGS/$name.log" 2>"$LOGS/$name.err"; then
    echo "ok" >"$LOGS/$name.status"
  else
    echo "failed (exit $?)" >"$LOGS/$name.status"
    status=1
  fi
  echo "$(( $(date +%s) - start ))" >"$LOGS/$name.seconds"
  ran+=("$name")
done
if [[ ${#ran[@]} -eq 0 ]]; then
  echo "no benchmark script matched (scripts/bench_*.py${ONLY:+, --only $ONLY})" >&2
  exit 2
fi

"$PY" - "$LOGS" "${ran[@]}" <<'EOF'
"""Parse each benchmark's output into (benchmark, comparison, ratio, target) rows and print them."""
import json
import re
import sys
from pathlib import Path

logs = Path(sys.argv[1])
rows = []


def number(text):
    match = re.search(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text)
    return None if match is None else float(match.group(0))


def last_json(text):
    """The last top-level JSON object in a script's stdout, or None."""
    for start in [m.start() for m in re.finditer(r"^\{", text, re.M)][::-1]:
        try:
            return json.loads(text[start:])
        except ValueError:
            continue
    return None


def metrics(text):
    out = []
    header = None
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and any("ratio" in c for c in cells):
            header = cells
            continue
        if header and line.startswith("|") and len(cells) == len(header) and not cells[0].startswith("-"):
            col = next(i for i, c in enumerate(header) if "ratio" in c)
            if cells[0] != "tfod_tools":
                target = {"faster-coco-eval": "<= 0.5", "pycocotools": "<= 0.1"}.get(cells[0], "")
                out.append((f"time tfod_tools / {cells[0]}", number(cells[col]), target))
    return out


def diagnose(text):
    """bench_diagnose.py has no peer: its rows are median wall seconds (target: 5 s to diagnose)."""
    out = []
    for line in text.splitlines():
        m = re.match(r"(.+?)\s+wall median (\d+(?:\.\d+)?) s", line)
        if m:
            label = m.group(1).strip()
            out.append((f"{label}: wall median, seconds", float(m.group(2)), "" if "html" in label else "<= 5 s"))
    return out


def generic(text):
    """Lines "<what>: <number>x (target ...)" when the output has targets, else its --json ratios."""
    lines = []
    for line in text.splitlines():
        m = re.match(r"\s*(.+?):\s*(-?\d+(?:\.\d+)?)x\b\s*(\(target[^)]*\))?", line)
        if m:
            lines.append((m.group(1), float(m.group(2)), (m.group(3) or "").strip("()").replace("target ", "")))
        elif "ratio" in line.lower() and not line.startswith("|---"):
            value = number(line.split("ratio", 1)[-1])
            if value is not None:
                lines.append((line.strip(" |*")[:60], value, ""))
    if any(target for _, _, target in lines):
        return lines
    doc = last_json(text)
    from_json = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if isinstance(value, (int, float)) and re.search(r"ratio|speedup|speed_up|overhead", key):
                from_json.append((key, float(value), ""))
    return from_json or lines


for name in sys.argv[2:]:
    text = (logs / f"{name}.log").read_text(errors="replace")
    status = (logs / f"{name}.status").read_text().strip()
    seconds = (logs / f"{name}.seconds").read_text().strip()
    found = []
    if status == "ok":
        if name == "metrics":
            found = metrics(text)
        elif name == "diagnose":
            found = diagnose(text)
        elif name == "evaluate" and (logs / "evaluate.json").is_file():
            doc = json.loads((logs / "evaluate.json").read_text())
            found = [("wall time tfod evaluate / stock model_main_tf2 (all checkpoints)", doc["ratio"], "<= 0.2")]
        else:
            found = generic(text)
    if not found:
        why = status if status != "ok" else "no ratio found in its output"
        rows.append((name, why, None, "", seconds))
    for comparison, value, target in found:
        rows.append((name, comparison, value, target, seconds))

print("| benchmark | comparison | value (x: ratio; s: seconds) | target | run time (s) |")
print("|---|---|---:|---|---:|")
for name, comparison, value, target, seconds in rows:
    shown = "-" if value is None else f"{value:.3f}"
    print(f"| {name} | {comparison} | {shown} | {target} | {seconds} |")
print(f"\nfull outputs: {logs}/<benchmark>.log", file=sys.stderr)
EOF
exit $status
