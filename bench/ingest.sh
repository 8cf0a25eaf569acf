#!/usr/bin/env bash
# Ingest benchmark (issue 2): quantpipe vs pandas on the 347k-row FILUSDT file, same run, same machine.
set -euo pipefail
cd "$(dirname "$0")/.."
file="${QUANTPIPE_SHARED_DATA:-$(cd .. && pwd)/shared/data}/filusdt_perp_1m_2023.csv.gz"
[ -f "$file" ] || { echo "error: $file not found (set QUANTPIPE_SHARED_DATA)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "error: /usr/bin/time is missing: apt-get install -y time" >&2; exit 1; }
if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install -q -r bench/requirements.txt
fi
cargo build --release --quiet -p quantpipe-cli
bench/.venv/bin/python bench/ingest_bench.py "${CARGO_TARGET_DIR:-target}/release/quantpipe" "$file" "${1:-5}"
