#!/usr/bin/env bash
# Backtest benchmark (issue 4): quantpipe vs vectorbt (warm) vs a plain numpy backtest on the same
# 1,041,120-bar signal (FILUSDT 1m tiled three times), same run; plus purged k-fold of 1M rows.
# usage: bench/backtest.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-7}"
file="${QUANTPIPE_SHARED_DATA:-$(cd .. && pwd)/shared/data}/filusdt_perp_1m_2023.csv.gz"
[ -f "$file" ] || { echo "error: $file not found (set QUANTPIPE_SHARED_DATA)" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv && .venv/bin/pip install -q -r tests/requirements.txt
fi
cargo build --release --quiet -p quantpipe-eval --example bench_backtest
bin="${CARGO_TARGET_DIR:-target}/release/examples/bench_backtest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The signal: the sign of a 60-bar z-score (mean reversion), decided once an hour and held.
.venv/bin/python - "$file" "$work" <<'PY'
import sys, numpy as np, pandas as pd
close = pd.read_csv(sys.argv[1], usecols=["close"]).close.to_numpy()
close = np.tile(close, 3)
c = pd.Series(close)
z = ((c - c.rolling(60).mean()) / c.rolling(60).std(ddof=0)).fillna(0).to_numpy()
signal = np.where(z > 2, -1.0, np.where(z < -2, 1.0, 0.0))
hourly = signal[np.arange(len(signal)) // 60 * 60]
close.astype("<f8").tofile(f"{sys.argv[2]}/close.f64")
hourly.astype("<f8").tofile(f"{sys.argv[2]}/target.f64")
PY
q=$("$bin" "$work" "$runs")
p=$(.venv/bin/python bench/backtest_python.py "$work" "$runs")
python3 - "$q" "$p" <<'PY'
import json, sys
q, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
q.update(p)
q["speedup_vs_vectorbt"] = round(p["vectorbt_s"] / q["quantpipe_backtest_s"], 2)
q["speedup_vs_numpy"] = round(p["numpy_s"] / q["quantpipe_backtest_s"], 2)
print(json.dumps(q, indent=2))
PY
