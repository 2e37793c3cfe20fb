"""The scoring endpoints' FastAPI routes, one per entry of the endpoint table with a body.

Each only hands its validated body to the DataPlane method that the lean path calls too
(serve_app.gate): a request reaches these when it has a query (`explain`, `top_k`) or an invalid
body, whose refusal FastAPI words.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from fraud_model.explain import DEFAULT_TOP_K
from fraud_model.features import FEATURE_NAMES
from serve_app.data_plane import DataPlane
from serve_app.errors import ERROR_RESPONSES
from serve_app.fast_json import FastJSONResponse, ValidatedJsonRoute
from serve_app.request_context import admitted
from serve_app.routes import Endpoint, EndpointTable, Handler, add_route
from serve_app.schemas import BatchPrediction, ColumnarPrediction, Prediction

Explain = Annotated[
    bool,
    Query(
        description="Add the features' contributions to the score (reason codes). Needs an "
        "operator key, and costs several times plain scoring (docs/BENCHMARKS.md): leave it off "
        "on the checkout path."
    ),
]
TopK = Annotated[
    int,
    Query(
        ge=1,
        le=len(FEATURE_NAMES),
        description="With explain=true: how many features to list, by absolute contribution; "
        "the rest are summed into `other`. Ignored without explain.",
    ),
]
ANSWERS: dict[Handler, type[BaseModel]] = {
    Handler.PREDICT: Prediction,
    Handler.PREDICT_BATCH: BatchPrediction,
    Handler.PREDICT_COLUMNS: ColumnarPrediction,
}
COLUMNS_DESCRIPTION = (
    "The batch endpoint's compact form for bulk scoring: each feature is a list with one value "
    "per transaction (a data frame's columns), and the answer lists each field for the "
    "transactions in the same order. The same rules apply to every value as to a single "
    "transaction's; an error's `loc` names the column and the position."
)


def add_predict_routes(router: APIRouter, table: EndpointTable, plane: DataPlane) -> None:
    methods: dict[Handler, Callable[..., Awaitable[Any]]] = {
        Handler.PREDICT: plane.predict,
        Handler.PREDICT_BATCH: plane.predict_batch,
        Handler.PREDICT_COLUMNS: plane.predict_columns,
    }
    for endpoint in table:
        if endpoint.handler in methods:
            add_route(
                router,
                endpoint,
                route(endpoint, methods[endpoint.handler]),
                response_model=ANSWERS[endpoint.handler],
                response_model_exclude_none=True,
                description=COLUMNS_DESCRIPTION
                if endpoint.handler is Handler.PREDICT_COLUMNS
                else None,
                responses=ERROR_RESPONSES,
                route_class_override=ValidatedJsonRoute,
            )


def route(endpoint: Endpoint, answer: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    """The route function of a scoring endpoint: its body model as the body's type (FastAPI
    validates and documents it), and the explain query where the endpoint takes it."""
    Body = endpoint.body
    if endpoint.explain:

        async def explainable(
            request: Request,
            body: Body,  # type: ignore[valid-type]
            explain: Explain = False,
            top_k: TopK = DEFAULT_TOP_K,
        ) -> Any:
            # Built by our own code from floats and bools: skip re-validating the response.
            return FastJSONResponse(await answer(body, admitted(request.scope), explain, top_k))

        return explainable

    async def plain(request: Request, body: Body) -> Any:  # type: ignore[valid-type]
        return FastJSONResponse(await answer(body, admitted(request.scope)))

    return plain
