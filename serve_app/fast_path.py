"""The lean path for the predict endpoints: a valid request skips FastAPI's machinery.

Routing, dependency resolution and response handling in FastAPI cost more CPU per request than
everything else the Ingress does for a transaction (docs/BENCHMARKS.md). This ASGI middleware,
the outermost of the app's own, answers the common case itself: a POST to a predict endpoint,
without query parameters, with a key that may score, declared as JSON, within the size limit,
and whose body validates (parsed and validated in one pass by pydantic-core). It then scores
and logs exactly as the FastAPI route would (serve_app.scoring).

Everything else goes on to the FastAPI app, with the body replayed if it was read: a wrong key,
content type or size, an invalid body, `explain=true`, a browser's cross-origin request. So
every refusal is FastAPI's, with the same status, error shape and order of checks, and the
OpenAPI document still describes these routes.
"""

from collections.abc import Mapping

from pydantic import ValidationError
from pydantic_core import to_json
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve_app.auth import KeyRing, key_in
from serve_app.errors import ApiError, Rejections
from serve_app.schemas import BatchRequestBody, ColumnarBatchBody, Transaction
from serve_app.scoring import BATCH_ROUTE, SINGLE_ROUTE, Scorer

_JSON_HEADERS = [(b"content-type", b"application/json")]


class ScoringFastPath:
    def __init__(
        self,
        app: ASGIApp,
        scorer: Scorer,
        keys: KeyRing,
        batch_model: type[BatchRequestBody],
        columnar_model: type[ColumnarBatchBody],
        body_limits: Mapping[str, int],
        cross_origin: bool,
        rejections: Rejections | None = None,
    ) -> None:
        self.app = app
        self.scorer = scorer
        self.keys = keys
        self.batch_model = batch_model
        self.columnar_model = columnar_model
        self.body_limits = dict(body_limits)
        self.cross_origin = cross_origin  # CORS is on: its headers are FastAPI's to add
        self.rejections = rejections

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if (
            scope["type"] != "http"
            or path not in self.body_limits
            or scope["method"] != "POST"
            or scope.get("query_string")
        ):
            await self.app(scope, receive, send)
            return
        # ASGI header names are lower case; read them once.
        headers: dict[bytes, bytes] = dict(scope["headers"])
        if not self._may_take(headers):
            await self.app(scope, receive, send)
            return
        messages, body = await read_body(receive, self.body_limits[path])
        if body is None:
            await self.app(scope, replay(messages, receive), send)
            return
        try:
            if path == SINGLE_ROUTE:
                row = Transaction.model_validate_json(body).feature_row()
            elif path == BATCH_ROUTE:
                rows = self.batch_model.model_validate_json(body).feature_matrix()
            else:
                rows = self.columnar_model.model_validate_json(body).feature_matrix()
        except ValidationError:
            await self.app(scope, replay(messages, receive), send)
            return
        request_id = headers.get(b"x-request-id", b"").decode("latin-1") or None
        try:
            if path == SINGLE_ROUTE:
                content = to_json(await self.scorer.one(row, request_id))
            elif path == BATCH_ROUTE:
                content = to_json({"predictions": await self.scorer.many(rows, request_id)})
            else:
                content = to_json(await self.scorer.columns(rows, request_id))
        except ApiError as error:
            if self.rejections is not None:
                self.rejections.rejected(error.kind)
            await error.response()(scope, receive, send)
            return
        answer_headers = [(b"content-length", str(len(content)).encode()), *_JSON_HEADERS]
        await send({"type": "http.response.start", "status": 200, "headers": answer_headers})
        await send({"type": "http.response.body", "body": content})

    def _may_take(self, headers: dict[bytes, bytes]) -> bool:
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if content_type.split(";", 1)[0].strip().lower() != "application/json":
            return False
        if self.cross_origin and b"origin" in headers:
            return False
        # Either role may score; a request without a valid key is refused by the app, unread.
        return self.keys.anonymous or self.keys.role_of(key_in(headers)) is not None


async def read_body(receive: Receive, limit: int) -> tuple[list[Message], bytes | None]:
    """The messages read, and the whole body; None for the body when it is over `limit` or
    the client left (the app then reads on from where this stopped, and answers that)."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        size += len(message.get("body", b""))
        if size > limit:
            return messages, None
        if not message.get("more_body", False):
            break
    if len(messages) == 1:
        return messages, bytes(messages[0].get("body", b""))
    return messages, b"".join(message.get("body", b"") for message in messages)


def replay(messages: list[Message], receive: Receive) -> Receive:
    """`receive` as if nothing had been read from it yet."""
    pending = list(messages)

    async def replaying() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replaying
