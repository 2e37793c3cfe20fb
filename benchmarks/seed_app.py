"""The plain FastAPI app this service replaces, for comparison only: it unpickles the forest and
calls sklearn's predict_proba once per request (run with `uvicorn --workers 2`).

    FRAUD_SEED_ARTIFACT=artifacts/default uvicorn benchmarks.seed_app:app --workers 2
"""

import os
from pathlib import Path

import joblib
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel, create_model

from fraud_model.features import FEATURE_NAMES

SeedTransaction = create_model("SeedTransaction", **{name: (float, ...) for name in FEATURE_NAMES})


class SeedPrediction(BaseModel):
    fraud_probability: float
    is_fraud: bool


app = FastAPI(docs_url="/api/v1/docs", openapi_url="/api/v1/openapi.json")
_model = None


@app.on_event("startup")
def load_model() -> None:
    global _model
    artifact = Path(os.environ.get("FRAUD_SEED_ARTIFACT", "artifacts/default"))
    _model = joblib.load(artifact / "model.joblib")


@app.post("/api/v1/predict", response_model=SeedPrediction)
def predict(transaction: SeedTransaction) -> SeedPrediction:  # type: ignore[valid-type]
    row = np.array([[getattr(transaction, name) for name in FEATURE_NAMES]], dtype=np.float32)
    probability = float(_model.predict_proba(row)[0, 1])
    return SeedPrediction(fraud_probability=probability, is_fraud=probability >= 0.5)


@app.get("/api/v1/utils/health-check/")
def health_check() -> bool:
    return True
