"""scikit-learn (the oracle, tests/requirements.txt) fitting the SVMs quantpipe fits, on the same
preprocessed rows; writes little-endian f64: the test rows' decision values (SVC, oriented so that
positive means class 1) or predictions (SVR), then the number of support vectors.

usage: svm_ref.py KIND PARAMS_JSON X_TRAIN.f64 Y_TRAIN.f64 X_TEST.f64 COLUMNS OUT.f64
KIND: svc | svr (params: kernel, c, gamma or "scale", epsilon, tolerance)
"""

import json
import sys

import numpy as np
from sklearn.svm import SVC, SVR

kind, params, x_train, y_train, x_test, columns, out = sys.argv[1:8]
p = json.loads(params)
d = int(columns)
x = np.fromfile(x_train, dtype="<f8").reshape(-1, d)
y = np.fromfile(y_train, dtype="<f8")
t = np.fromfile(x_test, dtype="<f8").reshape(-1, d)
common = dict(kernel=p["kernel"], C=p["c"], gamma=p.get("gamma", "scale"), tol=p["tolerance"], cache_size=200)
if kind == "svc":
    m = SVC(**common).fit(x, y.astype(int))
    values = m.decision_function(t)  # positive: classes_[1], which is 1
else:
    m = SVR(epsilon=p["epsilon"], **common).fit(x, y)
    values = m.predict(t)
np.concatenate([values, [len(m.support_)]]).astype("<f8").tofile(out)
