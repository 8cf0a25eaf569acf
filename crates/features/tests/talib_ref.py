"""Computes TA-Lib outputs for the feature-engine reference test.

Usage: talib_ref.py SPEC.json IN_DIR OUT_DIR
SPEC.json: [{"name": ..., "function": ..., "inputs": [...], "kwargs": [[k, v], ...], "output": i}, ...]
IN_DIR holds open/high/low/close/volume as raw little-endian float64; each output is written the same way.
"""
import json
import os
import sys

import numpy as np
import talib
import talib.abstract

INTEGER_KWARGS = {"timeperiod", "timeperiod1", "timeperiod2", "timeperiod3", "fastperiod", "slowperiod",
                  "signalperiod", "fastk_period", "slowk_period", "slowd_period", "matype", "slowk_matype",
                  "slowd_matype", "fastd_period", "fastd_matype"}

spec_path, in_dir, out_dir = sys.argv[1:4]
inputs = {k: np.fromfile(os.path.join(in_dir, k + ".f64"), dtype="<f8") for k in ["open", "high", "low", "close", "volume"]}
for entry in json.load(open(spec_path)):
    fn = getattr(talib, entry["function"])
    kwargs = {k: (int(v) if k in INTEGER_KWARGS else float(v)) for k, v in entry["kwargs"]}
    result = fn(*[inputs[i] for i in entry["inputs"]], **kwargs)
    if isinstance(result, tuple):
        result = result[entry["output"]]
    result = np.asarray(result, dtype="<f8")
    if entry["function"].startswith("CDL"):
        # Pattern outputs are integers, 0 during warm-up: mark the warm-up as NaN like other outputs.
        fn_abstract = talib.abstract.Function(entry["function"])
        fn_abstract.set_parameters(kwargs)
        result[: fn_abstract.lookback] = np.nan
    result.tofile(os.path.join(out_dir, entry["name"] + ".f64"))
