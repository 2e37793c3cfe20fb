"""What a predict request does once its body is valid: ask the model, log the decision.

Shared by the FastAPI routes (serve_app.api) and the lean path in front of them
(serve_app.fast_path), so that both answer, fail and log alike.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

import numpy as np
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError

from serve_app.errors import ApiError
from serve_app.prediction_log import PredictionLog
from serve_app.schemas import Answer, ColumnarAnswer, FeatureRows

logger = logging.getLogger(f"ray.serve.{__name__}")

T = TypeVar("T")
API_PREFIX = "/api/v1"
SINGLE_ROUTE = f"{API_PREFIX}/predict"
BATCH_ROUTE = f"{API_PREFIX}/predict/batch"
COLUMNS_ROUTE = f"{API_PREFIX}/predict/columns"
RETRY = 1  # seconds, in Retry-After: Serve replaces a replica or drains a queue in about that


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
        """The serving model's metadata (GET /api/v1/model)."""
        ...


class Scorer:
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

    async def one(
        self, row: list[float], request_id: str | None, route: str = SINGLE_ROUTE
    ) -> Answer:
        started = time.perf_counter()
        answer = await self.call(self.model.score(row))
        self._log(route, request_id, as_columns([answer]), started, row)
        return answer

    async def many(self, rows: FeatureRows, request_id: str | None) -> list[Answer]:
        started = time.perf_counter()
        answers = await self.call(self.model.score_many(rows))
        self._log(BATCH_ROUTE, request_id, as_columns(answers), started)
        return answers

    async def columns(
        self, rows: np.ndarray, request_id: str | None, route: str = COLUMNS_ROUTE
    ) -> ColumnarAnswer:
        started = time.perf_counter()
        answer = await self.call(self.model.score_columns(rows))
        self._log(route, request_id, answer, started)
        return answer

    async def explained(
        self, rows: FeatureRows, top_k: int, request_id: str | None, route: str
    ) -> list[Answer]:
        started = time.perf_counter()
        answers = await self.call(self.model.explain_many(rows, top_k))
        row = rows[0] if route == SINGLE_ROUTE else None
        self._log(route, request_id, as_columns(answers), started, row, explained=True)
        return answers

    def _log(
        self,
        route: str,
        request_id: str | None,
        answers: ColumnarAnswer,
        started: float,
        row: Any = None,
        explained: bool = False,
    ) -> None:
        if self._predictions is None:
            return
        record: dict[str, Any] = {
            "request_id": request_id,
            "route": route,
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
                503, "overloaded", "The model's queue is full; retry later", retry_after=RETRY
            ) from None
        except RayActorError:  # the replica died mid-request; Serve is replacing it
            raise ApiError(
                503, "model_unavailable", "The model replica failed; retry", retry_after=RETRY
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
