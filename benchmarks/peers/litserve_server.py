"""The forest's ONNX export on LitServe, the lightest hand-built alternative: onnxruntime in
LitServe's inference workers, batching up to 32 requests, one worker per core.

Runs in the LitServe environment the harness makes, never in the project's: it imports nothing of
the project. FRAUD_PEER_CONFIG names a JSON file with the model path, the feature order, the
threshold, the parameters of the artifact's calibration, the worker count and the batch timeout.

    python litserve_server.py PORT
    POST /predict        {V1..V28, Amount}                        (batched by LitServe)
    POST /predict/batch  {"transactions": [... 1,000 rows ...]}   (one request, one call)

A 1,000-row request is not one of LitServe's batch items (those are requests): it gets an API of
its own that scores its rows in one call.
"""

import json
import os
import sys
from pathlib import Path
from typing import Any

import litserve as ls
import numpy as np
import onnxruntime
from peer_calibration import platt  # copied beside this file by the harness

FEATURES = (*(f"V{i}" for i in range(1, 29)), "Amount")
MAX_BATCH_SIZE = 32


class Scorer:
    """The ONNX forest, then the artifact's calibration and threshold."""

    def __init__(self, config: dict[str, Any]) -> None:
        if tuple(config["features"]) != FEATURES:
            raise ValueError(f"the artifact's features {config['features']} are not {FEATURES}")
        options = onnxruntime.SessionOptions()
        # One worker per core: a worker's session keeps to its own core.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            config["model"], options, providers=["CPUExecutionProvider"]
        )
        self.input = self.session.get_inputs()[0].name
        self.threshold = config["threshold"]
        self.calibration = config["calibration"]

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        (scores,) = self.session.run(["probabilities"], {self.input: matrix})
        return platt(scores[:, 1], self.calibration)

    def answer(self, probability: float) -> dict[str, Any]:
        return {"fraud_probability": probability, "is_fraud": probability >= self.threshold}


def row_vector(row: dict[str, float]) -> np.ndarray:
    return np.array([row[name] for name in FEATURES], dtype=np.float32)


class SingleAPI(ls.LitAPI):
    """One transaction per request; LitServe stacks the batch's vectors into one matrix."""

    def setup(self, device: str) -> None:
        self.scorer = Scorer(load_config())

    def decode_request(self, request: dict[str, float]) -> np.ndarray:
        return row_vector(request)

    def predict(self, x: np.ndarray) -> list[float]:
        return self.scorer.probabilities(x).tolist()

    def encode_response(self, output: float) -> dict[str, Any]:
        return self.scorer.answer(output)


class BatchAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.scorer = Scorer(load_config())

    def decode_request(self, request: dict[str, list[dict[str, float]]]) -> np.ndarray:
        return np.stack([row_vector(row) for row in request["transactions"]])

    def predict(self, x: np.ndarray) -> list[float]:
        return self.scorer.probabilities(x).tolist()

    def encode_response(self, output: list[float]) -> dict[str, Any]:
        return {"predictions": [self.scorer.answer(p) for p in output]}


def load_config() -> dict[str, Any]:
    config: dict[str, Any] = json.loads(Path(os.environ["FRAUD_PEER_CONFIG"]).read_text())
    return config


def main() -> None:
    port = int(sys.argv[1])
    config = load_config()
    workers = config["workers"]
    server = ls.LitServer(
        [
            SingleAPI(max_batch_size=MAX_BATCH_SIZE, batch_timeout=config["batch_timeout_s"]),
            BatchAPI(api_path="/predict/batch"),
        ],
        accelerator="cpu",
        workers_per_device=workers,
        fast_queue=True,  # ZeroMQ between the HTTP servers and the workers, for high request rates
        timeout=30,
    )
    server.run(
        host="127.0.0.1",
        port=port,
        num_api_servers=workers,
        log_level="warning",
        generate_client_file=False,
    )


if __name__ == "__main__":
    main()
