"""One error shape for the whole API: `{"detail": [{"type", "loc", "msg"}]}` (FastAPI's own).

Status codes: 400 the body is not JSON (malformed, empty, nested too deeply), a deciding header
is repeated or the request id is refused (serve_app.request_headers); 401 no valid API
key; 403 a scoring key where an operator key is needed; 404/405 no such route or method; 413 body
over the size limit; 415 not application/json; 422 JSON that breaks the schema (at most
MAX_ERRORS items, then one that counts the rest); 500 an unexpected error (no detail leaks); 503
overloaded or the model replica failed (with Retry-After); 504 the model did not answer in time.
"""

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi.responses import JSONResponse

from serve_app.schemas import ErrorBody

logger = logging.getLogger(f"ray.serve.{__name__}")

# Seconds, in Retry-After: Serve replaces a replica or drains a queue in about that.
RETRY_AFTER_S = 1
# A crafted body can break the schema in thousands of places: answer the first ones only.
MAX_ERRORS = 20

# Documented on the endpoints (`responses=` in the routes).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "The body is not JSON (malformed, empty or nested too deeply), or a header is "
        "sent twice, or the request id is not a short token.",
        401: "An API key is required and none or a wrong one was sent.",
        403: "The key is a scoring key; this needs an operator key.",
        413: "The body is larger than the limit.",
        415: "The content type is not application/json.",
        422: "The JSON does not match the schema; `loc` names the field.",
        500: "An unexpected error; it has been logged, and no detail is sent.",
        503: "Overloaded, or the model replica failed: retry after Retry-After seconds.",
        504: "The model did not answer within the request timeout.",
    }.items()
}


class ApiError(Exception):
    """An answer other than 200, in the API's error shape."""

    def __init__(
        self,
        status: int,
        kind: str,
        msg: str,
        *,
        loc: list[str | int] | None = None,
        retry_after: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(msg)
        self.status, self.kind, self.msg, self.loc = status, kind, msg, loc or []
        self.headers = dict(headers or {})
        if retry_after is not None:
            self.headers["Retry-After"] = str(retry_after)

    def detail(self) -> list[dict[str, Any]]:
        """The items of the error body (ErrorBody.detail)."""
        return [{"type": self.kind, "loc": self.loc, "msg": self.msg}]

    def response(self) -> JSONResponse:
        return JSONResponse(
            status_code=self.status, content={"detail": self.detail()}, headers=self.headers
        )


class ItemsError(ApiError):
    """An error answered with several items: a body's validation errors, the first of which
    names the error."""

    def __init__(self, status: int, kind: str, items: list[dict[str, Any]]) -> None:
        first = items[0]
        super().__init__(status, kind, first["msg"], loc=first["loc"])
        self.items = items

    def detail(self) -> list[dict[str, Any]]:
        return self.items


def error_items(errors: Iterable[Any], loc_prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Validation errors as items of the error body: type, where and what, never the input
    (FastAPI's default echoes it, which leaks transaction data and cannot encode a NaN)."""
    return [
        {"type": item["type"], "loc": [*loc_prefix, *item["loc"]], "msg": item["msg"]}
        for item in errors
    ]


def capped(detail: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first MAX_ERRORS errors, and one more item saying how many were left out."""
    if len(detail) <= MAX_ERRORS:
        return detail
    more = len(detail) - MAX_ERRORS
    return [
        *detail[:MAX_ERRORS],
        {"type": "too_many_errors", "loc": ["body"], "msg": f"{more} more errors not shown"},
    ]


def internal_error() -> ApiError:
    """The answer to an unexpected error, wherever it is caught: logged there, no detail sent."""
    return ApiError(500, "internal", "Internal error; it has been logged")
