"""Reference values for quantpipe's eval crate, from the libraries a user would otherwise use:
scikit-learn (metrics), scipy (distributions, correlations, moments), pandas (per-date IC) and
vectorbt (backtest). Reads the arrays the Rust test wrote (JSON), writes the references (JSON).

usage: eval_ref.py INPUT.json OUTPUT.json
"""

import json
import sys

import numpy as np
import pandas as pd
import scipy.stats as st
from sklearn import metrics
from sklearn.calibration import calibration_curve


def classification(d):
    y = np.asarray(d["y"], dtype=float)
    p = np.asarray(d["p"], dtype=float)
    hard = (p > d["threshold"]).astype(float)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=d["bins"], strategy="uniform")
    return {
        "accuracy": metrics.accuracy_score(y, hard),
        "precision": metrics.precision_score(y, hard),
        "recall": metrics.recall_score(y, hard),
        "f1": metrics.f1_score(y, hard),
        "roc_auc": metrics.roc_auc_score(y, p),
        "log_loss": metrics.log_loss(y, p),
        "brier": metrics.brier_score_loss(y, p),
        "confusion": metrics.confusion_matrix(y, hard).tolist(),
        "calibration_true": prob_true.tolist(),
        "calibration_pred": prob_pred.tolist(),
    }


def regression(d):
    y = np.asarray(d["y"], dtype=float)
    q = np.asarray(d["prediction"], dtype=float)
    frame = pd.DataFrame({"date": d["dates"], "y": y, "q": q})
    per_date = frame.groupby("date").apply(
        lambda g: pd.Series({"ic": g.y.corr(g.q), "rank_ic": g.y.corr(g.q, method="spearman")}),
        include_groups=False,
    )
    return {
        "rmse": float(np.sqrt(metrics.mean_squared_error(y, q))),
        "mae": metrics.mean_absolute_error(y, q),
        "r2": metrics.r2_score(y, q),
        "ic": st.pearsonr(y, q).statistic,
        "rank_ic": st.spearmanr(y, q).statistic,
        "dates": int(len(per_date)),
        "mean_ic": per_date.ic.mean(),
        "mean_rank_ic": per_date.rank_ic.mean(),
        "ic_ir": per_date.ic.mean() / per_date.ic.std(ddof=1),
    }


def distributions(d):
    x = np.asarray(d["x"], dtype=float)
    p = np.asarray(d["p"], dtype=float)
    r = np.asarray(d["returns"], dtype=float)
    sr = r.mean() / r.std(ddof=1)
    skew = st.skew(r)
    kurt = st.kurtosis(r, fisher=False)
    n = len(r)
    psr = st.norm.cdf(sr * np.sqrt(n - 1) / np.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))
    return {
        "cdf": st.norm.cdf(x).tolist(),
        "ppf": st.norm.ppf(p).tolist(),
        "skew": skew,
        "kurtosis": kurt,
        "psr": psr,
    }


def backtest(d):
    import vectorbt as vbt

    close = pd.Series(d["close"], index=pd.date_range("2023-01-01", periods=len(d["close"]), freq="1min"))
    target = np.asarray(d["target"], dtype=float)
    # Order only where the target changes; NaN keeps the units held (no rebalancing).
    size = np.full(len(target), np.nan)
    previous = 0.0
    for i, t in enumerate(target):
        if t != previous:
            size[i] = t
            previous = t
    pf = vbt.Portfolio.from_orders(
        close,
        size=size,
        size_type="targetpercent",
        fees=d["fee_bps"] * 1e-4,
        slippage=d["slippage_bps"] * 1e-4,
        init_cash=1.0,
        direction="both",
        freq="1min",
    )
    returns = pf.returns()
    return {
        "returns": returns.tolist(),
        "total_return": pf.total_return(),
        "sharpe": pf.sharpe_ratio(),
        "sortino": pf.sortino_ratio(),
        "max_drawdown": -pf.max_drawdown(),
        "annualized_return": pf.annualized_return(),
        "calmar": pf.calmar_ratio(),
        "fees_paid": float(pf.orders.fees.sum()),
    }


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src) as f:
        d = json.load(f)
    out = {}
    for key, fn in [
        ("classification", classification),
        ("regression", regression),
        ("distributions", distributions),
    ]:
        if key in d:
            out[key] = fn(d[key])
    if "backtests" in d:
        out["backtests"] = [backtest(b) for b in d["backtests"]]
    with open(dst, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
