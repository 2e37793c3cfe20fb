"""The operator endpoints (the serving model, the challenger) and the health check."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, HTTPException

from ledger.files import LedgerStoreError
from ledger.outcomes import OutcomeBatch, OutcomeReceipt, record_outcomes
from ledger.settings import LedgerSettings
from serve_app.data_plane import DataPlane
from serve_app.errors import ERROR_RESPONSES, RETRY_AFTER_S, ApiError
from serve_app.fast_json import ValidatedJsonRoute
from serve_app.routes import EndpointTable, Handler, add_route
from serve_app.schemas import ErrorBody

# The statuses an endpoint without a body can answer, as documented on it.
_NO_BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    status: ERROR_RESPONSES[status] for status in (400, 401, 403, 500, 503, 504)
}
logger = logging.getLogger(f"ray.serve.{__name__}")
DescribeChallenger = Callable[[], Awaitable[dict[str, Any] | None]]


def add_operator_routes(
    router: APIRouter,
    table: EndpointTable,
    plane: DataPlane,
    challenger: DescribeChallenger | None,
) -> None:
    """`challenger` describes the challenger model and its comparison with the serving one
    (serve_app.challenger), or gives None while there is none."""

    async def model_info() -> dict[str, Any]:
        return await plane.call(plane.model.describe())

    async def challenger_info() -> dict[str, Any]:
        info = None if challenger is None else await plane.call(challenger())
        if info is None:  # a 404 like an unknown route's: not counted as a refusal
            raise HTTPException(404, "No challenger is configured (the Ingress's user_config)")
        return info

    add_route(router, table.get(Handler.MODEL), model_info, responses=_NO_BODY_ERRORS)
    no_challenger = {404: {"model": ErrorBody, "description": "No challenger is configured."}}
    add_route(
        router,
        table.get(Handler.CHALLENGER),
        challenger_info,
        responses=no_challenger | _NO_BODY_ERRORS,
    )


def add_outcomes_route(
    router: APIRouter, table: EndpointTable, ledger: LedgerSettings | None
) -> None:
    """Outcomes go to the ledger's outcomes table, each only if its decision is in the ledger
    (the others are reported back as unknown); docs/LEDGER.md says what the lookup scans."""

    async def record(body: OutcomeBatch) -> OutcomeReceipt:
        if ledger is None:
            raise ApiError(503, "no_ledger", "The decision ledger is turned off (args.ledger)")
        try:
            return await asyncio.to_thread(record_outcomes, body.outcomes, ledger)
        except LedgerStoreError:
            logger.exception("Outcomes could not be written to the ledger")
            raise ApiError(
                503,
                "ledger_unavailable",
                "The ledger's store cannot be written; nothing was recorded, retry later",
                retry_after=RETRY_AFTER_S,
            ) from None

    add_route(
        router,
        table.get(Handler.OUTCOMES),
        record,
        response_model=OutcomeReceipt,
        responses={
            status: ERROR_RESPONSES[status] for status in (400, 401, 403, 413, 415, 422, 503)
        },
        route_class_override=ValidatedJsonRoute,
    )


def add_health_route(router: APIRouter, table: EndpointTable) -> None:
    async def health_check() -> bool:
        return True

    add_route(router, table.get(Handler.HEALTH), health_check)
