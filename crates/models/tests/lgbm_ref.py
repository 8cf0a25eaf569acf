"""Python LightGBM (the oracle, tests/requirements.txt) on a model file quantpipe saved: predictions
and TreeSHAP contributions for the same rows. Arrays travel as little-endian f64 files.

usage: lgbm_ref.py MODEL.txt FEATURES.f64 COLUMNS PREDICTIONS_OUT.f64 CONTRIBUTIONS_OUT.f64
"""

import sys

import lightgbm as lgb
import numpy as np

model, features, columns, out_pred, out_contrib = sys.argv[1:6]
x = np.fromfile(features, dtype="<f8").reshape(-1, int(columns))
booster = lgb.Booster(model_file=model)
booster.predict(x).astype("<f8").tofile(out_pred)
booster.predict(x, pred_contrib=True).astype("<f8").tofile(out_contrib)
