"""The content-type check on the predict endpoints (API keys are checked earlier, in
serve_app.auth).

It is `async def` on purpose: FastAPI runs a plain `def` dependency in a worker thread, and
that thread hop cost more than the rest of the request (docs/BENCHMARKS.md).
"""

from fastapi import Request

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
