"""The Ingress deployment: HTTP in, validated feature rows out to the FraudModel deployment."""

import asyncio
import atexit
import logging
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import numpy as np
from fastapi import FastAPI
from ray import serve
from ray.serve.grpc_util import RayServegRPCContext
from ray.serve.handle import DeploymentHandle, DeploymentResponse

from ledger.settings import LedgerSettings
from ledger.writer import LedgerWriter
from serve_app.api import create_api, resolved_location
from serve_app.challenger import ChallengerRecorder, ShadowingModelHandle
from serve_app.champion_copy import FOLLOW_EVERY_S, STALE_AFTER_S, ChampionCopy
from serve_app.coalescing import CoalescingLimits, RowCoalescer
from serve_app.config import STOP_CHECK_INTERVAL_S, AppArgs, IngressConfig
from serve_app.data_plane import ModelHandle
from serve_app.decision_log import DecisionLog
from serve_app.errors import RETRY_AFTER_S
from serve_app.grpc_api import fraud_scoring_pb2 as pb
from serve_app.grpc_scoring import GrpcScoring, Refusal, Reply
from serve_app.metrics import ModelMetrics, RequestMetrics
from serve_app.refusals import Refusals
from serve_app.schemas import Answer, ColumnarAnswer, FeatureRows
from serve_app.settings import ServiceSettings

# Serve writes the "ray.serve" logger tree to the replica logs (with request ids): log under it.
logger = logging.getLogger(f"ray.serve.{__name__}")
M = TypeVar("M", pb.Prediction, pb.ColumnarPrediction)


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
        self.timeout_s = call_timeout_s  # a model call's bound
        self._rows: RowCoalescer[list[float], Answer] = RowCoalescer(self._score_rows, limits)
        # The deployment's model copied into this replica, for single rows; None: every row
        # goes to the deployment.
        self.copy: ChampionCopy | None = None
        self._unanswered_since: float | None = None  # the copy's follower, asking in vain

    def score(self, row: list[float]) -> Awaitable[Answer]:
        if self.copy is not None:
            answered: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
            try:
                answer = self.copy.score(row)
            except Exception as error:  # failed as a model call fails: through the awaitable
                answered.set_exception(error)
                return answered
            if answer is not None:
                answered.set_result(answer)
                return answered
        return self._rows.submit(row)

    async def follow(self, copy: ChampionCopy) -> None:
        """Keep `copy` on what the deployment serves (serve_app.champion_copy), until
        cancelled. Scores single rows with it from the moment it holds that model."""
        self.copy = copy
        try:
            while True:
                try:
                    reply = await self._bounded(self._handle.in_service.remote())
                except Exception as error:  # no replica yet, or one lost: asked again soon
                    self._asked_in_vain(error)
                else:
                    self._unanswered_since = None
                    await copy.follow(reply)
                await asyncio.sleep(FOLLOW_EVERY_S)
        finally:
            self.copy = None

    def _asked_in_vain(self, error: Exception) -> None:
        """Logged once a stretch of unanswered asks has lasted STALE_AFTER_S (the copy then
        stops scoring), not every second."""
        now = time.monotonic()
        if self._unanswered_since is None:
            self._unanswered_since = now
        elif now - self._unanswered_since >= STALE_AFTER_S:
            logger.warning(
                "The FraudModel deployment has not said what it serves for %.0f s (%r): single "
                "transactions go to it",
                now - self._unanswered_since,
                error,
            )
            self._unanswered_since = now

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
        if self.copy is not None:
            description["single_transactions"] = {
                "scored_in": "this Ingress replica's copy of the model (null: the deployment)",
                **self.copy.summary(),
            }
        return description

    async def _score_rows(self, rows: list[list[float]]) -> list[Answer]:
        # Bounded like a request: a call that never returns would hold its in-flight slot.
        answers: list[Answer] = await self._bounded(self._handle.score_many.remote(rows))
        return answers

    async def _bounded(self, response: DeploymentResponse[Any] | Any) -> Any:
        """`response` within `timeout_s`; one cut off is cancelled in the replica too, where
        nobody waits for it any more."""
        try:
            return await asyncio.wait_for(response, self.timeout_s)
        except (TimeoutError, asyncio.CancelledError):
            response.cancel()
            raise


class ChallengerModelHandle(CoalescingModelHandle):
    """The Challenger's DeploymentHandle, coalesced the same way, with every call cut off after
    `timeout_s` and then cancelled in the replica too: a coalesced call that hangs would
    otherwise hold up the rows queued behind it (one call at a time per queue), and keep the
    Challenger's slots busy after nobody waits for it any more."""

    def __init__(self, handle: DeploymentHandle[Any], timeout_s: float) -> None:
        super().__init__(handle, timeout_s)  # the challenger config's, set by the Ingress

    async def score_many(self, rows: FeatureRows) -> list[Answer]:
        answers: list[Answer] = await self._bounded(self._handle.score_many.remote(rows))
        return answers

    async def score_columns(self, rows: np.ndarray) -> ColumnarAnswer:
        answer: ColumnarAnswer = await self._bounded(self._handle.score_columns.remote(rows))
        return answer


@serve.deployment(
    ray_actor_options={"num_cpus": 0},
    # Two processes parse HTTP and JSON in parallel: Python uses one core per process.
    num_replicas=2,
    # The Ingress only parses JSON and awaits the model: let it hold many requests at once. With
    # Serve's default of 5, the proxy backs off while all 5 are busy.
    max_ongoing_requests=256,
    # Beyond this the proxy sheds load with 503 and Retry-After instead of queueing without end.
    max_queued_requests=512,
    graceful_shutdown_wait_loop_s=STOP_CHECK_INTERVAL_S,
    backpressure_config={"retry_after_s": RETRY_AFTER_S},
)
@serve.ingress()
class Ingress:
    def __init__(
        self,
        model: DeploymentHandle[Any],
        args: AppArgs,
        challenger: DeploymentHandle[Any] | None = None,
    ) -> None:
        self._model = model
        self._args = args
        self._challenger = challenger
        self._challenger_handle: ChallengerModelHandle | None = None
        self._shadowing: ShadowingModelHandle | None = None
        self._config: IngressConfig | None = None
        self._grpc: GrpcScoring | None = None
        self._settings = ServiceSettings()
        logging.getLogger("ray.serve.serve_app").setLevel(self._settings.log_level)
        self._metrics = RequestMetrics()
        self._champion: CoalescingModelHandle | None = None
        self._following: asyncio.Task[None] | None = None  # the champion copy's follower
        self._copy_metrics: ModelMetrics | None = None
        self._ledger = None if args.ledger is None else open_ledger(args.ledger, self._metrics)
        self._decisions = None if self._ledger is None else DecisionLog(self._ledger)
        if self._settings.sentry_dsn is not None:
            init_sentry(self._settings.sentry_dsn.get_secret_value())

    def __serve_build_asgi_app__(self) -> FastAPI:
        # Called by Serve after __init__ (and before reconfigure): the app is built per replica
        # from its own settings.
        self._champion = CoalescingModelHandle(self._model, self._args.request_timeout_s)
        model: ModelHandle = self._champion
        if self._challenger is not None:
            # The request's own timeout bounds it until reconfigure() sets the challenger's.
            self._challenger_handle = ChallengerModelHandle(
                self._challenger, self._args.request_timeout_s
            )
            # Sends nothing to the challenger until reconfigure() says how.
            self._shadowing = ShadowingModelHandle(
                model,
                self._challenger_handle,
                ChallengerRecorder(),
                decisions=self._decisions,
                budget_s=self._args.request_timeout_s,
            )
            model = self._shadowing
        refusals = Refusals(self._metrics, self._decisions)
        api = create_api(
            model,
            self._settings,
            self._args,
            refusals=refusals,
            challenger=self._shadowing.describe_challenger if self._shadowing else None,
            decisions=self._decisions,
        )
        self._grpc = GrpcScoring(api.state.table, api.state.keys, api.state.plane, refusals)
        return api

    # The gRPC methods (serve_app/grpc_api/fraud_scoring.proto), which Serve's gRPC server
    # calls by the RPC's name; served when the Serve config's grpc_options name the service.
    async def Predict(
        self, request: pb.Transaction, grpc_context: RayServegRPCContext
    ) -> pb.Prediction:
        assert self._grpc is not None  # built with the ASGI app, before any request
        reply = await self._grpc.predict(request, grpc_context.invocation_metadata())
        return answered(reply, grpc_context, pb.Prediction)

    async def PredictColumns(
        self, request: pb.TransactionColumns, grpc_context: RayServegRPCContext
    ) -> pb.ColumnarPrediction:
        assert self._grpc is not None
        reply = await self._grpc.predict_columns(request, grpc_context.invocation_metadata())
        return answered(reply, grpc_context, pb.ColumnarPrediction)

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply the Ingress's user_config (IngressConfig) in place. A bad one fails the
        replica's start; on a running replica it is refused, and the last good one stays."""
        try:
            config = IngressConfig.model_validate(
                user_config, context={"request_timeout_s": self._args.request_timeout_s}
            )
            if config.challenger is not None and self._shadowing is None:
                raise ValueError("this application has no Challenger deployment")
        except ValueError as error:  # pydantic's ValidationError is one
            if self._config is None:
                raise RuntimeError(
                    f"Ingress cannot start: invalid user_config: {error}. Fix the Ingress's "
                    "user_config in the Serve config, then redeploy."
                ) from None
            logger.error(
                "Ingress user_config refused, the previous one stays (%s): %s",
                self._config.model_dump(),
                error,
            )
            return
        if self._shadowing is not None and self._challenger_handle is not None:
            if config.challenger is not None:
                self._challenger_handle.timeout_s = config.challenger.timeout_s
            self._shadowing.configure(config.challenger)
        self._follow_the_champion(config.local_scoring)
        if config != self._config:
            logger.info(
                "Challenger: %s; single transactions scored %s",
                config.challenger or "none",
                "here" if config.local_scoring else "by the FraudModel deployment",
            )
        self._config = config

    def _follow_the_champion(self, on: bool) -> None:
        """Start or stop this replica's copy of the champion (serve_app.champion_copy)."""
        running = self._following is not None and not self._following.done()
        if on and not running and self._champion is not None:
            if self._copy_metrics is None:
                self._copy_metrics = ModelMetrics()
            copy = ChampionCopy(self._settings, self._copy_metrics)
            self._following = asyncio.get_running_loop().create_task(self._champion.follow(copy))
        elif not on and running and self._following is not None:
            self._following.cancel()
            self._following = None

    async def __del__(self) -> None:
        """Serve calls this when it stops the replica gracefully (a scale-down, a rollout, the
        service stopped): what the ledger holds is written before the process ends."""
        if self._ledger is not None:
            stats = await asyncio.to_thread(self._ledger.close)
            logger.info("Ledger closed: %s", stats)

    async def check_health(self) -> None:
        # Serve calls this every few seconds: send the challenger counts of the last second of
        # traffic, which would otherwise wait for the next request. Async, so that it runs on
        # the event loop that adds them up.
        if self._shadowing is not None:
            self._shadowing.flush()
        if self._champion is not None and self._champion.copy is not None:
            self._champion.copy.flush()


def answered(reply: Reply[M], context: RayServegRPCContext, empty: type[M]) -> M:
    """The answer message, with the call's request id sent back as `x-request-id` trailing
    metadata (as the HTTP API echoes X-Request-ID); for a refusal, its code and details set on
    the call, and an empty message (gRPC sends the code, not the message)."""
    if reply.request_id is not None:
        context.set_trailing_metadata([("x-request-id", reply.request_id)])
    answer = reply.answer
    if isinstance(answer, Refusal):
        context.set_code(answer.code)
        context.set_details(answer.details)
        return empty()
    return answer


def open_ledger(settings: LedgerSettings, metrics: RequestMetrics) -> LedgerWriter:
    """This replica's ledger writer: its files named after the replica, a relative local
    location taken from the project root (as artifact paths are), and its dropped records and
    failed writes counted in Prometheus."""
    settings = resolved_location(settings)
    replica = serve.get_replica_context().replica_id
    writer = LedgerWriter(
        settings,
        name=f"{replica.deployment_id.app_name}-{replica.unique_id}",
        on_dropped=metrics.ledger_dropped,
        on_write_failed=metrics.ledger_write_failed,
    )
    # A process that ends without Serve stopping the replica (SIGTERM to the worker, `ray
    # stop`) still writes what the ledger holds, as far as the interpreter's exit runs.
    atexit.register(writer.close)
    return writer


def init_sentry(dsn: str) -> None:
    try:
        import sentry_sdk
        from sentry_sdk.integrations.logging import ignore_logger
    except ImportError as error:
        raise RuntimeError(
            "FRAUD_SENTRY_DSN is set but sentry-sdk is not installed; install the 'sentry' extra"
        ) from error
    # The decision ledger's loggers speak of records (decisions, amounts, key ids): none of it
    # becomes a Sentry event or breadcrumb.
    for name in ledger_loggers():
        ignore_logger(name)
    # No PII, no request bodies, no local variables in exception frames and no breadcrumbs (the
    # log lines and requests before an error): each would carry transaction values or keys.
    sentry_sdk.init(
        dsn=dsn,
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
        max_breadcrumbs=0,
        before_send=without_request_data,
        traces_sample_rate=0.0,
    )
    logger.info("Sentry error reporting enabled")


def ledger_loggers() -> list[str]:
    """The names of the loggers of the `ledger` package and each of its modules."""
    import pkgutil

    import ledger

    return ["ledger", *(f"ledger.{m.name}" for m in pkgutil.iter_modules(ledger.__path__))]


def without_request_data(event: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any]:
    """A Sentry event with nothing of the request but its method and path: no body, query,
    headers (API keys) or cookies, whatever an integration attached; and no breadcrumbs."""
    event.pop("breadcrumbs", None)
    request = event.get("request")
    if isinstance(request, dict):
        event["request"] = {key: request[key] for key in ("method", "url") if key in request}
        if "url" in event["request"]:
            event["request"]["url"] = str(event["request"]["url"]).split("?", 1)[0]
    return event
