#!/usr/bin/env bash
# Feature-engine benchmark (issue 3): quantpipe vs Python TA-Lib on 1,041,120 bars (FILUSDT 1m tiled
# three times), compute only, same run: quantpipe on one thread and on every core (indicators side by
# side; TA-Lib has no such mode), TA-Lib on one; plus streaming update latency.
set -euo pipefail
cd "$(dirname "$0")/.."
file="${QUANTPIPE_SHARED_DATA:-$(cd .. && pwd)/shared/data}/filusdt_perp_1m_2023.csv.gz"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv && .venv/bin/pip install -q -r tests/requirements.txt
fi
cargo build --release --quiet -p quantpipe-features --example bench_features
bin="${CARGO_TARGET_DIR:-target}/release/examples/bench_features"
work=$(mktemp -d)
.venv/bin/python - "$file" "$work" <<'PY'
import gzip, sys, numpy as np
rows = [l.split(",") for l in gzip.open(sys.argv[1], "rt").read().splitlines()[1:]]
a = np.array([[float(r[i]) for i in (1, 2, 3, 4, 5)] for r in rows])
a = np.tile(a, (3, 1))
for k, name in enumerate(["open", "high", "low", "close", "volume"]):
    np.ascontiguousarray(a[:, k]).astype("<f8").tofile(f"{sys.argv[2]}/{name}.f64")
PY
"$bin" spec "$work/spec.json"
q=$("$bin" run "$work")
t=$(.venv/bin/python bench/features_talib.py "$work/spec.json" "$work")
"$bin" per "$work" "$work/per.json"
per_table=$(.venv/bin/python bench/features_talib.py --per "$work/per.json" "$work")
rm -rf "$work"
python3 - "$q" "$t" <<'PY'
import json, sys
q, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
q.update(t)
q["speedup_talib_covered"] = round(t["talib_s"] / q["quantpipe_talib_covered_s"], 2)
q["speedup_talib_covered_all_cores"] = round(t["talib_s"] / q["quantpipe_talib_covered_all_cores_s"], 2)
q["speedup_talib_covered_first_rounds"] = round(t["talib_first_s"] / q["quantpipe_talib_covered_first_s"], 2)
print(json.dumps(q, indent=2))
PY
echo "each TA-Lib-covered indicator alone, one thread, best of 3 (slowest relative to TA-Lib first):"
echo "$per_table"
echo "multi-symbol (S&P 500 daily, standard set):"
cargo build --release --quiet -p quantpipe-features --example bench_many
"${CARGO_TARGET_DIR:-target}/release/examples/bench_many" "$(dirname "$file")/sp500_daily_5yr.csv.gz"
