"""NumPy's view of the preprocessing quantpipe fits: median imputation, winsorising at the q and 1 − q
quantiles (NumPy's default linear interpolation), then standardising with the population standard
deviation of the clipped values; all from the training rows only. Arrays travel as little-endian f64.

usage: preprocess_ref.py TRAIN.f64 COLUMNS Q OUT.f64   (OUT: fill, lower, upper, mean, scale per column)
"""

import sys

import numpy as np

train, columns, q, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
x = np.fromfile(train, dtype="<f8").reshape(-1, columns)
fill = np.nanmedian(x, axis=0)
lower = np.nanquantile(x, q, axis=0)
upper = np.nanquantile(x, 1 - q, axis=0)
clipped = np.clip(x, lower, upper)
mean = np.nanmean(clipped, axis=0)
scale = np.nanstd(clipped, axis=0)
scale[scale == 0] = 1.0
np.concatenate([fill, lower, upper, mean, scale]).astype("<f8").tofile(out)
