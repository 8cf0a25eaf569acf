"""Ingest benchmark: quantpipe vs the pandas script a user would otherwise write.

Both sides do the same work on the same file: parse the CSV (gzip), run the same checks (non-finite
values, sort order, exact vs conflicting duplicates, non-positive prices, OHLC consistency, zero
volume, gaps on a 24/7 calendar, robust-z extreme returns, stale runs of flat bars) and write
Parquet (zstd). quantpipe runs as the real CLI in a fresh process (start-up included); pandas runs
in-process with its imports already paid, which favours pandas.

Usage: bench/ingest.sh  (creates the virtual environment, builds quantpipe, runs this)
"""

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd


def pandas_ingest(path: str, out: str) -> dict:
    df = pd.read_csv(path)
    ts = df["open_time"].to_numpy()
    cols = ["open", "high", "low", "close", "volume"]
    values = df[cols].to_numpy(dtype="float64")
    report = {"non_finite": int((~np.isfinite(values)).any(axis=1).sum())}
    report["unsorted"] = int((np.diff(ts) < 0).sum())
    order = np.argsort(ts, kind="stable")
    df = df.iloc[order].reset_index(drop=True)
    dup_any = df.duplicated(subset=["open_time"], keep=False)
    exact = df.duplicated(keep="first")
    report["exact_duplicates"] = int(exact.sum())
    df = df[~exact].reset_index(drop=True)
    report["conflicting_duplicates"] = int(df.duplicated(subset=["open_time"], keep=False).sum()) if dup_any.any() else 0
    o, h, l, c, v = (df[k].to_numpy() for k in cols)
    report["non_positive"] = int(((o <= 0) | (h <= 0) | (l <= 0) | (c <= 0)).sum())
    report["ohlc"] = int(((h < l) | (h < np.maximum(o, c)) | (l > np.minimum(o, c))).sum())
    report["zero_volume"] = int((v == 0).sum())
    t = df["open_time"].to_numpy()
    d = np.diff(t)
    step = np.bincount(np.unique(d, return_inverse=True)[1]).argmax()
    step = np.unique(d)[step]
    missing = (d // step - 1)[d > step]
    report["gaps"], report["missing_bars"] = int(len(missing)), int(missing.sum())
    r = np.log(c[1:] / c[:-1])
    med = np.median(r)
    mad = 1.4826 * np.median(np.abs(r - med))
    report["extreme_returns"] = int((np.abs((r - med) / mad) > 30).sum())
    flat = np.r_[False, (o[1:] == c[:-1]) & (h[1:] == c[:-1]) & (l[1:] == c[:-1]) & (c[1:] == c[:-1])]
    runs = pd.Series(flat).ne(pd.Series(flat).shift()).cumsum()[flat]
    report["stale_runs"] = int((runs.value_counts() >= 10).sum())
    df["open_time"] = pd.to_datetime(df["open_time"], unit="ms", utc=True)
    df.to_parquet(out, compression="zstd", index=False)
    return report


def main():
    qp, path, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 5
    rows = sum(1 for _ in __import__("gzip").open(path, "rt")) - 1
    q_times, p_times, q_rss = [], [], 0
    for _ in range(reps):
        home = tempfile.mkdtemp()
        rss_file = os.path.join(home, "rss")
        start = time.perf_counter()
        # /usr/bin/time reports the peak RSS of quantpipe itself (rusage of a child forked from this
        # Python process would include the parent's pages copied before exec).
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file, qp, "ingest", path, "--symbol", "FILUSDT", "--json"],
                       check=True, env={**os.environ, "QUANTPIPE_HOME": home}, stdout=subprocess.DEVNULL)
        q_times.append(time.perf_counter() - start)
        q_rss = max(q_rss, int(open(rss_file).read().split()[-1]))
        shutil.rmtree(home)
        out = tempfile.mktemp(suffix=".parquet")
        start = time.perf_counter()
        report = pandas_ingest(path, out)
        p_times.append(time.perf_counter() - start)
        os.remove(out)
    q, p = statistics.median(q_times), statistics.median(p_times)
    result = {
        "file": os.path.basename(path), "rows": rows, "repetitions": reps,
        "quantpipe_s": round(q, 4), "pandas_s": round(p, 4), "speedup": round(p / q, 2),
        "quantpipe_peak_rss_mb": round(q_rss / 1024, 1),
        "pandas_report": report,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                   f"pandas {pd.__version__}",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
