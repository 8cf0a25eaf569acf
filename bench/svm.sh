#!/usr/bin/env bash
# SVM training (issue 5): RBF and linear C-SVC with probabilities through quantpipe (libsvm-rs, pure
# Rust) vs scikit-learn's SVC (LIBSVM in C) on the same standardised FILUSDT rows, same run.
# usage: bench/svm.sh [ROWS]   (default 10000; kernel SVMs grow with the square of the rows)
export BENCH_ARGS="${1:-10000}"
source "$(dirname "$0")/models_harness.sh" svm svm_python.py
python3 - "$q" "$p" <<'PY'
import json, sys
q, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
q.update(p)
for m in ["rbf", "linear"]:
    q[f"sklearn_over_quantpipe_{m}"] = round(q[f"sklearn_{m}_s"] / q[f"quantpipe_{m}_s"], 2)
print(json.dumps(q, indent=2))
PY
