"""Request body size limits, enforced while the body is read (never buffered past the limit)."""

from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"The body is over the limit of {limit} bytes")
        self.limit = limit


class BodySizeLimit:
    """ASGI middleware: reading more than a path's limit raises BodyTooLarge in the route.

    FastAPI turns errors while reading a body into an HTTPException whose cause is this one;
    serve_app.errors answers it with a 413 in the API's error shape. (Starlette's own limiter
    answers in plain text.)
    """

    def __init__(self, app: ASGIApp, limits: Mapping[str, int], default: int) -> None:
        self.app = app
        self.limits = dict(limits)
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)
