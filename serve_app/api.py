"""The HTTP API as a FastAPI app, built around anything with a `score` handle method."""

from typing import Protocol

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from serve_app.errors import install_error_handlers
from serve_app.schemas import BatchPrediction, Prediction, Transaction, batch_request_model
from serve_app.settings import ServiceSettings

API_PREFIX = "/api/v1"


DEFAULT_MAX_TRANSACTIONS = 1000


class ScoreHandle(Protocol):
    """The part of the FraudModel DeploymentHandle that the API uses."""

    @property
    def score(self): ...  # one row; requests are batched together in the replica

    @property
    def score_many(self): ...  # the rows of one request, scored together


def create_api(
    model: ScoreHandle,
    settings: ServiceSettings,
    max_transactions: int = DEFAULT_MAX_TRANSACTIONS,
) -> FastAPI:
    api = FastAPI(
        title="Fraud scoring API",
        description="Scores card transactions for fraud with a RandomForest served on Ray Serve.",
        version="1",
        docs_url=f"{API_PREFIX}/docs",
        openapi_url=f"{API_PREFIX}/openapi.json",
        redoc_url=None,
    )
    install_error_handlers(api)
    if settings.cors_origins:
        api.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Authorization", "X-Request-ID"],
        )

    router = APIRouter(prefix=API_PREFIX)

    @router.post("/predict", response_model=Prediction, summary="Score one transaction")
    async def predict(transaction: Transaction) -> Prediction:
        score = await model.score.remote(transaction.feature_row())
        return Prediction.model_validate(score)

    BatchRequest = batch_request_model(max_transactions)

    @router.post(
        "/predict/batch",
        response_model=BatchPrediction,
        summary=f"Score 1 to {max_transactions} transactions in one call, answers in order",
    )
    async def predict_batch(request: BatchRequest) -> BatchPrediction:  # type: ignore[valid-type]
        rows = [transaction.feature_row() for transaction in request.transactions]
        return BatchPrediction(predictions=await model.score_many.remote(rows))

    @router.get("/utils/health-check/", summary="Liveness probe")
    async def health_check() -> bool:
        return True

    api.include_router(router)
    return api
