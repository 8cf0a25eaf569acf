#!/usr/bin/env bash
# Inference benchmark (issue 5): one row and 100 rows of a 200-tree LightGBM model on 50 FILUSDT
# features: LightGBM's C API vs quantpipe's in-process evaluator vs Python LightGBM, same run.
set -euo pipefail
cd "$(dirname "$0")/.."
file="${QUANTPIPE_SHARED_DATA:-$(cd .. && pwd)/shared/data}/filusdt_perp_1m_2023.csv.gz"
[ -f "$file" ] || { echo "error: $file not found (set QUANTPIPE_SHARED_DATA)" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv && .venv/bin/pip install -q -r tests/requirements.txt
fi
export CMAKE="$PWD/.venv/bin/cmake"
cargo build --release --quiet -p quantpipe-models --example bench_inference
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
q=$("${CARGO_TARGET_DIR:-target}/release/examples/bench_inference" "$file" "$work")
p=$(.venv/bin/python bench/inference_python.py "$work")
python3 - "$q" "$p" <<'PY'
import json, sys
q, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
q.update(p)
q["speedup_one_row_vs_c_api"] = round(q["c_api_one_row_us"] / q["quantpipe_one_row_us"], 2)
q["speedup_100_rows_vs_c_api"] = round(q["c_api_100_rows_us"] / q["quantpipe_100_rows_us"], 2)
q["speedup_one_row_vs_python"] = round(q["python_one_row_us"] / q["quantpipe_one_row_us"], 2)
print(json.dumps(q, indent=2))
PY
