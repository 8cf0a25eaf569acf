#!/usr/bin/env bash
# Registry read latency at scale (issue 6): 100k model versions and 1M runs, on SQLite and on
# PostgreSQL (QUANTPIPE_DATABASE_URL, default the machine's local server), p50/p95/max per call.
set -euo pipefail
cd "$(dirname "$0")/.."
pg="${QUANTPIPE_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
cargo build --release -q -p quantpipe-registry --example bench_registry
bin="${CARGO_TARGET_DIR:-target}/release/examples/bench_registry"
"$bin" sqlite
"$bin" "$pg"
