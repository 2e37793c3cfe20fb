"""The predict endpoints over gRPC (serve_app/grpc_api/fraud_scoring.proto), answered by the
Ingress replica's methods that Serve's gRPC server calls by name.

As MLServer's and KServe's servicers do, each method only converts: its metadata is read as the
HTTP headers are (serve_app.request_headers) and checked against the endpoint table's role for
the method (serve_app.access), its message becomes the endpoint's own body model (so every bound
is the pydantic model's), and the DataPlane that answers HTTP answers it. A refusal is the HTTP
status mapped to a gRPC code, with the HTTP API's error body as its details.
"""

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc
from pydantic import BaseModel, ValidationError

from fraud_model.features import FEATURE_NAMES
from serve_app.access import AccessRefused, KeyRing, authorize
from serve_app.data_plane import DataPlane
from serve_app.errors import ApiError, ItemsError, capped, error_items
from serve_app.grpc_api import fraud_scoring_pb2 as pb
from serve_app.refusals import Refusals, Refused, Unadmitted
from serve_app.request_context import Request, new_request_id
from serve_app.request_headers import RequestHeaders, grpc_pairs
from serve_app.routes import Endpoint, EndpointTable, operator_endpoints
from serve_app.schemas import ColumnarBatchBody, TransactionBody

SERVICE = "fraud.v1.FraudScoring"
SERVICER_FUNCTION = "serve_app.grpc_api.fraud_scoring_pb2_grpc.add_FraudScoringServicer_to_server"
M = TypeVar("M", pb.Prediction, pb.ColumnarPrediction)
B = TypeVar("B", bound=BaseModel)

# The HTTP statuses the predict endpoints answer, as gRPC codes (gRPC's own HTTP mapping, with
# 503 as UNAVAILABLE, which clients retry, and 504 as DEADLINE_EXCEEDED).
STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


@dataclass(frozen=True)
class Refusal:
    """Why a call was not answered: its gRPC code and the HTTP API's error body, as JSON."""

    code: grpc.StatusCode
    details: str

    @classmethod
    def of(cls, status: int, detail: list[dict[str, Any]]) -> "Refusal":
        return cls(STATUS_CODES[status], json.dumps({"detail": detail}))


@dataclass(frozen=True)
class Reply(Generic[M]):
    """A method's outcome: its answer or refusal, and the call's request id (None when the id
    sent was refused)."""

    answer: M | Refusal
    request_id: str | None


class GrpcScoring:
    """The gRPC methods' work, without Serve's context: each takes the request message and its
    metadata, and gives the answer message or a Refusal."""

    def __init__(
        self,
        table: EndpointTable,
        keys: KeyRing,
        plane: DataPlane,
        refusals: Refusals | None = None,
    ) -> None:
        self.keys = keys
        self.plane = plane
        self.refusals = refusals
        self._single = table.grpc("Predict")
        self._columns = table.grpc("PredictColumns")
        self._transaction = body_model(self._single, TransactionBody)
        self._column_model = body_model(self._columns, ColumnarBatchBody)
        self._operator_endpoints = operator_endpoints(table)

    async def predict(
        self, message: pb.Transaction, metadata: Iterable[tuple[str, Any]]
    ) -> Reply[pb.Prediction]:
        try:
            request = self._admit(self._single, metadata)
        except Unadmitted as refusal:
            return self._refused(refusal.error, refusal.refused)
        try:
            values = {n: getattr(message, n) for n in FEATURE_NAMES if message.HasField(n)}
            answer = await self.plane.predict(validated(self._transaction, values), request)
        except ApiError as error:
            return self._refused(error, known(request))
        prediction = pb.Prediction(
            fraud_probability=answer["fraud_probability"],
            is_fraud=answer["is_fraud"],
            threshold=answer["threshold"],
            model_version=answer["model_version"],
            decision_rule=answer.get("decision_rule", ""),
        )
        return Reply(prediction, request.request_id)

    async def predict_columns(
        self, message: pb.TransactionColumns, metadata: Iterable[tuple[str, Any]]
    ) -> Reply[pb.ColumnarPrediction]:
        try:
            request = self._admit(self._columns, metadata)
        except Unadmitted as refusal:
            return self._refused(refusal.error, refusal.refused)
        try:
            values = {name: list(getattr(message, name)) for name in FEATURE_NAMES}
            body = validated(self._column_model, values)
            answer = await self.plane.predict_columns(body, request)
        except ApiError as error:
            return self._refused(error, known(request))
        return Reply(pb.ColumnarPrediction(**answer), request.request_id)

    def _admit(self, endpoint: Endpoint, metadata: Iterable[tuple[str, Any]]) -> Request:
        """The call as a Request, or Unadmitted: its metadata read as HTTP headers are, its key
        checked against what the endpoint needs."""
        route, received_at = f"{SERVICE}/{endpoint.grpc_method}", time.time()
        refused = Refused(route, received_at=received_at)
        pairs = grpc_pairs(metadata)
        try:
            headers = RequestHeaders.read(pairs)
        except ApiError as error:  # a refused id is never echoed back
            raise Unadmitted(error, refused) from None
        request_id = call_request_id(headers, pairs)
        try:
            caller = authorize(
                self.keys, endpoint.needs(False), headers.key, self._operator_endpoints
            )
        except AccessRefused as error:
            raise Unadmitted(error, Refused(route, request_id, error.key_id, received_at)) from None
        return Request(route, request_id, caller, received_at)

    def _refused(self, error: ApiError, refused: Refused) -> "Reply[Any]":
        if self.refusals is not None:
            self.refusals.refused(error, refused)
        return Reply(Refusal.of(error.status, error.detail()), refused.request_id)


def known(request: Request) -> Refused:
    """What a refusal of an admitted call is recorded with."""
    return Refused(request.route, request.request_id, request.caller.key_id, request.received_at)


def call_request_id(headers: RequestHeaders, pairs: list[tuple[bytes, bytes]]) -> str:
    """The call's request id: the caller's `x-request-id`, else Serve's own `request_id`
    metadata, else a new one (returned to the caller as `x-request-id`, to join the ledger
    with)."""
    if headers.request_id:
        return headers.request_id
    serves = [value for name, value in pairs if name == b"request_id"]
    return serves[0].decode() if serves and serves[0] else new_request_id()


def body_model(endpoint: Endpoint, kind: type[B]) -> type[B]:
    """The endpoint's body model, which the method's conversion expects to be a `kind`."""
    if endpoint.body is None or not issubclass(endpoint.body, kind):
        raise TypeError(f"{endpoint.path}'s body is {endpoint.body!r}, not a {kind.__name__}")
    return endpoint.body


def validated(model: type[B], values: dict[str, Any]) -> B:
    """`values` as `model`, or a 422 with every item of what is wrong, as the HTTP API answers
    the same values."""
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise ItemsError(422, "invalid", capped(error_items(error.errors(), ("body",)))) from None
