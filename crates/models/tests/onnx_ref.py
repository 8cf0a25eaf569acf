"""onnxruntime (the oracle, tests/requirements.txt) on an ONNX file quantpipe exported: the file must
pass ONNX's full checker, then its outputs for the given rows (float32) are written as little-endian
f64: the probabilities (or values) row by row, then the predicted labels for classifiers.

usage: onnx_ref.py MODEL.onnx FEATURES.f64 COLUMNS OUT.f64
"""

import sys

import numpy as np
import onnx
import onnxruntime as ort

path, features, columns, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
onnx.checker.check_model(onnx.load(path), full_check=True)
x = np.fromfile(features, dtype="<f8").reshape(-1, columns).astype(np.float32)
session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
names = [o.name for o in session.get_outputs()]
results = dict(zip(names, session.run(None, {"features": x})))
if "probabilities" in results:
    parts = [results["probabilities"].ravel(), results["label"].ravel()]
else:
    parts = [results["variable"].ravel()]
np.concatenate([p.astype("<f8") for p in parts]).tofile(out)
