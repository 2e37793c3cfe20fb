"""Request checks that run before a body is scored: content type and API key.

Both are `async def` on purpose: FastAPI runs a plain `def` dependency in a worker thread,
and that thread hop cost more than the rest of the request (docs/BENCHMARKS.md).
"""

import hmac
from collections.abc import Awaitable, Callable

from fastapi import Request
from pydantic import SecretStr

from serve_app.errors import ApiError


async def require_json(request: Request) -> None:
    """415 unless the body is declared as JSON (a missing type is refused too: see FastAPI's
    strict content type, which guards against cross-site form posts)."""
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        shown = f"'{media_type}'" if media_type else "no content type"
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Send the body as application/json (got {shown})",
            loc=["header", "content-type"],
        )


def api_key_guard(keys: list[SecretStr]) -> Callable[[Request], Awaitable[None]]:
    """A dependency accepting `Authorization: Bearer <key>` or `X-API-Key: <key>`; no keys
    configured = open. The comparison takes the same time wherever a wrong key differs."""
    accepted = [key.get_secret_value().encode() for key in keys]

    async def check(request: Request) -> None:
        if not accepted:
            return
        offered = presented_key(request)
        # Compare against every key, without stopping early, so timing reveals nothing.
        matches = [hmac.compare_digest(offered, key) for key in accepted]
        if not any(matches):
            raise ApiError(
                401,
                "unauthorized",
                "A valid API key is required",
                loc=["header", "authorization"],
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


def presented_key(request: Request) -> bytes:
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip().encode()
    return request.headers.get("x-api-key", "").encode()
