"""scikit-learn (the oracle, tests/requirements.txt) fitting the linear models quantpipe fits, on the
same preprocessed rows; writes little-endian f64: test predictions, then coefficients, then intercept.

usage: linear_ref.py KIND PARAMS_JSON X_TRAIN.f64 Y_TRAIN.f64 X_TEST.f64 COLUMNS OUT.f64
KIND: logistic (params: c, and penalty "l1" or "elasticnet" with l1_ratio: solved by saga) |
      multinomial (params: c; writes class probabilities row by row, then a coefficient row and an
      intercept per class) | ols |
      elasticnet (params: alpha, l1_ratio) | ridge (params: alpha; ElasticNet's scaling)
"""

import json
import sys

import numpy as np
from sklearn.linear_model import ElasticNet, LinearRegression, LogisticRegression, Ridge

kind, params, x_train, y_train, x_test, columns, out = sys.argv[1:8]
params = json.loads(params)
d = int(columns)
x = np.fromfile(x_train, dtype="<f8").reshape(-1, d)
y = np.fromfile(y_train, dtype="<f8")
t = np.fromfile(x_test, dtype="<f8").reshape(-1, d)
if kind == "logistic" and params.get("penalty", "l2") != "l2":
    m = LogisticRegression(
        C=params["c"], penalty=params["penalty"], l1_ratio=params.get("l1_ratio"), solver="saga", tol=1e-12,
        max_iter=200_000,
    ).fit(x, y.astype(int))
    pred, coef, intercept = m.predict_proba(t)[:, 1], m.coef_.ravel(), m.intercept_[0]
elif kind == "multinomial":
    # A multinomial (softmax) fit for 3+ classes. newton-cholesky, not lbfgs: on these collinear
    # features scikit-learn's lbfgs stops about 1e-5 (relative, coefficients) short of the optimum.
    m = LogisticRegression(C=params["c"], solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(x, y.astype(int))
    pred, coef, intercept = m.predict_proba(t).ravel(), m.coef_.ravel(), m.intercept_
elif kind == "logistic":
    m = LogisticRegression(C=params["c"], solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(x, y.astype(int))
    pred, coef, intercept = m.predict_proba(t)[:, 1], m.coef_.ravel(), m.intercept_[0]
elif kind == "ridge":
    # ElasticNet's objective with l1_ratio = 0 is Ridge's with alpha scaled by the rows.
    m = Ridge(alpha=params["alpha"] * len(y), solver="cholesky").fit(x, y)
    pred, coef, intercept = m.predict(t), m.coef_, m.intercept_
elif kind == "ols":
    m = LinearRegression().fit(x, y)
    pred, coef, intercept = m.predict(t), m.coef_, m.intercept_
else:
    m = ElasticNet(alpha=params["alpha"], l1_ratio=params["l1_ratio"], tol=1e-14, max_iter=1_000_000).fit(x, y)
    pred, coef, intercept = m.predict(t), m.coef_, m.intercept_
np.concatenate([pred, coef, np.atleast_1d(intercept)]).astype("<f8").tofile(out)
