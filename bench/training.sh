#!/usr/bin/env bash
# Training benchmark (issue 5): LightGBM through quantpipe vs Python LightGBM 4.7.0 on the same
# 200,000 × 50 FILUSDT matrix, same parameters, 2 threads, same run; checks the models are identical.
set -euo pipefail
cd "$(dirname "$0")/.."
file="${QUANTPIPE_SHARED_DATA:-$(cd .. && pwd)/shared/data}/filusdt_perp_1m_2023.csv.gz"
[ -f "$file" ] || { echo "error: $file not found (set QUANTPIPE_SHARED_DATA)" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv && .venv/bin/pip install -q -r tests/requirements.txt
fi
export CMAKE="$PWD/.venv/bin/cmake"
cargo build --release --quiet -p quantpipe-models --example bench_training
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
q=$("${CARGO_TARGET_DIR:-target}/release/examples/bench_training" "$file" "$work")
p=$(.venv/bin/python bench/training_python.py "$work")
python3 - "$q" "$p" <<'PY'
import json, sys
q, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
q.update(p)
q["overhead_vs_python_pct"] = round(100 * (q["quantpipe_train_s"] / q["python_train_s"] - 1), 1)
print(json.dumps(q, indent=2))
PY
