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
from typing import Any, Protocol, TypeVar

import numpy as np
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError

from fraud_model.explain import DEFAULT_TOP_K
from serve_app.columnar_body import ColumnarRows
from serve_app.decision_log import DecisionLog
from serve_app.errors import RETRY_AFTER_S, ApiError, internal_error
from serve_app.request_context import Decided, Request, deciding
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


class DataPlane:
    """The model behind the predict endpoints, with the request timeout and the decision log
    (None: not recorded)."""

    def __init__(
        self, model: ModelHandle, request_timeout_s: float, decisions: DecisionLog | None
    ) -> None:
        self.model = model
        self._timeout_s = request_timeout_s
        self.decisions = decisions

    async def predict(
        self,
        body: TransactionBody,
        request: Request,
        explain: bool = False,
        top_k: int = DEFAULT_TOP_K,
    ) -> Answer:
        started = time.perf_counter()
        row = body.feature_row()
        decided = self._deciding(request, [row])
        if explain:
            (answer,) = await self.call(self.model.explain_many([row], top_k))
        else:
            answer = await self.call(self.model.score(row))
        self._record(decided, as_columns([answer]), started)
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
        decided = self._deciding(request, rows)
        if explain:
            answers = await self.call(self.model.explain_many(rows, top_k))
        else:
            answers = await self.call(self.model.score_many(rows))
        self._record(decided, as_columns(answers), started)
        return {"predictions": answers}

    async def predict_columns(
        self, body: ColumnarBatchBody | ColumnarRows, request: Request
    ) -> ColumnarAnswer:
        started = time.perf_counter()
        rows = body.feature_matrix()
        decided = self._deciding(request, rows)
        answer = await self.call(self.model.score_columns(rows))
        self._record(decided, answer, started)
        return answer

    def _deciding(self, request: Request, rows: FeatureRows) -> Decided:
        """The decision under way, visible to the model handle's tasks (serve_app.challenger)."""
        decided = Decided(request, rows)
        deciding.set(decided)
        return decided

    def _record(self, decided: Decided, answers: ColumnarAnswer, started: float) -> None:
        if self.decisions is not None:
            self.decisions.decided(
                decided.request,
                answers,
                decided.rows,
                role=decided.served_by,
                mode=decided.mode,
                latency_ms=elapsed_ms(started),
            )

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
            raise internal_error() from None


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def as_columns(answers: list[Answer]) -> ColumnarAnswer:
    """Answers as the columnar endpoint gives them (the fields of all rows, one list each)."""
    columns: ColumnarAnswer = {
        "fraud_probability": [answer["fraud_probability"] for answer in answers],
        "is_fraud": [answer["is_fraud"] for answer in answers],
        "threshold": answers[0]["threshold"],
        "model_version": answers[0]["model_version"],
    }
    if "decision_rule" in answers[0]:
        columns["decision_rule"] = answers[0]["decision_rule"]
    return columns
