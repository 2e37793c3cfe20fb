"""The HTTP API as a FastAPI app, built around the FraudModel handle (or anything like it)."""

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse
from fastapi_offline import FastAPIOffline

from fraud_model.explain import DEFAULT_TOP_K
from fraud_model.features import FEATURE_NAMES
from serve_app.auth import ApiKeyMiddleware, KeyRing, access_rules
from serve_app.body_limit import BodySizeLimit
from serve_app.config import AppArgs
from serve_app.errors import ERROR_RESPONSES, Rejections, install_error_handlers
from serve_app.fast_json import FastJSONResponse, ValidatedJsonRoute
from serve_app.fast_path import ScoringFastPath
from serve_app.guards import require_json
from serve_app.prediction_log import PredictionLog
from serve_app.schemas import (
    BatchPrediction,
    BatchRequestBody,
    ColumnarBatchBody,
    ColumnarPrediction,
    ErrorBody,
    Prediction,
    Transaction,
    batch_request_model,
    columnar_request_model,
)
from serve_app.scoring import (
    API_PREFIX,
    BATCH_ROUTE,
    COLUMNS_ROUTE,
    SINGLE_ROUTE,
    ModelHandle,
    Scorer,
)
from serve_app.settings import ServiceSettings

logger = logging.getLogger(f"ray.serve.{__name__}")

DOCS_URL = f"{API_PREFIX}/docs"
SINGLE_BODY_LIMIT = 16 * 1024  # one transaction is about 1 KiB of JSON
BYTES_PER_TRANSACTION = 2 * 1024
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


def create_api(
    model: ModelHandle,
    settings: ServiceSettings,
    args: AppArgs | None = None,
    rejections: Rejections | None = None,
    challenger: Callable[[], Awaitable[dict[str, Any] | None]] | None = None,
) -> FastAPI:
    """The API around `model`. Raises MissingApiKeysError when no key is configured and
    `args.allow_anonymous` is off. `challenger` describes the challenger model and its
    comparison with `model` (serve_app.challenger), or gives None while there is none."""
    args = args if args is not None else AppArgs()
    keys = KeyRing.from_settings(settings, args.allow_anonymous)
    max_transactions, request_timeout_s = args.max_transactions_per_request, args.request_timeout_s
    title, version = "Fraud scoring API", "1"
    description = "Scores card transactions for fraud with a RandomForest on Ray Serve."
    if args.openapi_docs:
        # Swagger UI's files come from the fastapi-offline package and are served here, under
        # the prefix, so the page works without internet (a VPC, an offline laptop).
        api = FastAPIOffline(
            docs_url=DOCS_URL,
            redoc_url=None,
            static_url=f"{DOCS_URL}/static",
            openapi_url=f"{API_PREFIX}/openapi.json",
            swagger_ui_oauth2_redirect_url=f"{DOCS_URL}/oauth2-redirect",
            title=title,
            description=description,
            version=version,
        )

        @api.get("/", include_in_schema=False)
        async def to_the_docs() -> RedirectResponse:
            """Someone who opens the root in a browser gets the docs."""
            return RedirectResponse(DOCS_URL)

    else:
        api = FastAPI(
            docs_url=None,
            redoc_url=None,
            openapi_url=None,
            title=title,
            description=description,
            version=version,
        )
    install_error_handlers(api, rejections)
    # Middleware added last runs first: the lean predict path (serve_app.fast_path), then
    # CORS (preflights carry no key), then the key check, then the body size limit, so a
    # request without a valid key is refused unread.
    body_limits = {
        SINGLE_ROUTE: SINGLE_BODY_LIMIT,
        BATCH_ROUTE: max_transactions * BYTES_PER_TRANSACTION,
        COLUMNS_ROUTE: max_transactions * BYTES_PER_TRANSACTION,
    }
    api.add_middleware(BodySizeLimit, limits=body_limits, default=SINGLE_BODY_LIMIT)
    api.add_middleware(
        ApiKeyMiddleware, keys=keys, needed=access_rules(API_PREFIX), rejections=rejections
    )
    if settings.cors_origins:
        api.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Authorization", "X-API-Key", "X-Request-ID"],
        )

    scorer = Scorer(
        model,
        request_timeout_s,
        PredictionLog() if settings.log_predictions else None,
        log_features=settings.log_features,
    )
    BatchRequest = batch_request_model(max_transactions)
    ColumnarRequest = columnar_request_model(max_transactions)
    # Added last, so it runs first: valid predict requests are answered there.
    api.add_middleware(
        ScoringFastPath,
        scorer=scorer,
        keys=keys,
        batch_model=BatchRequest,
        columnar_model=ColumnarRequest,
        body_limits=body_limits,
        cross_origin=bool(settings.cors_origins),
        rejections=rejections,
    )

    # For the gRPC methods of the Ingress (serve_app.grpc_scoring): the same keys and scorer.
    api.state.keys, api.state.scorer = keys, scorer

    body_guards = [Depends(require_json)]
    router = APIRouter(prefix=API_PREFIX, route_class=ValidatedJsonRoute)

    @router.post(
        "/predict",
        response_model=Prediction,
        response_model_exclude_none=True,
        summary="Score one transaction",
        dependencies=body_guards,
        responses=ERROR_RESPONSES,
    )
    async def predict(
        request: Request,
        transaction: Transaction,
        explain: Explain = False,
        top_k: TopK = DEFAULT_TOP_K,
    ) -> Any:
        row, request_id = transaction.feature_row(), request.headers.get("x-request-id")
        if explain:
            (answer,) = await scorer.explained([row], top_k, request_id, SINGLE_ROUTE)
        else:
            answer = await scorer.one(row, request_id)
        # Built by our own code from floats and bools: skip re-validating the response.
        return FastJSONResponse(answer)

    @router.post(
        "/predict/batch",
        response_model=BatchPrediction,
        response_model_exclude_none=True,
        summary=f"Score 1 to {max_transactions} transactions in one call, answers in order",
        dependencies=body_guards,
        responses=ERROR_RESPONSES,
    )
    async def predict_batch(
        http_request: Request,
        request: BatchRequest,  # type: ignore[valid-type]
        explain: Explain = False,
        top_k: TopK = DEFAULT_TOP_K,
    ) -> Any:
        batch: BatchRequestBody = request
        rows, request_id = batch.feature_matrix(), http_request.headers.get("x-request-id")
        if explain:
            answers = await scorer.explained(rows, top_k, request_id, BATCH_ROUTE)
        else:
            answers = await scorer.many(rows, request_id)
        return FastJSONResponse({"predictions": answers})

    @router.post(
        "/predict/columns",
        response_model=ColumnarPrediction,
        summary=f"Score 1 to {max_transactions} transactions sent as columns, answers as columns",
        description="The batch endpoint's compact form for bulk scoring: each feature is a list "
        "with one value per transaction (a data frame's columns), and the answer lists each "
        "field for the transactions in the same order. The same rules apply to every value as "
        "to a single transaction's; an error's `loc` names the column and the position.",
        dependencies=body_guards,
        responses=ERROR_RESPONSES,
    )
    async def predict_columns(
        http_request: Request,
        request: ColumnarRequest,  # type: ignore[valid-type]
    ) -> Any:
        columns: ColumnarBatchBody = request
        request_id = http_request.headers.get("x-request-id")
        answer = await scorer.columns(columns.feature_matrix(), request_id)
        return FastJSONResponse(answer)

    @router.get(
        "/model",
        summary="The serving model: version, pin, training data, held-out metrics, threshold "
        "(operator key)",
        responses={status: ERROR_RESPONSES[status] for status in (401, 403, 500, 503, 504)},
    )
    async def model_info() -> dict[str, Any]:
        return await scorer.call(model.describe())

    @router.get(
        "/model/challenger",
        summary="The challenger model, its mode and share, and how its decisions compared with "
        "the serving model's, as counted by the Ingress replica that answers (operator key)",
        responses={
            404: {"model": ErrorBody, "description": "No challenger is configured."},
            **{status: ERROR_RESPONSES[status] for status in (401, 403, 500, 503, 504)},
        },
    )
    async def challenger_info() -> dict[str, Any]:
        info = None if challenger is None else await scorer.call(challenger())
        if info is None:  # a 404 like an unknown route's: not counted as a refusal
            raise HTTPException(404, "No challenger is configured (the Ingress's user_config)")
        return info

    @router.get("/utils/health-check/", summary="Liveness probe (never needs an API key)")
    async def health_check() -> bool:
        return True

    api.include_router(router)
    return api
