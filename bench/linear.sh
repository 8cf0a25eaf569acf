#!/usr/bin/env bash
# Linear-model training (issue 5): logistic regression, least squares and elastic net through
# quantpipe (own solvers for logistic and elastic net, linfa for least squares) vs scikit-learn on the same 100,000 × 50 FILUSDT matrix, same run.
source "$(dirname "$0")/models_harness.sh" linear linear_python.py
python3 - "$q" "$p" <<'PY'
import json, sys
q, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
q.update(p)
for m in ["logistic", "ols", "elastic_net"]:
    q[f"sklearn_over_quantpipe_{m}"] = round(q[f"sklearn_{m}_s"] / q[f"quantpipe_{m}_s"], 2)
q["sklearn_newton_cholesky_over_quantpipe_logistic"] = round(q["sklearn_logistic_newton_cholesky_s"] / q["quantpipe_logistic_s"], 2)
print(json.dumps(q, indent=2))
PY
