"""The Python side of bench/neural.sh: scikit-learn's MLPClassifier with quantpipe's settings (hidden
64, 32, ReLU, Adam lr 1e-3, batch 256, no L2, the same epochs, no early stopping) on the same rows;
seconds to fit, to predict the test rows, and per one-row predict_proba; prints JSON.

usage: neural_python.py DIR EPOCHS
"""

import json
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

directory, epochs = sys.argv[1], int(sys.argv[2])
y = np.fromfile(f"{directory}/y.f64", dtype="<f8").astype(int)
x = np.fromfile(f"{directory}/x.f64", dtype="<f8").reshape(len(y), -1).astype(np.float32)
train = len(y) * 4 // 5
m = MLPClassifier(
    hidden_layer_sizes=(64, 32),
    activation="relu",
    solver="adam",
    alpha=0.0,
    batch_size=256,
    learning_rate_init=1e-3,
    max_iter=epochs,
    shuffle=True,
    random_state=0,
    tol=0.0,
    n_iter_no_change=epochs + 1,
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    started = time.perf_counter()
    m.fit(x[:train], y[:train])
    fit_s = time.perf_counter() - started
started = time.perf_counter()
p = m.predict_proba(x[train:])[:, 1]
batch_s = time.perf_counter() - started
test = x[train:]
n_single = min(10_000, len(test))
started = time.perf_counter()
for i in range(n_single):
    m.predict_proba(test[i : i + 1])
single_us = (time.perf_counter() - started) / n_single * 1e6
accuracy = float(np.mean((p > 0.5) == (y[train:] == 1)))
print(json.dumps({
    "sklearn_fit_s": round(fit_s, 3),
    "sklearn_epochs_run": int(m.n_iter_),
    "sklearn_predict_batch_s": round(batch_s, 4),
    "sklearn_predict_one_row_us": round(single_us, 2),
    "sklearn_test_accuracy": round(accuracy, 4),
}))
