"""The HTTP API as a FastAPI app, built around the FraudModel handle (or anything like it)."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse
from fastapi_offline import FastAPIOffline
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError

from fraud_model.explain import DEFAULT_TOP_K
from fraud_model.features import FEATURE_NAMES
from serve_app.auth import ApiKeyMiddleware, KeyRing, access_rules
from serve_app.body_limit import BodySizeLimit
from serve_app.config import AppArgs
from serve_app.errors import ERROR_RESPONSES, ApiError, Rejections, install_error_handlers
from serve_app.fast_json import FastJSONResponse, ValidatedJsonRoute
from serve_app.guards import require_json
from serve_app.schemas import (
    Answer,
    BatchPrediction,
    BatchRequestBody,
    ErrorBody,
    FeatureRows,
    Prediction,
    Transaction,
    batch_request_model,
)
from serve_app.settings import ServiceSettings

logger = logging.getLogger(f"ray.serve.{__name__}")

API_PREFIX = "/api/v1"
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
T = TypeVar("T")
RETRY = 1  # seconds, in Retry-After: Serve replaces a replica or drains a queue in about that


class ModelHandle(Protocol):
    """What the API awaits from the FraudModel deployment (serve_app.ingress adapts its
    DeploymentHandle; the unit tests score in-process)."""

    def score(self, row: list[float]) -> Awaitable[Answer]:
        """One row; the Ingress sends concurrent ones as one score_many call."""
        ...

    def score_many(self, rows: FeatureRows) -> Awaitable[list[Answer]]:
        """The rows of one request; requests are batched in the replica."""
        ...

    def explain_many(self, rows: FeatureRows, top_k: int) -> Awaitable[list[Answer]]:
        """Scores with each feature's contribution."""
        ...

    def describe(self) -> Awaitable[dict[str, Any]]:
        """The serving model's metadata (GET /api/v1/model)."""
        ...


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
    # Middleware added last runs first: CORS (preflights carry no key), then the key check,
    # then the body size limit, so a request without a valid key is refused unread.
    api.add_middleware(
        BodySizeLimit,
        limits={f"{API_PREFIX}/predict/batch": max_transactions * BYTES_PER_TRANSACTION},
        default=SINGLE_BODY_LIMIT,
    )
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

    async def call_model(response: Awaitable[T]) -> T:
        """Await the model with the end-to-end timeout; map Serve's failures to 503/504."""
        try:
            return await asyncio.wait_for(response, request_timeout_s)
        except TimeoutError:
            raise ApiError(
                504, "timeout", f"The model did not answer within {request_timeout_s:g} s"
            ) from None
        except BackPressureError:
            raise ApiError(
                503,
                "overloaded",
                "The model's queue is full; retry later",
                retry_after=RETRY,
            ) from None
        except RayActorError:  # the replica died mid-request; Serve is replacing it
            raise ApiError(
                503,
                "model_unavailable",
                "The model replica failed; retry",
                retry_after=RETRY,
            ) from None
        except Exception:
            # Answered here, in the API's error shape: an exception escaping to Serve would
            # become a plain-text 500.
            logger.exception("The model call failed")
            raise ApiError(500, "internal", "Internal error; it has been logged") from None

    def log_prediction(answer: Answer, started: float, row: list[float]) -> None:
        fields: dict[str, Any] = {
            "model_version": answer["model_version"],
            "fraud_probability": answer["fraud_probability"],
            "is_fraud": answer["is_fraud"],
            "latency_ms": elapsed_ms(started),
        }
        if settings.log_features:
            fields["features"] = row
        logger.info("prediction", extra=fields)

    def log_batch(answers: list[Answer], started: float) -> None:
        # One line per request, not per row: a line per row costs more than scoring 1,000 rows.
        scores = [answer["fraud_probability"] for answer in answers]
        fields = {
            "model_version": answers[0]["model_version"],
            "transactions": len(answers),
            "flagged": [index for index, answer in enumerate(answers) if answer["is_fraud"]],
            "max_fraud_probability": max(scores),
            "latency_ms": elapsed_ms(started),
        }
        logger.info("batch prediction", extra=fields)

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
        transaction: Transaction, explain: Explain = False, top_k: TopK = DEFAULT_TOP_K
    ) -> Any:
        started = time.perf_counter()
        row = transaction.feature_row()
        if explain:
            (answer,) = await call_model(model.explain_many([row], top_k))
        else:
            answer = await call_model(model.score(row))
        if settings.log_predictions:
            log_prediction(answer, started, row)
        # Built by our own code from floats and bools: skip re-validating the response.
        return FastJSONResponse(answer)

    BatchRequest = batch_request_model(max_transactions)

    @router.post(
        "/predict/batch",
        response_model=BatchPrediction,
        response_model_exclude_none=True,
        summary=f"Score 1 to {max_transactions} transactions in one call, answers in order",
        dependencies=body_guards,
        responses=ERROR_RESPONSES,
    )
    async def predict_batch(
        request: BatchRequest,  # type: ignore[valid-type]
        explain: Explain = False,
        top_k: TopK = DEFAULT_TOP_K,
    ) -> Any:
        started = time.perf_counter()
        batch: BatchRequestBody = request
        rows = batch.feature_matrix()
        if explain:
            answers = await call_model(model.explain_many(rows, top_k))
        else:
            answers = await call_model(model.score_many(rows))
        if settings.log_predictions:
            log_batch(answers, started)
        return FastJSONResponse({"predictions": answers})

    @router.get(
        "/model",
        summary="The serving model: version, pin, training data, held-out metrics, threshold "
        "(operator key)",
        responses={status: ERROR_RESPONSES[status] for status in (401, 403, 500, 503, 504)},
    )
    async def model_info() -> dict[str, Any]:
        return await call_model(model.describe())

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
        info = None if challenger is None else await call_model(challenger())
        if info is None:  # a 404 like an unknown route's: not counted as a refusal
            raise HTTPException(404, "No challenger is configured (the Ingress's user_config)")
        return info

    @router.get("/utils/health-check/", summary="Liveness probe (never needs an API key)")
    async def health_check() -> bool:
        return True

    api.include_router(router)
    return api


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
