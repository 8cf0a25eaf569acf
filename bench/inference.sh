#!/usr/bin/env bash
# Inference benchmark (issue 5): one row and 100 rows of a 200-tree LightGBM model on 50 FILUSDT
# features: LightGBM's C API vs quantpipe's in-process evaluator vs Python LightGBM vs onnxruntime
# (quantpipe's ONNX export), same run.
source "$(dirname "$0")/models_harness.sh" inference inference_python.py
python3 - "$q" "$p" <<'PY'
import json, sys
q, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
q.update(p)
q["speedup_one_row_vs_c_api"] = round(q["c_api_one_row_us"] / q["quantpipe_one_row_us"], 2)
q["speedup_one_row_vs_c_api_fast"] = round(q["c_api_fast_one_row_us"] / q["quantpipe_one_row_us"], 2)
q["speedup_100_rows_vs_c_api"] = round(q["c_api_100_rows_us"] / q["quantpipe_100_rows_us"], 2)
q["speedup_one_row_vs_python"] = round(q["python_one_row_us"] / q["quantpipe_one_row_us"], 2)
q["speedup_one_row_vs_onnxruntime"] = round(q["onnxruntime_one_row_us"] / q["quantpipe_one_row_us"], 2)
q["speedup_100_rows_vs_onnxruntime"] = round(q["onnxruntime_100_rows_us"] / q["quantpipe_100_rows_us"], 2)
print(json.dumps(q, indent=2))
PY
