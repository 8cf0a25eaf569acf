"""The Python side of bench/training.sh: Python LightGBM training on the same matrix with the same
parameters (what quantpipe passed to the C library), median of 5 fits; then checks that the model is
quantpipe's: identical trees and predictions. Prints JSON.

usage: training_python.py DIR
"""

import json
import sys
import time

import lightgbm as lgb
import numpy as np

directory = sys.argv[1]
params = json.load(open(f"{directory}/params.json"))
names = json.load(open(f"{directory}/names.json"))
x = np.fromfile(f"{directory}/x.f64", dtype="<f8").reshape(-1, len(names))
y = np.fromfile(f"{directory}/y.f64", dtype="<f8")
iterations = params.pop("num_iterations")

seconds = []
for _ in range(5):
    t = time.perf_counter()
    train = lgb.Dataset(x, label=y, feature_name=names, params={"verbosity": -1})
    booster = lgb.train(params, train, num_boost_round=iterations)
    seconds.append(time.perf_counter() - t)


def trees(text):
    return text[text.index("Tree=0"): text.index("end of trees")]


ours = lgb.Booster(model_file=f"{directory}/model.txt")
test = x[-10000:]
print(json.dumps({
    "python_train_s": round(float(np.median(seconds)), 3),
    "identical_trees": trees(booster.model_to_string()) == trees(open(f"{directory}/model.txt").read()),
    "max_prediction_difference": float(np.max(np.abs(booster.predict(test) - ours.predict(test)))),
}))
