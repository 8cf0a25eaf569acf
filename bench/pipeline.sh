#!/usr/bin/env bash
# End-to-end pipeline benchmark (issue 7): `quantpipe run bench/pipeline.toml` against the same job in
# Python (bench/pipeline_python.py: pandas + TA-Lib + LightGBM + scikit-learn), same data (FILUSDT 1m,
# 347,040 bars), same features (the TA-Lib-covered part of the standard set), same label, splits,
# LightGBM parameters and thread count; wall time of each whole job (process start to exit), best of
# two runs, and the out-of-sample AUC of each.
set -euo pipefail
cd "$(dirname "$0")/.."
export QUANTPIPE_SHARED_DATA="${QUANTPIPE_SHARED_DATA:-$(cd .. && pwd)/shared/data}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv && .venv/bin/pip install -q -r tests/requirements.txt
fi
export CMAKE="${CMAKE:-$PWD/.venv/bin/cmake}"
cargo build --release --quiet -p quantpipe-cli -p quantpipe-features --bin quantpipe --example bench_features
target="${CARGO_TARGET_DIR:-target}/release"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$target/examples/bench_features" spec "$work/spec.json"
"$target/examples/bench_features" set "$work/set.toml"
export QUANTPIPE_BENCH_SET="$work/set.toml"
best() { sort -n | head -1; }
q_times=(); p_times=()
for run in 1 2; do
  t0=$(date +%s.%N)
  QUANTPIPE_HOME="$work/home$run" "$target/quantpipe" run bench/pipeline.toml --out "$work/run$run" --json > "$work/q$run.json"
  t1=$(date +%s.%N)
  q_times+=("$(echo "$t1 - $t0" | bc)")
  t0=$(date +%s.%N)
  .venv/bin/python bench/pipeline_python.py bench/pipeline.toml "$work/spec.json" "$work/py$run" > "$work/p$run.json"
  t1=$(date +%s.%N)
  p_times+=("$(echo "$t1 - $t0" | bc)")
done
q=$(printf '%s\n' "${q_times[@]}" | best)
p=$(printf '%s\n' "${p_times[@]}" | best)
.venv/bin/python - "$work/q1.json" "$work/p1.json" "$q" "$p" <<'PY'
import json, sys
q, p = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
qs, ps = float(sys.argv[3]), float(sys.argv[4])
m = q["models"][0]
stages = {s["stage"]: round(s["seconds"], 2) for s in q["stages"]}
print(json.dumps({
    "quantpipe_s": round(qs, 2), "python_s": round(ps, 2), "speedup": round(ps / qs, 2),
    "quantpipe_auc": m["oos_scores"]["roc_auc"], "python_auc": p["python_auc"],
    "auc_difference": abs(m["oos_scores"]["roc_auc"] - p["python_auc"]),
    "quantpipe_oos_rows": m["oos_rows"], "python_oos_rows": p["python_oos_rows"],
    "features": q["features"], "python_features": p["python_features"],
    "quantpipe_stages_s": stages, "python_stages_s": p["python_stages_s"],
}, indent=2))
PY
