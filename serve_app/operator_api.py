"""The operator endpoints (the serving model, the challenger) and the health check."""

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, HTTPException

from serve_app.data_plane import DataPlane
from serve_app.errors import ERROR_RESPONSES
from serve_app.routes import EndpointTable, Handler, add_route
from serve_app.schemas import ErrorBody

# The statuses an endpoint without a body can answer, as documented on it.
_NO_BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    status: ERROR_RESPONSES[status] for status in (400, 401, 403, 500, 503, 504)
}
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


def add_health_route(router: APIRouter, table: EndpointTable) -> None:
    async def health_check() -> bool:
        return True

    add_route(router, table.get(Handler.HEALTH), health_check)
