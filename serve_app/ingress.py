"""The Ingress deployment: HTTP in, validated feature rows out to the FraudModel deployment."""

import asyncio
import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from serve_app.api import create_api
from serve_app.coalescing import CoalescingLimits, RowCoalescer
from serve_app.config import AppArgs
from serve_app.metrics import RequestMetrics
from serve_app.prediction_log import prediction_log_file, write_predictions_to
from serve_app.schemas import Answer, ColumnarAnswer, FeatureRows
from serve_app.settings import ServiceSettings

# Serve writes the "ray.serve" logger tree to the replica logs (with request ids): log under it.
logger = logging.getLogger(f"ray.serve.{__name__}")


class CoalescingModelHandle:
    """The FraudModel DeploymentHandle as the API awaits it (serve_app.scoring.ModelHandle), with
    single rows grouped into few `score_many` calls (serve_app.coalescing)."""

    def __init__(
        self,
        handle: DeploymentHandle[Any],
        call_timeout_s: float,
        limits: CoalescingLimits | None = None,
    ) -> None:
        self._handle = handle
        self._call_timeout_s = call_timeout_s
        self._rows: RowCoalescer[list[float], Answer] = RowCoalescer(self._score_rows, limits)

    def score(self, row: list[float]) -> Awaitable[Answer]:
        return self._rows.submit(row)

    async def score_many(self, rows: FeatureRows) -> list[Answer]:
        answers: list[Answer] = await self._handle.score_many.remote(rows)
        return answers

    async def score_columns(self, rows: np.ndarray) -> ColumnarAnswer:
        answer: ColumnarAnswer = await self._handle.score_columns.remote(rows)
        return answer

    async def explain_many(self, rows: FeatureRows, top_k: int) -> list[Answer]:
        answers: list[Answer] = await self._handle.explain_many.remote(rows, top_k)
        return answers

    async def describe(self) -> dict[str, Any]:
        description: dict[str, Any] = await self._handle.describe.remote()
        return description

    async def _score_rows(self, rows: list[list[float]]) -> list[Answer]:
        # Bounded like a request: a call that never returns would hold its in-flight slot. One
        # cut off is cancelled in the replica too, where nobody waits for it any more.
        response = self._handle.score_many.remote(rows)
        try:
            answers: list[Answer] = await asyncio.wait_for(response, self._call_timeout_s)
        except (TimeoutError, asyncio.CancelledError):
            response.cancel()  # type: ignore[no-untyped-call]  # unannotated in Ray
            raise
        return answers


@serve.deployment(
    ray_actor_options={"num_cpus": 0},
    # Two processes parse HTTP and JSON in parallel: Python uses one core per process.
    num_replicas=2,
    # The Ingress only parses JSON and awaits the model: let it hold many requests at once. With
    # Serve's default of 5, the proxy backs off while all 5 are busy.
    max_ongoing_requests=256,
    # Beyond this the proxy sheds load with 503 and Retry-After instead of queueing without end.
    max_queued_requests=512,
    backpressure_config={"retry_after_s": 1},
)
@serve.ingress()
class Ingress:
    def __init__(self, model: DeploymentHandle[Any], args: AppArgs) -> None:
        self._model = model
        self._args = args
        self._settings = ServiceSettings()
        logging.getLogger("ray.serve.serve_app").setLevel(self._settings.log_level)
        if self._settings.log_predictions:
            write_predictions_to(
                prediction_log_file(
                    prediction_log_path(self._settings.prediction_log_dir),
                    self._settings.prediction_log_max_bytes,
                    self._settings.prediction_log_backups,
                )
            )
        if self._settings.sentry_dsn is not None:
            init_sentry(self._settings.sentry_dsn.get_secret_value())

    def __serve_build_asgi_app__(self) -> FastAPI:
        # Called by Serve after __init__: the app is built per replica from its own settings.
        return create_api(
            CoalescingModelHandle(self._model, self._args.request_timeout_s),
            self._settings,
            self._args,
            rejections=RequestMetrics(),
        )


def prediction_log_path(directory: Path | None) -> Path:
    """This replica's prediction log file, in `directory` or else beside its Serve log."""
    replica = serve.get_replica_context().replica_id
    name = f"predictions_{replica.deployment_id.app_name}_{replica.deployment_id.name}"
    return (directory or serve_log_dir()) / f"{name}_{replica.unique_id}.jsonl"


def serve_log_dir() -> Path:
    """Where Serve writes this replica's log (its logging_config may have moved it)."""
    for handler in logging.getLogger("ray.serve").handlers:
        target = getattr(handler, "target", handler)  # Serve buffers in a MemoryHandler
        if isinstance(target, logging.FileHandler):
            return Path(target.baseFilename).parent
    raise RuntimeError(
        "Serve's replica log file was not found: set FRAUD_PREDICTION_LOG_DIR for the "
        "prediction log, or FRAUD_LOG_PREDICTIONS=false"
    )


def init_sentry(dsn: str) -> None:
    try:
        import sentry_sdk
    except ImportError as error:
        raise RuntimeError(
            "FRAUD_SENTRY_DSN is set but sentry-sdk is not installed; install the 'sentry' extra"
        ) from error
    # No PII, no request bodies and no local variables in exception frames: each would carry
    # transaction values or keys.
    sentry_sdk.init(
        dsn=dsn,
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
        before_send=without_request_data,
        traces_sample_rate=0.0,
    )
    logger.info("Sentry error reporting enabled")


def without_request_data(event: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any]:
    """A Sentry event with nothing of the request but its method and path: no body, query,
    headers (API keys) or cookies, whatever an integration attached."""
    request = event.get("request")
    if isinstance(request, dict):
        event["request"] = {key: request[key] for key in ("method", "url") if key in request}
        if "url" in event["request"]:
            event["request"]["url"] = str(event["request"]["url"]).split("?", 1)[0]
    return event
