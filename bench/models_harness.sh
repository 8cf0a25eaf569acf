# Sourced by bench/{inference,training,linear,svm,neural}.sh: finds the FILUSDT file, makes sure the
# test Python environment exists (LightGBM, and the CMake LightGBM's build needs), builds the example
# bench_models in release and runs its harness "$1" (inference, linear, neural, svm or training), then
# its Python side "$2", both on one scratch directory.
# Leaves their JSON outputs in $q and $p.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
file="${QUANTPIPE_SHARED_DATA:-$(cd .. && pwd)/shared/data}/filusdt_perp_1m_2023.csv.gz"
[ -f "$file" ] || { echo "error: $file not found (set QUANTPIPE_SHARED_DATA)" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv && .venv/bin/pip install -q -r tests/requirements.txt
fi
export CMAKE="$PWD/.venv/bin/cmake"
cargo build --release --quiet -p quantpipe-models --example bench_models
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck disable=SC2086 # BENCH_ARGS: extra arguments for the example, split on spaces
q=$("${CARGO_TARGET_DIR:-target}/release/examples/bench_models" "$1" "$file" "$work" ${BENCH_ARGS:-})
# shellcheck disable=SC2086 # PY_ARGS: extra arguments for the Python side
p=$(.venv/bin/python "bench/$2" "$work" ${PY_ARGS:-})
