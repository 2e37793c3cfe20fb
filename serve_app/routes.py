"""The endpoint table: every route of the API, declared once.

Each endpoint's path, method, role, body model, body limit, media type and handler are here, and
everything else is derived from this table: the FastAPI routes (serve_app.api), the access rule
and body limit applied before a route runs (serve_app.gate), the lean path's eligibility, and the
gRPC methods' validation (serve_app.grpc_scoring). A route that is not in the table needs a key,
whatever it is: access is closed by default.

Paths are as Starlette routes them: without the application's `route_prefix` (Serve passes that
as the ASGI `root_path`).
"""

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.types import Scope

from ledger.outcomes import MAX_OUTCOMES_PER_CALL, OutcomeBatch
from serve_app.columnar_body import ColumnarBodyReader
from serve_app.config import AppArgs
from serve_app.schemas import Transaction, batch_request_model, columnar_request_model

API_PREFIX = "/api/v1"
PREDICT_PATH = f"{API_PREFIX}/predict"
BATCH_PATH = f"{API_PREFIX}/predict/batch"
COLUMNS_PATH = f"{API_PREFIX}/predict/columns"
MODEL_PATH = f"{API_PREFIX}/model"
CHALLENGER_PATH = f"{API_PREFIX}/model/challenger"
OUTCOMES_PATH = f"{API_PREFIX}/outcomes"
HEALTH_PATH = f"{API_PREFIX}/utils/health-check/"
DOCS_PATH = f"{API_PREFIX}/docs"
OPENAPI_PATH = f"{API_PREFIX}/openapi.json"
JSON = "application/json"
# One transaction is about 1 KiB of JSON; a batch gets this much room per transaction.
SINGLE_BODY_LIMIT = 16 * 1024
BYTES_PER_TRANSACTION = 2 * 1024
BYTES_PER_OUTCOME = 512  # a request id of up to 256 characters, a source and a time


class Role(enum.IntEnum):
    """What a caller may do; each role may do what the ones below it may."""

    OPEN = 0  # no key needed: the health check, and the docs where they are served
    SCORING = 1
    OPERATOR = 2


class Handler(enum.Enum):
    """What answers an endpoint (serve_app.api maps each to its route function)."""

    PREDICT = "predict"
    PREDICT_BATCH = "predict_batch"
    PREDICT_COLUMNS = "predict_columns"
    MODEL = "model"
    CHALLENGER = "challenger"
    OUTCOMES = "outcomes"
    HEALTH = "health"
    DOCS = "docs"  # served by FastAPI itself: the Swagger UI page, its files and the spec


@dataclass(frozen=True)
class Endpoint:
    path: str
    method: str
    role: Role
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    body_limit: int = 0  # bytes; only for endpoints with a body
    explain: bool = False  # takes ?explain=true, which needs an operator key
    grpc_method: str | None = None  # the same endpoint over gRPC (fraud_scoring.proto)
    prefix_match: bool = False  # the docs' static files: every path below `path`
    # Reads a plainly valid body without the body model, or gives None to leave it to the model
    # (serve_app.columnar_body); the lean path tries it first.
    fast_reader: Callable[[bytes], Any] | None = None

    @property
    def media_type(self) -> str | None:
        """The body's media type; every body of this API is JSON."""
        return JSON if self.body is not None else None

    @property
    def lean(self) -> bool:
        """Answered by the lean path when nothing about the request is unusual
        (serve_app.gate): the scoring endpoints."""
        return self.body is not None and self.role is Role.SCORING

    def needs(self, explain: bool) -> Role:
        """The role this request needs: reason codes show how the model decides."""
        return Role.OPERATOR if explain and self.explain else self.role


class EndpointTable:
    """The API's endpoints, looked up by (route path, method)."""

    def __init__(self, endpoints: list[Endpoint]) -> None:
        self.endpoints = tuple(endpoints)
        self._exact = {(e.path, e.method): e for e in endpoints if not e.prefix_match}
        self._prefixes = [e for e in endpoints if e.prefix_match]
        self._by_grpc = {e.grpc_method: e for e in endpoints if e.grpc_method}

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(self.endpoints)

    def match(self, path: str, method: str) -> Endpoint | None:
        """The endpoint of this request; None for a route the API does not have (such a
        request needs a key: closed by default). HEAD is answered as GET."""
        method = "GET" if method == "HEAD" else method
        found = self._exact.get((path, method))
        if found is not None:
            return found
        for endpoint in self._prefixes:
            if method == endpoint.method and path.startswith(endpoint.path + "/"):
                return endpoint
        return None

    def grpc(self, method: str) -> Endpoint:
        """The endpoint a gRPC method is (its name, e.g. `Predict`)."""
        return self._by_grpc[method]

    def get(self, handler: Handler) -> Endpoint:
        return next(e for e in self.endpoints if e.handler is handler)


def endpoint_table(args: AppArgs) -> EndpointTable:
    """The endpoints of an API built with `args` (its batch limit, whether it serves docs)."""
    batch_limit = args.max_transactions_per_request * BYTES_PER_TRANSACTION
    most = args.max_transactions_per_request
    endpoints = [
        Endpoint(
            PREDICT_PATH,
            "POST",
            Role.SCORING,
            Handler.PREDICT,
            "Score one transaction",
            body=Transaction,
            body_limit=SINGLE_BODY_LIMIT,
            explain=True,
            grpc_method="Predict",
        ),
        Endpoint(
            BATCH_PATH,
            "POST",
            Role.SCORING,
            Handler.PREDICT_BATCH,
            f"Score 1 to {most} transactions in one call, answers in order",
            body=batch_request_model(most),
            body_limit=batch_limit,
            explain=True,
        ),
        Endpoint(
            COLUMNS_PATH,
            "POST",
            Role.SCORING,
            Handler.PREDICT_COLUMNS,
            f"Score 1 to {most} transactions sent as columns, answers as columns",
            body=columnar_request_model(most),
            body_limit=batch_limit,
            grpc_method="PredictColumns",
            fast_reader=ColumnarBodyReader(most),
        ),
        Endpoint(
            MODEL_PATH,
            "GET",
            Role.OPERATOR,
            Handler.MODEL,
            "The serving model: version, pin, training data, held-out metrics, threshold",
        ),
        Endpoint(
            CHALLENGER_PATH,
            "GET",
            Role.OPERATOR,
            Handler.CHALLENGER,
            "The challenger model, its mode and share, and how its decisions compared with the "
            "serving model's, as counted by the Ingress replica that answers",
        ),
        Endpoint(
            OUTCOMES_PATH,
            "POST",
            Role.OPERATOR,
            Handler.OUTCOMES,
            f"Record what really happened to 1 to {MAX_OUTCOMES_PER_CALL} decided transactions "
            "(chargebacks, investigators' reviews), for the realized-performance report",
            body=OutcomeBatch,
            body_limit=MAX_OUTCOMES_PER_CALL * BYTES_PER_OUTCOME,
        ),
        Endpoint(
            HEALTH_PATH,
            "GET",
            Role.OPEN,
            Handler.HEALTH,
            "Liveness probe (never needs an API key)",
        ),
    ]
    if args.openapi_docs:
        docs = "The OpenAPI docs"
        endpoints += [
            Endpoint("/", "GET", Role.OPEN, Handler.DOCS, f"{docs}: the root leads there"),
            Endpoint(DOCS_PATH, "GET", Role.OPEN, Handler.DOCS, docs),
            Endpoint(OPENAPI_PATH, "GET", Role.OPEN, Handler.DOCS, f"{docs}: the spec"),
            Endpoint(f"{DOCS_PATH}/oauth2-redirect", "GET", Role.OPEN, Handler.DOCS, docs),
            Endpoint(
                f"{DOCS_PATH}/static", "GET", Role.OPEN, Handler.DOCS, docs, prefix_match=True
            ),
        ]
    return EndpointTable(endpoints)


def add_route(
    router: APIRouter, endpoint: Endpoint, function: Callable[..., Any], **options: Any
) -> None:
    """`function` as the route of `endpoint`, documented with its summary (and the key it
    needs); `options` are FastAPI's (responses, response_model, ...)."""
    needs = {Role.OPEN: "", Role.SCORING: "", Role.OPERATOR: " (operator key)"}[endpoint.role]
    router.add_api_route(
        endpoint.path,
        function,
        methods=[endpoint.method],
        summary=endpoint.summary + needs,
        **options,
    )


def operator_endpoints(table: EndpointTable) -> str:
    """The endpoints that need an operator key, as a refusal names them."""
    named = [f"{e.method} {e.path}" for e in table if e.role is Role.OPERATOR]
    with_explain = [e.path for e in table if e.explain]
    return ", ".join(named) + f", and explain=true on {', '.join(with_explain)}"


def route_path(scope: Scope) -> str:
    """The request's path as Starlette routes it: without the `root_path` that Serve sets from
    the application's `route_prefix` (Starlette's own rule, which is not public API)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    if path == root:
        return ""
    return path[len(root) :] if path[len(root)] == "/" else path
