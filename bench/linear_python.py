"""The Python side of bench/linear.sh: scikit-learn fitting the same three linear models on the same
preprocessed rows (its default solvers and tolerances, as a user would call it, and for logistic
regression also its converging newton-cholesky solver); seconds per fit, and
how far its predictions are from quantpipe's; prints JSON.

usage: linear_python.py DIR
"""

import json
import sys
import time

import numpy as np
from sklearn.linear_model import ElasticNet, LinearRegression, LogisticRegression

directory = sys.argv[1]
y = np.fromfile(f"{directory}/y.f64", dtype="<f8")
target = np.fromfile(f"{directory}/target.f64", dtype="<f8")
x = np.fromfile(f"{directory}/x.f64", dtype="<f8").reshape(len(y), -1)


def timed(make):
    started = time.perf_counter()
    model = make()
    return time.perf_counter() - started, model


def diff(name, predicted):
    ours = np.fromfile(f"{directory}/p_{name}.f64", dtype="<f8")
    return float(np.max(np.abs(ours - predicted)))


logistic_s, logistic = timed(lambda: LogisticRegression(C=1.0).fit(x, y.astype(int)))
# The default L-BFGS stops at 100 iterations here, unconverged; Newton-Cholesky converges.
newton_s, newton = timed(lambda: LogisticRegression(C=1.0, solver="newton-cholesky").fit(x, y.astype(int)))
ols_s, ols = timed(lambda: LinearRegression().fit(x, target))
elastic_s, elastic = timed(lambda: ElasticNet(alpha=0.01, l1_ratio=0.5).fit(x, target))
print(json.dumps({
    "sklearn_logistic_s": round(logistic_s, 3),
    "sklearn_logistic_newton_cholesky_s": round(newton_s, 3),
    "max_abs_diff_logistic_probability_newton_cholesky": diff("logistic", newton.predict_proba(x)[:, 1]),
    "sklearn_ols_s": round(ols_s, 3),
    "sklearn_elastic_net_s": round(elastic_s, 3),
    "max_abs_diff_logistic_probability": diff("logistic", logistic.predict_proba(x)[:, 1]),
    "max_abs_diff_ols": diff("ols", ols.predict(x)),
    "max_abs_diff_elastic_net": diff("elastic", elastic.predict(x)),
}))
