#!/usr/bin/env bash
# Training benchmark (issue 5): LightGBM through quantpipe vs Python LightGBM 4.7.0 on the same
# 200,000 × 50 FILUSDT matrix, same parameters, 2 threads, same run; checks the models are identical.
source "$(dirname "$0")/models_harness.sh" training training_python.py
python3 - "$q" "$p" <<'PY'
import json, sys
q, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
q.update(p)
q["overhead_vs_python_pct"] = round(100 * (q["quantpipe_train_s"] / q["python_train_s"] - 1), 1)
print(json.dumps(q, indent=2))
PY
