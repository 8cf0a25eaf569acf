#!/usr/bin/env bash
# Neural-net training (issue 5): an MLP classifier (64, 32, ReLU, Adam lr 1e-3, batch 256, fixed
# epochs) through quantpipe (candle, f32) vs scikit-learn's MLPClassifier (NumPy, float32 input) on
# the same standardised FILUSDT rows, same run; plus batch and one-row prediction.
# usage: bench/neural.sh [ROWS] [EPOCHS]   (default 100000 rows × 50 features, 10 epochs)
rows="${1:-100000}"
epochs="${2:-10}"
export BENCH_ARGS="$rows $epochs" PY_ARGS="$epochs"
source "$(dirname "$0")/models_harness.sh" neural "neural_python.py"
python3 - "$q" "$p" <<'PY'
import json, sys
q, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
q.update(p)
q["fit_sklearn_over_quantpipe"] = round(q["sklearn_fit_s"] / q["quantpipe_fit_s"], 2)
q["one_row_sklearn_over_quantpipe"] = round(q["sklearn_predict_one_row_us"] / q["quantpipe_predict_one_row_us"], 1)
print(json.dumps(q, indent=2))
PY
