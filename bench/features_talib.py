"""Python TA-Lib side of the feature benchmark: the same calls on the same arrays, best of 3."""
import json
import os
import sys
import time

import numpy as np
import talib

INTEGER_KWARGS = {"timeperiod", "timeperiod1", "timeperiod2", "timeperiod3", "fastperiod", "slowperiod",
                  "signalperiod", "fastk_period", "slowk_period", "slowd_period", "matype", "slowk_matype",
                  "slowd_matype"}
spec, data = sys.argv[1], sys.argv[2]
arrays = {k: np.fromfile(os.path.join(data, k + ".f64"), dtype="<f8") for k in ["open", "high", "low", "close", "volume"]}
calls = {}
for e in json.load(open(spec)):
    # Multi-output functions (MACD, BBANDS, STOCH, AROON) are called once, as a user would.
    key = (e["function"], tuple(e["inputs"]), tuple((k, v) for k, v in e["kwargs"]))
    calls[key] = e
best = float("inf")
for _ in range(3):
    t = time.perf_counter()
    for (fn, inputs, kwargs), _e in calls.items():
        getattr(talib, fn)(*[arrays[i] for i in inputs], **{k: (int(v) if k in INTEGER_KWARGS else float(v)) for k, v in kwargs})
    best = min(best, time.perf_counter() - t)
print(json.dumps({"talib_calls": len(calls), "talib_s": best, "talib_version": talib.__version__}))
