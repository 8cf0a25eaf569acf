"""An independent forward pass of quantpipe's neural-net artifacts in NumPy: reads the weights from
network.safetensors (parsed here from the format's definition, not through candle) and the
architecture from model.json, evaluates PyTorch's MLP and LSTM equations in float64, and writes the
outputs (probabilities or values, as quantpipe predicts them) as little-endian f64.

usage: neural_ref.py ARTIFACT_DIR X_TEST.f64 OUT.f64
"""

import json
import struct
import sys

import numpy as np

artifact, x_test, out = sys.argv[1:4]
meta = json.load(open(f"{artifact}/model.json"))
raw = open(f"{artifact}/network.safetensors", "rb").read()
(header_len,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8 : 8 + header_len])
body = raw[8 + header_len :]
weights = {}
for name, info in header.items():
    if name == "__metadata__":
        continue
    assert info["dtype"] == "F32", info
    start, end = info["data_offsets"]
    weights[name] = np.frombuffer(body[start:end], dtype="<f4").reshape(info["shape"]).astype(np.float64)

d = len(meta["feature_names"])
x = np.fromfile(x_test, dtype="<f8").reshape(-1, d).astype(np.float32).astype(np.float64)
params = meta["params"]
act = np.tanh if params.get("activation", "relu") == "tanh" else (lambda v: np.maximum(v, 0.0))
sigmoid = lambda v: 1.0 / (1.0 + np.exp(-v))


def dense(h, prefix):
    return h @ weights[f"{prefix}.weight"].T + weights[f"{prefix}.bias"]


if meta["family"] == "mlp":
    h = x
    for i in range(len(params["hidden"])):
        h = act(dense(h, f"dense{i}"))
else:
    window = params["window"]
    seq = x.reshape(x.shape[0], window, d // window)
    for layer in range(params["layers"]):
        w_ih, w_hh = weights[f"lstm.weight_ih_l{layer}"], weights[f"lstm.weight_hh_l{layer}"]
        b = weights[f"lstm.bias_ih_l{layer}"] + weights[f"lstm.bias_hh_l{layer}"]
        hidden = w_hh.shape[1]
        h = np.zeros((x.shape[0], hidden))
        c = np.zeros((x.shape[0], hidden))
        states = []
        for t in range(window):
            g = seq[:, t, :] @ w_ih.T + h @ w_hh.T + b
            i, f, gg, o = (g[:, k * hidden : (k + 1) * hidden] for k in range(4))
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(gg)
            h = sigmoid(o) * np.tanh(c)
            states.append(h)
        seq = np.stack(states, axis=1)
    h = seq[:, -1, :]
    for i in range(len(params.get("head", []))):
        h = act(dense(h, f"head{i}"))
z = dense(h, "output")

task = meta["task"]
if task == "binary":
    y = sigmoid(z[:, 0])
elif isinstance(task, dict) and "multiclass" in task:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    y = (e / e.sum(axis=1, keepdims=True)).reshape(-1)
else:
    y = z[:, 0] * meta["training"]["target_scale"] + meta["training"]["target_mean"]
y.astype("<f8").tofile(out)
