"""The Python side of bench/inference.sh: Python LightGBM predicting one row and 100 rows with the
model quantpipe saved (the way a FastAPI server would call it), and onnxruntime running quantpipe's
ONNX export of the same model (one thread, float32 input, as a C++ or Go bot would embed it);
median µs per call; prints JSON.

usage: inference_python.py DIR
"""

import json
import sys
import time

import lightgbm as lgb
import numpy as np
import onnxruntime as ort

directory = sys.argv[1]
booster = lgb.Booster(model_file=f"{directory}/model.txt")
d = booster.num_feature()
rows = np.fromfile(f"{directory}/rows.f64", dtype="<f8").reshape(-1, d)


def per_call(calls, fn):
    rounds = []
    for _ in range(7):
        t = time.perf_counter()
        for i in range(calls):
            fn(i)
        rounds.append((time.perf_counter() - t) / calls)
    return float(np.median(rounds))


one = per_call(2000, lambda i: booster.predict(rows[i % 10000: i % 10000 + 1]))
hundred = per_call(200, lambda i: booster.predict(rows[(i % 99) * 100: (i % 99) * 100 + 100]))

options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(f"{directory}/model.onnx", options, providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
rows32 = rows.astype(np.float32)
# The export answers like LightGBM given the same float32 inputs (ONNX takes float32) before it is timed.
outputs = [o.name for o in session.get_outputs()]
probabilities = dict(zip(outputs, session.run(None, {name: rows32[:1000]})))["probabilities"]
onnx_p = probabilities[:, -1] if probabilities.ndim == 2 else probabilities
worst = float(np.max(np.abs(onnx_p - booster.predict(rows32[:1000].astype(np.float64)))))
assert worst < 1e-5, worst
ort_one = per_call(2000, lambda i: session.run(None, {name: rows32[i % 10000: i % 10000 + 1]}))
ort_hundred = per_call(200, lambda i: session.run(None, {name: rows32[(i % 99) * 100: (i % 99) * 100 + 100]}))
print(json.dumps({
    "python_one_row_us": round(one * 1e6, 3),
    "python_100_rows_us": round(hundred * 1e6, 3),
    "onnxruntime_one_row_us": round(ort_one * 1e6, 3),
    "onnxruntime_100_rows_us": round(ort_hundred * 1e6, 3),
    "onnxruntime_max_abs_diff_vs_lightgbm": worst,
}))
