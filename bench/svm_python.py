"""The Python side of bench/svm.sh: scikit-learn's SVC (LIBSVM) with probabilities on the same
preprocessed rows and parameters; seconds per fit (probability=True: five internal folds and a final
fit, like quantpipe's), support vectors, and how far its decision values are from quantpipe's; prints JSON.

usage: svm_python.py DIR
"""

import json
import sys
import time

import numpy as np
from sklearn.svm import SVC

directory = sys.argv[1]
y = np.fromfile(f"{directory}/y.f64", dtype="<f8").astype(int)
x = np.fromfile(f"{directory}/x.f64", dtype="<f8").reshape(len(y), -1)
out = {}
for name, params in [("rbf", dict(kernel="rbf", C=1.0)), ("linear", dict(kernel="linear", C=0.1))]:
    started = time.perf_counter()
    m = SVC(probability=True, random_state=0, cache_size=200, **params).fit(x, y)
    out[f"sklearn_{name}_s"] = round(time.perf_counter() - started, 3)
    out[f"sklearn_{name}_support_vectors"] = int(len(m.support_))
    ours = np.fromfile(f"{directory}/decision_{name}.f64", dtype="<f8")
    out[f"max_abs_diff_{name}_decision"] = float(np.max(np.abs(ours - m.decision_function(x))))
print(json.dumps(out))
