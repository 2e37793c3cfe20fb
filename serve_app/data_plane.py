"""What a request does once it is valid and allowed: ask the model, record the decision.

The one place where a predict request is decided, whichever way it came: the lean path and the
FastAPI routes (serve_app.gate, serve_app.api) and the gRPC methods (serve_app.grpc_scoring)
each turn their request into the body models of the endpoint table and call a DataPlane method,
so all of them answer, fail and record alike.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError

from fraud_model.explain import DEFAULT_TOP_K
from serve_app.access import Caller
from serve_app.errors import RETRY_AFTER_S, ApiError
from serve_app.prediction_log import PredictionLog
from serve_app.schemas import (
    Answer,
    BatchRequestBody,
    ColumnarAnswer,
    ColumnarBatchBody,
    FeatureRows,
    TransactionBody,
)

logger = logging.getLogger(f"ray.serve.{__name__}")

T = TypeVar("T")


class ModelHandle(Protocol):
    """What the API awaits from the FraudModel deployment (serve_app.ingress adapts its
    DeploymentHandle; the unit tests score in-process)."""

    def score(self, row: list[float]) -> Awaitable[Answer]:
        """One row; the Ingress sends concurrent ones together (serve_app.coalescing)."""
        ...

    def score_many(self, rows: FeatureRows) -> Awaitable[list[Answer]]:
        """The rows of one request; requests are batched in the replica."""
        ...

    def score_columns(self, rows: np.ndarray) -> Awaitable[ColumnarAnswer]:
        """The rows of one columnar request, answered as columns."""
        ...

    def explain_many(self, rows: FeatureRows, top_k: int) -> Awaitable[list[Answer]]:
        """Scores with each feature's contribution."""
        ...

    def describe(self) -> Awaitable[dict[str, Any]]:
        """The serving model's metadata (the model endpoint)."""
        ...


@dataclass(frozen=True)
class Request:
    """What a decision is recorded with besides its answer: the route it came by (an HTTP path
    or a gRPC method), the request id and the caller."""

    route: str
    request_id: str | None
    caller: Caller


class DataPlane:
    """The model behind the predict endpoints, with the request timeout and the prediction log
    (None: not logged)."""

    def __init__(
        self,
        model: ModelHandle,
        request_timeout_s: float,
        predictions: PredictionLog | None,
        log_features: bool = False,
    ) -> None:
        self.model = model
        self._timeout_s = request_timeout_s
        self._predictions = predictions
        self._log_features = log_features

    async def predict(
        self,
        body: TransactionBody,
        request: Request,
        explain: bool = False,
        top_k: int = DEFAULT_TOP_K,
    ) -> Answer:
        started = time.perf_counter()
        row = body.feature_row()
        if explain:
            (answer,) = await self.call(self.model.explain_many([row], top_k))
        else:
            answer = await self.call(self.model.score(row))
        self._log(request, as_columns([answer]), started, row, explained=explain)
        return answer

    async def predict_batch(
        self,
        body: BatchRequestBody,
        request: Request,
        explain: bool = False,
        top_k: int = DEFAULT_TOP_K,
    ) -> dict[str, list[Answer]]:
        started = time.perf_counter()
        rows = body.feature_matrix()
        if explain:
            answers = await self.call(self.model.explain_many(rows, top_k))
        else:
            answers = await self.call(self.model.score_many(rows))
        self._log(request, as_columns(answers), started, explained=explain)
        return {"predictions": answers}

    async def predict_columns(self, body: ColumnarBatchBody, request: Request) -> ColumnarAnswer:
        started = time.perf_counter()
        answer = await self.call(self.model.score_columns(body.feature_matrix()))
        self._log(request, answer, started)
        return answer

    def _log(
        self,
        request: Request,
        answers: ColumnarAnswer,
        started: float,
        row: Any = None,
        explained: bool = False,
    ) -> None:
        if self._predictions is None:
            return
        record: dict[str, Any] = {
            "request_id": request.request_id,
            "route": request.route,
            "model_version": answers["model_version"],
        }
        scores, flags = answers["fraud_probability"], answers["is_fraud"]
        if row is not None:  # one transaction
            record["fraud_probability"], record["is_fraud"] = scores[0], flags[0]
            if self._log_features:
                record["features"] = list(map(float, row))
        else:
            # Every decision with its score: a batch's transactions are joined later by the
            # request id and their position.
            record["transactions"] = len(scores)
            record["fraud_probabilities"] = scores
            record["flagged"] = [index for index, flag in enumerate(flags) if flag]
        if explained:
            record["explained"] = True
        record["latency_ms"] = elapsed_ms(started)
        self._predictions.write(record)

    async def call(self, response: Awaitable[T]) -> T:
        """Await the model with the end-to-end timeout; map Serve's failures to 503/504."""
        try:
            return await asyncio.wait_for(response, self._timeout_s)
        except TimeoutError:
            raise ApiError(
                504, "timeout", f"The model did not answer within {self._timeout_s:g} s"
            ) from None
        except BackPressureError:
            raise ApiError(
                503,
                "overloaded",
                "The model's queue is full; retry later",
                retry_after=RETRY_AFTER_S,
            ) from None
        except RayActorError:  # the replica died mid-request; Serve is replacing it
            raise ApiError(
                503,
                "model_unavailable",
                "The model replica failed; retry",
                retry_after=RETRY_AFTER_S,
            ) from None
        except Exception:
            # Answered here, in the API's error shape: an exception escaping to Serve would
            # become a plain-text 500.
            logger.exception("The model call failed")
            raise ApiError(500, "internal", "Internal error; it has been logged") from None


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def as_columns(answers: list[Answer]) -> ColumnarAnswer:
    """Answers as the columnar endpoint gives them (the fields of all rows, one list each)."""
    return {
        "fraud_probability": [answer["fraud_probability"] for answer in answers],
        "is_fraud": [answer["is_fraud"] for answer in answers],
        "threshold": answers[0]["threshold"],
        "model_version": answers[0]["model_version"],
    }
