"""The HTTP API as a FastAPI app, built from the endpoint table around the FraudModel handle (or
anything like it)."""

from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from fraud_model.store import LocalLocation, parse_location
from ledger.settings import LedgerSettings
from serve_app.access import KeyRing
from serve_app.config import AppArgs
from serve_app.data_plane import DataPlane, ModelHandle
from serve_app.decision_log import DecisionLog
from serve_app.gate import RequestGate
from serve_app.loading import PROJECT_ROOT
from serve_app.operator_api import (
    DescribeChallenger,
    add_health_route,
    add_operator_routes,
    add_outcomes_route,
)
from serve_app.predict_api import add_predict_routes
from serve_app.refusals import Refusals, install_error_handlers
from serve_app.request_headers import ALLOWED_HEADERS
from serve_app.routes import DOCS_PATH, OPENAPI_PATH, EndpointTable, Role, endpoint_table
from serve_app.settings import ServiceSettings

TITLE, VERSION = "Fraud scoring API", "1"
DESCRIPTION = "Scores card transactions for fraud with a RandomForest on Ray Serve."


def create_api(
    model: ModelHandle,
    settings: ServiceSettings,
    args: AppArgs | None = None,
    refusals: Refusals | None = None,
    challenger: DescribeChallenger | None = None,
    decisions: DecisionLog | None = None,
) -> FastAPI:
    """The API around `model`. Raises MissingApiKeysError when no key is configured and
    `args.allow_anonymous` is off. `challenger` describes the challenger model and its
    comparison with `model` (serve_app.challenger), or gives None while there is none.
    `decisions` records every answered decision; `refusals` counts and records refusals."""
    args = args if args is not None else AppArgs()
    keys = KeyRing.from_settings(settings, args.allow_anonymous)
    table = endpoint_table(args)
    plane = DataPlane(model, args.request_timeout_s, decisions)
    api = docs_app() if args.openapi_docs else plain_app()
    install_error_handlers(api, refusals)
    add_predict_routes(api.router, table, plane)
    add_operator_routes(api.router, table, plane, challenger)
    add_outcomes_route(api.router, table, resolved_ledger(args.ledger))
    add_health_route(api.router, table)
    check_routes(api.routes, table)
    if args.openapi_docs:
        declare_security(api, table)
    # The gate goes in front of the wrappers FastAPI puts around every app (its error, telemetry
    # and body-limit middleware): a request the lean path answers skips them, which is a few
    # per cent of the Ingress's CPU per request (docs/BENCHMARKS.md); anything else passes
    # through all of them. Built last: FastAPI's stack takes its exception handlers as it is built.
    gate: ASGIApp = RequestGate(
        api.build_middleware_stack(), table=table, keys=keys, plane=plane, refusals=refusals
    )
    if settings.cors_origins:
        # Outermost: a browser's preflight carries no key.
        gate = CORSMiddleware(
            gate,
            allow_origins=settings.cors_origins,
            allow_methods=sorted({endpoint.method for endpoint in table}),
            allow_headers=ALLOWED_HEADERS,
        )
    api.middleware_stack = gate
    # For the gRPC methods of the Ingress (serve_app.grpc_scoring): the same table, keys, plane.
    api.state.table, api.state.keys, api.state.plane = table, keys, plane
    return api


def resolved_ledger(ledger: LedgerSettings | None) -> LedgerSettings | None:
    return None if ledger is None else resolved_location(ledger)


def resolved_location(ledger: LedgerSettings) -> LedgerSettings:
    """The ledger's settings with a relative local location taken from the project root (as
    artifact paths are), wherever the process runs."""
    location = parse_location(ledger.location, PROJECT_ROOT)
    if isinstance(location, LocalLocation):
        return ledger.model_copy(update={"location": str(location.path)})
    return ledger


# The two ways a key is sent, as the OpenAPI document declares them (Swagger UI's Authorize).
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <key>`"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def declare_security(api: FastAPI, table: EndpointTable) -> None:
    """The OpenAPI document says, per operation, that it needs a key (either scheme), from the
    role the endpoint table gives it; the docs page then has an Authorize button."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(
                title=api.title,
                version=api.version,
                description=api.description,
                routes=api.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            for endpoint in table:
                operation = schema["paths"].get(endpoint.path, {}).get(endpoint.method.lower())
                if operation is not None and endpoint.role is not Role.OPEN:
                    operation["security"] = [{"bearer": []}, {"apiKey": []}]
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]


def docs_app() -> FastAPI:
    # Swagger UI's files come from the fastapi-offline package and are served here, under the
    # prefix, so the page works without internet (a VPC, an offline laptop).
    api = FastAPIOffline(
        docs_url=DOCS_PATH,
        redoc_url=None,
        static_url=f"{DOCS_PATH}/static",
        openapi_url=OPENAPI_PATH,
        swagger_ui_oauth2_redirect_url=f"{DOCS_PATH}/oauth2-redirect",
        title=TITLE,
        description=DESCRIPTION,
        version=VERSION,
    )

    @api.get("/", include_in_schema=False)
    async def to_the_docs() -> RedirectResponse:
        """Someone who opens the root in a browser gets the docs."""
        return RedirectResponse(DOCS_PATH)

    return api


def plain_app() -> FastAPI:
    return FastAPI(
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        title=TITLE,
        description=DESCRIPTION,
        version=VERSION,
    )


def check_routes(routes: list[BaseRoute], table: EndpointTable) -> None:
    """Fail at once if the app has a route the endpoint table does not list: the table decides
    who may call what, so a route outside it would be decided by nothing."""
    for route in routes:
        if isinstance(route, Mount):
            paths = [(f"{route.path}/file", "GET")]
        elif isinstance(route, APIRoute | Route):
            paths = [(route.path, method) for method in route.methods or () if method != "HEAD"]
        else:
            raise TypeError(f"a route of an unknown kind: {route!r}")
        for path, method in paths:
            if table.match(path, method) is None:
                raise RuntimeError(f"{method} {path} is a route the endpoint table does not list")
