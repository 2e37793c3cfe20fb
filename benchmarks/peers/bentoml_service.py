"""The forest on BentoML, as its documentation builds a throughput service: a batchable API
(adaptive batching, up to 32 requests) and one worker per core.

Runs in the BentoML environment the harness makes, never in the project's: it imports nothing of
the project. FRAUD_PEER_CONFIG names a JSON file with the model path, the feature order, the
threshold and the parameters of the artifact's calibration.

    POST /predict        {"transactions": [{V1..V28, Amount}]}    (batchable: its input is a list)
    POST /predict/batch  {"transactions": [... 1,000 rows ...]}   (not batchable, see below)

A batchable API's input is itself a batch, which the dispatcher would cut into pieces of 32 rows:
a 1,000-row request gets an API of its own that scores the rows in one call.
"""

import json
import os
from pathlib import Path

import bentoml
import joblib
import numpy as np
from peer_calibration import platt  # copied beside this file by the harness
from pydantic import BaseModel, create_model

FEATURES = (*(f"V{i}" for i in range(1, 29)), "Amount")
MAX_BATCH_SIZE = 32


Transaction = create_model("Transaction", **{name: (float, ...) for name in FEATURES})


class Answer(BaseModel):
    fraud_probability: float
    is_fraud: bool


# No access line per request: the other peers and the seed app write none either.
@bentoml.service(workers="cpu_count", logging={"access": {"enabled": False}})
class FraudService:
    def __init__(self) -> None:
        config = json.loads(Path(os.environ["FRAUD_PEER_CONFIG"]).read_text())
        if tuple(config["features"]) != FEATURES:
            raise ValueError(f"the artifact's features {config['features']} are not {FEATURES}")
        self.model = joblib.load(config["model"])
        self.threshold = config["threshold"]
        self.calibration = config["calibration"]

    def score(self, rows: list[BaseModel]) -> list[Answer]:
        matrix = np.array([[getattr(row, name) for name in FEATURES] for row in rows], np.float32)
        calibrated = platt(self.model.predict_proba(matrix)[:, 1], self.calibration)
        return [Answer(fraud_probability=p, is_fraud=p >= self.threshold) for p in calibrated]

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE)
    def predict(self, transactions: list[Transaction]) -> list[Answer]:  # type: ignore[valid-type]
        return self.score(transactions)

    @bentoml.api(route="/predict/batch")
    def predict_batch(self, transactions: list[Transaction]) -> list[Answer]:  # type: ignore[valid-type]
        return self.score(transactions)
