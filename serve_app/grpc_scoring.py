"""The predict endpoints over gRPC (serve_app/grpc_api/fraud_scoring.proto), answered by the
Ingress replica's methods that Serve's gRPC server calls by name.

The same keys, rules, model, prediction log and error bodies as over HTTP: a valid message is
checked with a few comparisons; one that is not goes through the HTTP body's pydantic model, so
that a refusal names the field as the HTTP API's 422 does. A refusal is the HTTP status mapped to
a gRPC code, with the HTTP error body as its details.
"""

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
from pydantic import ValidationError

from fraud_model.features import FEATURE_DTYPE, FEATURE_NAMES
from serve_app.auth import KeyRing, key_in
from serve_app.errors import ApiError, Rejections, capped, error_items
from serve_app.grpc_api import fraud_scoring_pb2 as pb
from serve_app.schemas import (
    MAX_ABS_COMPONENT,
    MAX_AMOUNT,
    ColumnarBatchBody,
    Transaction,
    columnar_request_model,
)
from serve_app.scoring import Scorer

SERVICE = "fraud.v1.FraudScoring"
SINGLE_METHOD = f"/{SERVICE}/Predict"
COLUMNS_METHOD = f"/{SERVICE}/PredictColumns"
SERVICER_FUNCTION = "serve_app.grpc_api.fraud_scoring_pb2_grpc.add_FraudScoringServicer_to_server"

# The HTTP statuses the predict endpoints answer, as gRPC codes (gRPC's own HTTP mapping, with
# 503 as UNAVAILABLE, which clients retry, and 504 as DEADLINE_EXCEEDED).
STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
_KEY_METADATA = ("authorization", "x-api-key")


@dataclass(frozen=True)
class Refusal:
    """Why a call was not answered: its gRPC code and the HTTP API's error body, as JSON."""

    code: grpc.StatusCode
    details: str

    @classmethod
    def of(cls, status: int, detail: list[dict[str, Any]]) -> "Refusal":
        return cls(STATUS_CODES[status], json.dumps({"detail": detail}))


class GrpcScoring:
    """The gRPC methods' work, without Serve's context: each takes the request message and its
    metadata, and gives the answer message or a Refusal."""

    def __init__(
        self,
        scorer: Scorer,
        keys: KeyRing,
        max_transactions: int,
        rejections: Rejections | None = None,
    ) -> None:
        self.scorer = scorer
        self.keys = keys
        self.columnar_model = columnar_request_model(max_transactions)
        self.max_transactions = max_transactions
        self.rejections = rejections

    async def predict(
        self, message: pb.Transaction, metadata: Iterable[tuple[str, Any]], request_id: str
    ) -> pb.Prediction | Refusal:
        try:
            self._check_key(_metadata(metadata))
            row = transaction_row(message)
            answer = await self.scorer.one(row, request_id, SINGLE_METHOD)
        except ApiError as error:
            return self._refused(error)
        return pb.Prediction(
            fraud_probability=answer["fraud_probability"],
            is_fraud=answer["is_fraud"],
            threshold=answer["threshold"],
            model_version=answer["model_version"],
        )

    async def predict_columns(
        self,
        message: pb.TransactionColumns,
        metadata: Iterable[tuple[str, Any]],
        request_id: str,
    ) -> pb.ColumnarPrediction | Refusal:
        try:
            self._check_key(_metadata(metadata))
            rows = self.column_rows(message)
            answer = await self.scorer.columns(rows, request_id, COLUMNS_METHOD)
        except ApiError as error:
            return self._refused(error)
        return pb.ColumnarPrediction(**answer)

    def column_rows(self, message: pb.TransactionColumns) -> np.ndarray:
        """The (n, 29) float32 matrix of the columns, or an ApiError naming what is wrong."""
        columns = [getattr(message, name) for name in FEATURE_NAMES]
        length = len(columns[0])
        if 0 < length <= self.max_transactions and all(len(c) == length for c in columns):
            values = np.array(columns, dtype=np.float64)
            components, amounts = values[:-1], values[-1]
            # NaN fails every comparison: it is refused with the out-of-range values.
            if (np.abs(components) <= MAX_ABS_COMPONENT).all() and (
                (amounts >= 0) & (amounts <= MAX_AMOUNT)
            ).all():
                return np.ascontiguousarray(values.T, dtype=FEATURE_DTYPE)
        raise invalid(
            self.columnar_model,
            {name: list(c) for name, c in zip(FEATURE_NAMES, columns, strict=True)},
        )

    def _check_key(self, by_name: Mapping[bytes, bytes]) -> None:
        if self.keys.anonymous or self.keys.role_of(key_in(by_name)) is not None:
            return  # either role may score
        raise ApiError(
            401, "unauthorized", "A valid API key is required", loc=["header", "authorization"]
        )

    def _refused(self, error: ApiError) -> Refusal:
        if self.rejections is not None:
            self.rejections.rejected(error.kind)
        return Refusal.of(error.status, error.detail())


def transaction_row(message: pb.Transaction) -> list[float]:
    """The features in the model's order, or an ApiError naming each field that is wrong."""
    row = [getattr(message, name) for name in FEATURE_NAMES if message.HasField(name)]
    if (
        len(row) == len(FEATURE_NAMES)
        and all(-MAX_ABS_COMPONENT <= value <= MAX_ABS_COMPONENT for value in row[:-1])
        and 0 <= row[-1] <= MAX_AMOUNT
    ):
        return row
    present = {name: getattr(message, name) for name in FEATURE_NAMES if message.HasField(name)}
    raise invalid(Transaction, present)


def invalid(model: type[Transaction] | type[ColumnarBatchBody], values: dict[str, Any]) -> ApiError:
    """The 422 that `model` gives for `values`, which the quick checks refused."""
    try:
        model.model_validate(values)
    except ValidationError as error:
        return InvalidBody(capped(error_items(error.errors(), ("body",))))
    # The quick checks and the model disagree: refuse rather than score unchecked values.
    return InvalidBody([{"type": "invalid", "loc": ["body"], "msg": "Invalid transaction values"}])


class InvalidBody(ApiError):
    """A 422 with every item of the body's validation errors."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        first = items[0]
        super().__init__(422, "invalid", first["msg"], loc=first["loc"])
        self.items = items

    def detail(self) -> list[dict[str, Any]]:
        return self.items


def request_id_in(metadata: Iterable[tuple[str, Any]]) -> str:
    """The call's request id: the caller's `x-request-id`, else Serve's own `request_id`
    metadata, else a new one (returned to the caller as `x-request-id`, to join the prediction
    log with)."""
    given = dict(metadata)
    for name in ("x-request-id", "request_id"):
        if isinstance(given.get(name), str) and given[name]:
            return str(given[name])
    return str(uuid.uuid4())


def _metadata(metadata: Iterable[tuple[str, Any]]) -> dict[bytes, bytes]:
    """The key metadata by name, as bytes like HTTP headers."""
    found: dict[bytes, bytes] = {}
    for name, value in metadata:
        if name in _KEY_METADATA:
            found[name.encode()] = value.encode() if isinstance(value, str) else bytes(value)
    return found
