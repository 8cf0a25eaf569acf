#!/usr/bin/env bash
# Serving benchmark (issue 8): quantpipe serve against the FastAPI + uvicorn server a team would write
# (bench/serve_fastapi.py), same LightGBM model file (a direction model trained by `quantpipe train`
# on FILUSDT 1m with the standard feature set), same feature vector, same machine, same run.
# wrk drives POST /predict over keep-alive connections at 32 and 128 connections; requests per
# second and latency percentiles of each, and the ratio (and at 4 connections, where latency rather
# than throughput is the point). quantpipe also logs every prediction to its
# registry database; the FastAPI server logs nothing.
#   bench/serve.sh [SECONDS per measurement, default 15]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-15}"
data="${QUANTPIPE_SHARED_DATA:-$(cd .. && pwd)/shared/data}/filusdt_perp_1m_2023.csv.gz"
[ -f "$data" ] || { echo "error: $data not found (set QUANTPIPE_SHARED_DATA)" >&2; exit 1; }
command -v wrk > /dev/null || { echo "error: wrk not found; install it with: apt-get install -y wrk" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv && .venv/bin/pip install -q -r tests/requirements.txt
fi
venv=bench/.venv-serve
stamp="$venv/.requirements.sha"
want=$(sha256sum bench/requirements-serve.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/uvicorn" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  rm -rf "$venv" && python3 -m venv "$venv" && "$venv/bin/pip" install -q -r bench/requirements-serve.txt
  echo "$want" > "$stamp"
fi
export CMAKE="${CMAKE:-$PWD/.venv/bin/cmake}"
cargo build --release --quiet -p quantpipe-cli --bin quantpipe
qp="${CARGO_TARGET_DIR:-target}/release/quantpipe"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
export QUANTPIPE_HOME="$work/home"

echo "== training the model (quantpipe train, FILUSDT 1m, standard features)" >&2
"$qp" ingest "$data" --symbol FILUSDT --json > /dev/null
"$qp" train FILUSDT --timeframe 1m --kind horizon --param 'horizons=["1h"]' \
  --model docs/models/direction_lightgbm.toml -o "$work/model" --register direction > /dev/null
"$qp" models promote direction@1.0.0 --to production > /dev/null
"$qp" features compute FILUSDT --timeframe 1m --set standard -o "$work/features.csv" > /dev/null
# The request body: the last bar's features in the model's order.
.venv/bin/python - "$work" <<'PY'
import csv, json, sys
work = sys.argv[1]
names = json.load(open(f"{work}/model/model.json"))["feature_names"]
with open(f"{work}/features.csv") as f:
    rows = list(csv.DictReader(f))
last = rows[-1]
body = json.dumps({"model_name": "direction", "features": [float(last[n]) for n in names]})
open(f"{work}/body.json", "w").write(body)
lua = "wrk.method = 'POST'\nwrk.headers['Content-Type'] = 'application/json'\nwrk.body = [[" + body + "]]\n"
open(f"{work}/post.lua", "w").write(lua)
print(f"{len(names)} features", file=sys.stderr)
PY

wait_for() { for _ in $(seq 1 200); do curl -sf -o /dev/null "$1" -X POST -d @"$work/body.json" -H 'content-type: application/json' && return 0; sleep 0.1; done; echo "error: $1 never answered" >&2; exit 1; }
measure() { # name url connections
  wrk -t1 -c"$3" -d"${seconds}s" --latency -s "$work/post.lua" "$2" > "$work/wrk-$1-$3.txt"
}

printf '[live]\nfeature_set = "standard"\n' > "$work/serve.toml"
"$qp" serve --addr 127.0.0.1:18801 --config "$work/serve.toml" > "$work/qp.out" 2> "$work/qp.err" &
pids+=($!)
wait_for http://127.0.0.1:18801/predict
curl -s -X POST -d @"$work/body.json" http://127.0.0.1:18801/predict > "$work/qp-answer.json"
for c in 4 32 128; do measure quantpipe http://127.0.0.1:18801/predict "$c"; done
curl -s http://127.0.0.1:18801/metrics > "$work/qp-metrics.txt"
echo "== live path: POST /bars + POST /predict by symbol, standard features" >&2
.venv/bin/python bench/serve_live.py 127.0.0.1:18801 "$data" > "$work/live.json"
kill "${pids[-1]}"; wait "${pids[-1]}" 2> /dev/null || true

# The same server with its registry (and so its prediction log) on PostgreSQL, as a team running
# several servers would have it: a fresh database on the local server, the model registered there.
pg_admin="${BENCH_POSTGRES_ADMIN:-postgres://postgres@127.0.0.1:5432/test}"
pg_db=quantpipe_bench_serve
if psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $pg_db" -c "CREATE DATABASE $pg_db" > /dev/null 2>&1; then
  pg_url="${pg_admin%/*}/$pg_db"
  echo "== quantpipe serve on PostgreSQL ($pg_url)" >&2
  QUANTPIPE_DATABASE_URL="$pg_url" "$qp" train FILUSDT --timeframe 1m --kind horizon --param 'horizons=["1h"]' \
    --model docs/models/direction_lightgbm.toml -o "$work/model-pg" --register direction > /dev/null
  QUANTPIPE_DATABASE_URL="$pg_url" "$qp" models promote direction@1.0.0 --to production > /dev/null
  QUANTPIPE_DATABASE_URL="$pg_url" "$qp" serve --addr 127.0.0.1:18803 > "$work/qp-pg.out" 2> "$work/qp-pg.err" &
  pids+=($!)
  wait_for http://127.0.0.1:18803/predict
  curl -s -X POST -d @"$work/body.json" http://127.0.0.1:18803/predict > "$work/qp-pg-answer.json"
  for c in 4 32 128; do measure quantpipe-pg http://127.0.0.1:18803/predict "$c"; done
  curl -s http://127.0.0.1:18803/metrics > "$work/qp-pg-metrics.txt"
  kill "${pids[-1]}"; wait "${pids[-1]}" 2> /dev/null || true
  psql "$pg_url" -Atc "SELECT count(*) FROM predictions" > "$work/qp-pg-logged.txt" 2> /dev/null || true
else
  echo "== no PostgreSQL at $pg_admin: the PostgreSQL pass is skipped" >&2
fi

for workers in 1 2; do
  QUANTPIPE_BENCH_MODEL="$work/model/model.txt" "$venv/bin/uvicorn" --app-dir bench serve_fastapi:app \
    --host 127.0.0.1 --port 18802 --workers "$workers" --log-level warning --no-access-log \
    --loop uvloop --http httptools > /dev/null 2>&1 &
  pids+=($!)
  wait_for http://127.0.0.1:18802/predict
  curl -s -X POST -d @"$work/body.json" -H 'content-type: application/json' http://127.0.0.1:18802/predict > "$work/py-answer-$workers.json"
  for c in 4 32 128; do measure "fastapi$workers" http://127.0.0.1:18802/predict "$c"; done
  kill "${pids[-1]}"; wait "${pids[-1]}" 2> /dev/null || true
  sleep 1
done

.venv/bin/python - "$work" "$seconds" <<'PY'
import json, re, sys
work, seconds = sys.argv[1], int(sys.argv[2])
def parse(name, c):
    text = open(f"{work}/wrk-{name}-{c}.txt").read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    def ms(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return round(v / 1000 if unit == "us" else v * 1000 if unit == "s" else v, 3)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sockets = re.search(r"Socket errors: (.*)", text)
    return {"rps": round(rps), "p50_ms": ms(50), "p99_ms": ms(99),
            "non_2xx": int(errors.group(1)) if errors else 0, "socket_errors": sockets.group(1) if sockets else None}
q = json.load(open(f"{work}/qp-answer.json"))
p = json.load(open(f"{work}/py-answer-1.json"))
out = {"seconds_per_measurement": seconds, "probability_quantpipe": q["probability"],
       "probability_fastapi": p["probability"], "same_probability": abs(q["probability"] - p["probability"]) < 1e-12}
for c in (4, 32, 128):
    qs = parse("quantpipe", c)
    f1, f2 = parse("fastapi1", c), parse("fastapi2", c)
    best = max(f1, f2, key=lambda r: r["rps"])
    out[f"c{c}"] = {"quantpipe": qs, "fastapi_1_worker": f1, "fastapi_2_workers": f2,
                    "rps_ratio_vs_best_fastapi": round(qs["rps"] / best["rps"], 1)}
    try:
        pg = parse("quantpipe-pg", c)
        out[f"c{c}"]["quantpipe_postgres"] = pg
        out[f"c{c}"]["postgres_rps_ratio_vs_best_fastapi"] = round(pg["rps"] / best["rps"], 1)
    except FileNotFoundError:
        pass
metrics = open(f"{work}/qp-metrics.txt").read()
logged = re.search(r"quantpipe_prediction_log_written_total (\d+)", metrics)
dropped = re.search(r"quantpipe_prediction_log_dropped_total (\d+)", metrics)
out["quantpipe_predictions_logged"] = int(logged.group(1)) if logged else None
out["quantpipe_predictions_dropped_from_log"] = int(dropped.group(1)) if dropped else None
try:
    pg_metrics = open(f"{work}/qp-pg-metrics.txt").read()
    for key, name in (("written", "logged"), ("dropped", "dropped_from_log")):
        m = re.search(rf"quantpipe_prediction_log_{key}_total (\d+)", pg_metrics)
        out[f"quantpipe_postgres_predictions_{name}"] = int(m.group(1)) if m else None
    out["quantpipe_postgres_prediction_rows_in_database"] = int(open(f"{work}/qp-pg-logged.txt").read().strip() or 0)
    out["probability_quantpipe_postgres"] = json.load(open(f"{work}/qp-pg-answer.json"))["probability"]
except (FileNotFoundError, ValueError):
    pass
out.update(json.load(open(f"{work}/live.json")))
print(json.dumps(out, indent=2))
PY
