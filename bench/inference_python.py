"""The Python side of bench/inference.sh: Python LightGBM predicting one row and 100 rows with the
model quantpipe saved (the way a FastAPI server would call it); median µs per call; prints JSON.

usage: inference_python.py DIR
"""

import json
import sys
import time

import lightgbm as lgb
import numpy as np

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
print(json.dumps({"python_one_row_us": round(one * 1e6, 3), "python_100_rows_us": round(hundred * 1e6, 3)}))
