"""The FastAPI server a team would write by hand: the same LightGBM model file, the same request
and answer shape as quantpipe serve's POST /predict (model_name + a feature array → prediction,
probability, version, id, latency). Run by bench/serve.sh under uvicorn.

QUANTPIPE_BENCH_MODEL names the LightGBM text model file.
"""
import os
import time
import uuid

import lightgbm as lgb
import numpy as np
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

booster = lgb.Booster(model_file=os.environ["QUANTPIPE_BENCH_MODEL"])
n_features = booster.num_feature()
app = FastAPI()


class PredictRequest(BaseModel):
    model_name: str
    features: list[float]


@app.post("/predict")
def predict(request: PredictRequest):
    started = time.perf_counter()
    if request.model_name != "direction":
        raise HTTPException(status_code=404, detail=f"unknown model {request.model_name!r}")
    if len(request.features) != n_features:
        raise HTTPException(status_code=422, detail=f"expected {n_features} features")
    p = float(booster.predict(np.asarray([request.features], dtype=np.float64))[0])
    return {
        "id": uuid.uuid4().hex,
        "prediction": 1.0 if p >= 0.5 else 0.0,
        "probability": p,
        "confidence": max(p, 1.0 - p),
        "model_name": "direction",
        "model_version": "direction@1.0.0",
        "route": "champion",
        "source": "model",
        "latency_us": int((time.perf_counter() - started) * 1e6),
    }
