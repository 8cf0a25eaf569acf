"""The Python side of bench/pipeline.sh: the job `quantpipe run bench/pipeline.toml` does, written the
way a team would with pandas + TA-Lib + LightGBM + scikit-learn: load the CSV, compute the same
TA-Lib features, label the 1-hour direction, walk forward (expanding window, 30-day test windows,
training rows whose label reaches the test window purged), train LightGBM with the same parameters
and thread count, score out of sample, backtest with costs, save the final model and its metadata.

usage: pipeline_python.py PIPELINE.toml FEATURE_SPEC.json OUT_DIR   (prints JSON)
"""

import json
import os
import sys
import time
import tomllib

started = time.perf_counter()
import lightgbm as lgb  # noqa: E402  (imports are part of the job's time)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import talib  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

config_path, spec_path, out_dir = sys.argv[1], sys.argv[2], sys.argv[3]
config = tomllib.load(open(config_path, "rb"))
timings = {}


def lap(name, t0):
    timings[name] = round(time.perf_counter() - t0, 3)
    return time.perf_counter()


t = time.perf_counter()
data_file = os.path.expandvars(config["data"]["file"])
df = pd.read_csv(data_file)
df = df.sort_values("open_time").drop_duplicates("open_time")
if df[["open", "high", "low", "close", "volume"]].isna().any().any():
    raise SystemExit("NaN in the bars")
ts = df["open_time"].to_numpy(np.int64)
o, h, l, c, v = (df[k].to_numpy(np.float64) for k in ["open", "high", "low", "close", "volume"])
arrays = {"open": o, "high": h, "low": l, "close": c, "volume": v}
t = lap("load", t)

INTEGER = {"timeperiod", "timeperiod1", "timeperiod2", "timeperiod3", "fastperiod", "slowperiod", "signalperiod",
           "fastk_period", "slowk_period", "slowd_period", "matype", "slowk_matype", "slowd_matype"}
spec = json.load(open(spec_path))
columns, cache = {}, {}
for e in spec:
    key = (e["function"], tuple(e["inputs"]), tuple((k, val) for k, val in e["kwargs"]))
    if key not in cache:
        kwargs = {k: (int(val) if k in INTEGER else float(val)) for k, val in e["kwargs"]}
        cache[key] = getattr(talib, e["function"])(*[arrays[i] for i in e["inputs"]], **kwargs)
    out = cache[key]
    columns[e["name"]] = out[e["output"]] if isinstance(out, (list, tuple)) else out
features = pd.DataFrame(columns)
names = list(features.columns)
t = lap("features", t)

# Label: direction over the next hour, where the bar exactly one hour later exists.
horizon_ms = 3_600_000
end = np.searchsorted(ts, ts + horizon_ms)
has_end = (end < len(ts))
has_end[has_end] &= ts[end[has_end]] == ts[has_end] + horizon_ms
rows = np.flatnonzero(has_end)
label = (c[end[rows]] / c[rows] - 1.0 > 0).astype(np.float64)
warm = int(np.argmax(features.notna().all(axis=1).to_numpy()))
keep = rows >= warm
rows, label = rows[keep], label[keep]
x = features.to_numpy(np.float64)[rows]
start_t, end_t = ts[rows], ts[end[rows]]
t = lap("labels", t)

# Walk-forward exactly as configured: windows aligned to the first row, expanding training window,
# purged training rows.
val = config["validation"]
day = 86_400_000
test_ms = int(val["test_window"].rstrip("d")) * day
min_train = val["min_train_rows"]
m = config["models"][0]
params = {
    "objective": "binary", "metric": "binary_logloss", "boosting": m.get("boosting", "gbdt"),
    "num_iterations": m["num_iterations"], "learning_rate": m["learning_rate"], "num_leaves": m["num_leaves"],
    "max_depth": -1, "min_data_in_leaf": m["min_data_in_leaf"], "feature_fraction": m["feature_fraction"],
    "bagging_fraction": m["bagging_fraction"], "bagging_freq": m["bagging_freq"], "lambda_l1": 0.0,
    "lambda_l2": m["lambda_l2"], "seed": m["seed"], "deterministic": True, "force_row_wise": True, "verbosity": -1,
}
iterations = params.pop("num_iterations")
oos = np.full(len(rows), np.nan)
window = start_t[0] + test_ms
while window <= start_t[-1]:
    lo, hi = np.searchsorted(start_t, window), np.searchsorted(start_t, window + test_ms)
    if lo < hi:
        train = np.flatnonzero(end_t[:lo] < window)
        if len(train) >= min_train:
            booster = lgb.train(params, lgb.Dataset(x[train], label=label[train], feature_name=names), num_boost_round=iterations)
            oos[lo:hi] = booster.predict(x[lo:hi])
    window += test_ms
tested = np.flatnonzero(~np.isnan(oos))
auc = roc_auc_score(label[tested], oos[tested])
t = lap("walk_forward", t)

# Final model on every row, saved with its metadata.
final = lgb.train(params, lgb.Dataset(x, label=label, feature_name=names), num_boost_round=iterations)
os.makedirs(out_dir, exist_ok=True)
final.save_model(f"{out_dir}/model.txt")
t = lap("final_fit", t)

# Backtest: long above / short below the thresholds, traded at the close, costs per side.
bt = config["backtest"]
first, last = rows[tested[0]], rows[tested[-1]]
position = pd.Series(0.0, index=range(first, last + 1))
p = oos[tested]
position[rows[tested]] = np.where(p > bt["long_above"], 1.0, np.where(p < bt["short_below"], -1.0, 0.0))
bar_return = pd.Series(c[first:last + 1], index=position.index).pct_change().fillna(0.0)
cost = (bt["fee_bps"] + bt["slippage_bps"]) * 1e-4
strategy = position.shift(1).fillna(0.0) * bar_return - position.diff().abs().fillna(position.abs()) * cost
equity = (1 + strategy).cumprod()
sharpe = strategy.mean() / strategy.std() * np.sqrt(525_600)
drawdown = float((1 - equity / equity.cummax()).max())
json.dump({"auc": auc, "rows": int(len(tested)), "features": names, "params": params, "sharpe": sharpe,
           "max_drawdown": drawdown}, open(f"{out_dir}/metadata.json", "w"))
t = lap("backtest_and_save", t)
print(json.dumps({"python_s": round(time.perf_counter() - started, 3), "python_auc": auc, "python_oos_rows": int(len(tested)),
                  "python_features": len(names), "python_stages_s": timings}))
