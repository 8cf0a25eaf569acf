"""Live path latency for bench/serve.sh: pushes FILUSDT 1m history into quantpipe serve (POST /bars),
then, bar by bar, times POST /bars (one new bar) followed by POST /predict from that symbol's live
standard features, over one keep-alive connection. Prints JSON.

usage: serve_live.py HOST:PORT FILUSDT_CSV_GZ
"""
import csv
import gzip
import http.client
import json
import sys
import time

host, port = sys.argv[1].split(":")
with gzip.open(sys.argv[2], "rt") as f:
    reader = csv.DictReader(f)
    bars = []
    for row in reader:
        bars.append({"ts": int(row["open_time"]), "open": float(row["open"]), "high": float(row["high"]),
                     "low": float(row["low"]), "close": float(row["close"]), "volume": float(row["volume"])})
        if len(bars) == 42000:
            break
conn = http.client.HTTPConnection(host, int(port))


def post(path, body):
    conn.request("POST", path, body=json.dumps(body), headers={"content-type": "application/json"})
    reply = conn.getresponse()
    data = reply.read()
    if reply.status != 200:
        raise SystemExit(f"{path}: {reply.status} {data[:300]!r}")
    return json.loads(data)


# The standard set's daily realised volatility (20 days) needs 21 days of 1m bars before it is defined.
history = 40000
for start in range(0, history, 10000):
    post("/bars", {"symbol": "FILUSDT", "bars": bars[start:start + 10000]})
pairs, bar_only, predict_only = [], [], []
for bar in bars[history:]:
    t0 = time.perf_counter()
    post("/bars", {"symbol": "FILUSDT", "bars": [bar]})
    t1 = time.perf_counter()
    answer = post("/predict", {"model_name": "direction", "symbol": "FILUSDT"})
    t2 = time.perf_counter()
    assert answer["bar_ts"] == bar["ts"]
    pairs.append(t2 - t0)
    bar_only.append(t1 - t0)
    predict_only.append(t2 - t1)


def pct(xs, p):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000, 3)


print(json.dumps({
    "live_pairs": len(pairs),
    "bars_then_predict_p50_ms": pct(pairs, 50), "bars_then_predict_p99_ms": pct(pairs, 99),
    "bars_p50_ms": pct(bar_only, 50), "predict_by_symbol_p50_ms": pct(predict_only, 50),
}))
