"""The HTTP API as a FastAPI app, built around anything with a `score` handle method."""

from typing import Protocol

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from serve_app.errors import install_error_handlers
from serve_app.schemas import Prediction, Transaction
from serve_app.settings import ServiceSettings

API_PREFIX = "/api/v1"


class ScoreHandle(Protocol):
    """The part of the FraudModel DeploymentHandle that the API uses."""

    @property
    def score(self): ...


def create_api(model: ScoreHandle, settings: ServiceSettings) -> FastAPI:
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

    @router.get("/utils/health-check/", summary="Liveness probe")
    async def health_check() -> bool:
        return True

    api.include_router(router)
    return api
