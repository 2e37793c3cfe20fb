"""Where a refused request goes: counted in Prometheus by reason, and recorded in the decision
ledger with its status, reason and key id, so that Serve's access log is not the only record of
refusals. Also FastAPI's error handlers, which answer in the API's one error shape
(serve_app.errors) and report each refusal here."""

import logging
import time
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from serve_app.decision_log import DecisionLog
from serve_app.errors import ApiError, ItemsError, capped, error_items, internal_error
from serve_app.metrics import RequestMetrics
from serve_app.request_context import request_of
from serve_app.routes import route_path

logger = logging.getLogger(f"ray.serve.{__name__}")


@dataclass(frozen=True)
class Refused:
    """What is known of a refused request: how far it got decides which of these are set."""

    route: str
    request_id: str | None = None
    key_id: str | None = None
    received_at: float | None = None


class Unadmitted(Exception):
    """A request refused before it was admitted: the error, and what was known of it."""

    def __init__(self, error: ApiError, refused: Refused) -> None:
        super().__init__(error.msg)
        self.error, self.refused = error, refused


class Refusals:
    def __init__(
        self, metrics: RequestMetrics | None = None, decisions: DecisionLog | None = None
    ) -> None:
        self.metrics = metrics
        self.decisions = decisions

    def refused(self, error: ApiError, refused: Refused, counted: bool = True) -> None:
        """`counted`: also in the refusal metric (a wrong URL, 404 or 405, is recorded only)."""
        if self.metrics is not None and counted:
            self.metrics.rejected(error.kind)
        if self.decisions is not None:
            self.decisions.refused(
                refused.route,
                refused.received_at if refused.received_at is not None else time.time(),
                error.status,
                error.kind,
                refused.request_id,
                refused.key_id,
            )


def install_error_handlers(api: FastAPI, refusals: Refusals | None = None) -> None:
    def answered(request: Request, error: ApiError, counted: bool = True) -> JSONResponse:
        if refusals is not None:
            admitted = request_of(request.scope)
            if admitted is not None:
                refused = Refused(
                    admitted.route,
                    admitted.request_id,
                    admitted.caller.key_id,
                    admitted.received_at,
                )
            else:
                refused = Refused(route_path(request.scope))
            refusals.refused(error, refused, counted)
        return error.response()

    # Starlette types every handler as taking any Exception; each is registered for one class.
    async def api_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ApiError)
        return answered(request, error)

    async def validation_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        detail = error_items(error.errors())  # without FastAPI's echo of each input
        if any(item["type"] == "json_invalid" for item in detail):
            return answered(request, ItemsError(400, "bad_json", detail))
        if detail and all(item["type"] == "missing" and item["loc"] == ["body"] for item in detail):
            return answered(request, ApiError(400, "bad_json", "The body is empty", loc=["body"]))
        return answered(request, ItemsError(422, "invalid", capped(detail)))

    async def http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        if isinstance(error.__cause__, RecursionError):  # json's answer to deep nesting
            answer = ApiError(400, "bad_json", "The JSON body is nested too deeply", loc=["body"])
        else:
            kind = {400: "bad_json", 404: "not_found", 405: "method_not_allowed"}
            answer = ApiError(
                error.status_code,
                kind.get(error.status_code, "http_error"),
                str(error.detail),
                headers=error.headers,
            )
        # A wrong URL is recorded, but not counted as a refused request.
        return answered(request, answer, counted=answer.status not in (404, 405))

    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        logger.exception("Unexpected error on %s %s", request.method, request.url.path)
        return answered(request, internal_error())

    api.add_exception_handler(ApiError, api_error)
    api.add_exception_handler(RequestValidationError, validation_error)
    api.add_exception_handler(HTTPException, http_error)
    api.add_exception_handler(Exception, unexpected_error)
