"""The Python side of bench/backtest.sh: the same 1M-bar signal backtested by vectorbt (warm: compiled
once before timing) and by a plain numpy backtest, median of RUNS; prints JSON.

usage: backtest_python.py DIR RUNS
"""

import json
import sys
import time

import numpy as np
import pandas as pd
import vectorbt as vbt

directory, runs = sys.argv[1], int(sys.argv[2])
close = np.fromfile(f"{directory}/close.f64", dtype="<f8")
target = np.fromfile(f"{directory}/target.f64", dtype="<f8")
fee, slip = 4e-4, 2e-4
index = pd.date_range("2023-01-01", periods=len(close), freq="1min")
close_s = pd.Series(close, index=index)
# Orders only where the target changes (what quantpipe trades); NaN holds the units.
change = np.concatenate([[target[0] != 0.0], target[1:] != target[:-1]])
size = np.where(change, target, np.nan)


def run_vectorbt():
    pf = vbt.Portfolio.from_orders(
        close_s, size=size, size_type="targetpercent", fees=fee, slippage=slip,
        init_cash=1.0, direction="both", freq="1min",
    )
    return pf.sharpe_ratio(), pf.max_drawdown()


def run_numpy():
    # The backtest people write by hand: yesterday's position times today's return, minus costs on
    # position changes (fractions rebalanced every bar, not units held).
    returns = np.empty_like(close)
    returns[0] = 0.0
    returns[1:] = close[1:] / close[:-1] - 1.0
    held = np.concatenate([[0.0], target[:-1]])
    traded = np.abs(np.diff(np.concatenate([[0.0], target])))
    strategy = held * returns - traded * (fee + slip)
    equity = np.cumprod(1.0 + strategy)
    drawdown = 1.0 - equity / np.maximum.accumulate(np.maximum(equity, 1.0))
    sharpe = strategy.mean() / strategy.std(ddof=1) * np.sqrt(525_600)
    return sharpe, drawdown.max()


def median_time(fn):
    fn()  # warm: numba compilation and caches
    times = []
    result = None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), result


vbt_s, (vbt_sharpe, _) = median_time(run_vectorbt)
np_s, (np_sharpe, _) = median_time(run_numpy)
print(json.dumps({
    "vectorbt_s": round(vbt_s, 6), "vectorbt_sharpe": float(vbt_sharpe),
    "numpy_s": round(np_s, 6), "numpy_sharpe": float(np_sharpe),
}))
