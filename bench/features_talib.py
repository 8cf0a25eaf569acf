"""Python TA-Lib side of the feature benchmark: the same calls on the same arrays, best of 3.

    features_talib.py SPEC.json DATA_DIR          — every call of the spec, timed together
    features_talib.py --per PER.json DATA_DIR     — each indicator's calls timed alone, beside
                                                    quantpipe's time for it (bench_features per)
"""
import json
import os
import sys
import time

import numpy as np
import talib

INTEGER_KWARGS = {"timeperiod", "timeperiod1", "timeperiod2", "timeperiod3", "fastperiod", "slowperiod",
                  "signalperiod", "fastk_period", "slowk_period", "slowd_period", "matype", "slowk_matype",
                  "slowd_matype", "fastd_period", "fastd_matype"}


def kwargs_of(pairs):
    return {k: (int(v) if k in INTEGER_KWARGS else float(v)) for k, v in pairs}


def timed_3(calls, arrays):
    """(first, best) wall time of 3 rounds. Each round keeps every output until it ends, as a user
    building a feature frame would (quantpipe's frame holds every column too)."""
    times = []
    for _ in range(3):
        kept = []
        t = time.perf_counter()
        for fn, inputs, kwargs in calls:
            kept.append(getattr(talib, fn)(*[arrays[i] for i in inputs], **kwargs_of(kwargs)))
        times.append(time.perf_counter() - t)
        del kept
    return times[0], min(times)


def best_of_3(calls, arrays):
    return timed_3(calls, arrays)[1]


per = sys.argv[1] == "--per"
spec, data = sys.argv[1 + per], sys.argv[2 + per]
arrays = {k: np.fromfile(os.path.join(data, k + ".f64"), dtype="<f8") for k in ["open", "high", "low", "close", "volume"]}
if per:
    rows = []
    for e in json.load(open(spec)):
        calls = [(c["function"], c["inputs"], c["kwargs"]) for c in e["calls"]]
        t = best_of_3(calls, arrays)
        rows.append((e["quantpipe_s"] / t, e["feature"][:60], e["quantpipe_s"], t))
    rows.sort(reverse=True)
    print(f"{'indicator (outputs)':60} {'quantpipe':>10} {'TA-Lib':>10} {'qp/TA':>7}")
    for ratio, name, q, t in rows:
        print(f"{name:60} {q * 1e3:8.1f}ms {t * 1e3:8.1f}ms {ratio:7.2f}")
    print(f"{'total':60} {sum(r[2] for r in rows) * 1e3:8.1f}ms {sum(r[3] for r in rows) * 1e3:8.1f}ms")
    sys.exit(0)
calls = {}
for e in json.load(open(spec)):
    # Multi-output functions (MACD, BBANDS, STOCH, AROON) are called once, as a user would.
    key = (e["function"], tuple(e["inputs"]), tuple((k, v) for k, v in e["kwargs"]))
    calls[key] = e
first, best = timed_3([(fn, list(inputs), list(kwargs)) for fn, inputs, kwargs in calls], arrays)
print(json.dumps({"talib_calls": len(calls), "talib_s": best, "talib_first_s": first, "talib_version": talib.__version__}))
