"""Every HTTP request passes here first: decided by the endpoint table, then answered at once or
handed to the FastAPI app.

In order, before anything reads the body: the deciding headers, read once (a repeated one is
refused); the endpoint, matched on the path as Starlette routes it (so an application mounted
under any `route_prefix` is checked alike); the key, against the role the endpoint needs (a path
the table does not list needs a key); the media type of a body. Then the body is read up to the
endpoint's limit. So a request without a valid key learns nothing about the limits or the schema.

The lean path: routing, dependency resolution and response handling in FastAPI cost more CPU per
request than everything else the Ingress does for a transaction (docs/BENCHMARKS.md), so a
scoring request without query parameters whose body validates (parsed and validated in one pass
by pydantic-core, or a columnar body read straight into the model's matrix where it is plainly
valid: serve_app.columnar_body) is answered here, by the same DataPlane method that the FastAPI
route calls. Everything else goes on to the FastAPI app with the body replayed: an invalid body
(whose error FastAPI words), `explain=true`, the operator endpoints, the docs.
"""

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from pydantic import BaseModel, ValidationError
from pydantic_core import to_json
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve_app.access import AccessRefused, KeyRing, authorize
from serve_app.data_plane import DataPlane
from serve_app.errors import ApiError, internal_error
from serve_app.refusals import Refusals, Refused, Unadmitted
from serve_app.request_context import SCOPE_KEY, Request, new_request_id
from serve_app.request_headers import RequestHeaders
from serve_app.routes import (
    JSON,
    Endpoint,
    EndpointTable,
    Handler,
    Role,
    operator_endpoints,
    route_path,
)

logger = logging.getLogger(f"ray.serve.{__name__}")
# The values FastAPI (pydantic) reads as true for a bool query parameter.
_TRUE = {"1", "on", "t", "true", "y", "yes"}
_JSON_HEADERS = [(b"content-type", JSON.encode())]


class RequestGate:
    def __init__(
        self,
        app: ASGIApp,
        table: EndpointTable,
        keys: KeyRing,
        plane: DataPlane,
        refusals: Refusals | None = None,
    ) -> None:
        self.app = app
        self.table = table
        self.keys = keys
        self.refusals = refusals
        self._operator_endpoints = operator_endpoints(table)
        # The lean path's answer to each scoring endpoint: its DataPlane method.
        self._lean: dict[Handler, Callable[[Any, Request], Awaitable[Any]]] = {
            Handler.PREDICT: plane.predict,
            Handler.PREDICT_BATCH: plane.predict_batch,
            Handler.PREDICT_COLUMNS: plane.predict_columns,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received_at = time.time()
        refused = Refused(route_path(scope), received_at=received_at)
        try:
            endpoint, request = self._admit(scope, received_at, refused)
        except Unadmitted as refusal:
            await self._refuse(refusal.error, refusal.refused, scope, send)
            return
        scope[SCOPE_KEY] = request
        refused = Refused(request.route, request.request_id, request.caller.key_id, received_at)
        if endpoint is None or endpoint.body is None:
            await self.app(scope, receive, send)
            return
        messages, body = await read_body(receive, endpoint.body_limit)
        if body is None:
            if messages[-1]["type"] == "http.request":  # over the limit; else the client left
                too_large = ApiError(
                    413,
                    "too_large",
                    f"The body is over the limit of {endpoint.body_limit} bytes",
                    loc=["body"],
                )
                await self._refuse(too_large, refused, scope, send)
            return
        if endpoint.lean and not scope.get("query_string"):
            parsed = read_valid(endpoint.body, endpoint.fast_reader, body)
            if parsed is not None:
                answering = self._lean[endpoint.handler](parsed, request)
                await self._answer(answering, refused, scope, send)
                return
        await self.app(scope, replay(messages, receive), send)

    def _admit(
        self, scope: Scope, received_at: float, refused: Refused
    ) -> tuple[Endpoint | None, Request]:
        """The endpoint and the Request, or Unadmitted: why the request is refused unread, with
        what was learnt of it by then."""
        path = refused.route
        try:
            headers = RequestHeaders.read(scope["headers"])
        except ApiError as error:
            raise Unadmitted(error, refused) from None
        request_id = headers.request_id or new_request_id()
        endpoint = self.table.match(path, scope["method"])
        if endpoint is None:
            needed = Role.SCORING  # closed by default: an unknown route still needs a key
        else:
            needed = endpoint.needs(endpoint.explain and explain_asked(scope))
        try:
            caller = authorize(self.keys, needed, headers.key, self._operator_endpoints)
        except AccessRefused as error:
            raise Unadmitted(error, Refused(path, request_id, error.key_id, received_at)) from None
        request = Request(path, request_id, caller, received_at)
        if endpoint is not None and endpoint.media_type is not None:
            try:
                check_media_type(headers, endpoint.media_type)
            except ApiError as error:
                known = Refused(path, request_id, caller.key_id, received_at)
                raise Unadmitted(error, known) from None
        return endpoint, request

    async def _answer(
        self, answering: Awaitable[Any], refused: Refused, scope: Scope, send: Send
    ) -> None:
        try:
            content = to_json(await answering)
        except ApiError as error:
            await self._refuse(error, refused, scope, send)
            return
        except Exception:
            # The gate runs outside FastAPI's error middleware: answer in the API's error shape
            # here, as FastAPI's handler would (serve_app.refusals).
            logger.exception("Unexpected error on %s", refused.route)
            await self._refuse(internal_error(), refused, scope, send)
            return
        headers = [(b"content-length", str(len(content)).encode()), *_JSON_HEADERS]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def _refuse(self, error: ApiError, refused: Refused, scope: Scope, send: Send) -> None:
        if self.refusals is not None:
            self.refusals.refused(error, refused)
        await error.response()(scope, _nothing, send)


def explain_asked(scope: Scope) -> bool:
    """Whether the query asks for reason codes: any true `explain`, whichever one FastAPI ends
    up reading."""
    query = scope.get("query_string", b"")
    if not query:
        return False
    values = [v for k, v in parse_qsl(query.decode("latin-1")) if k == "explain"]
    return any(value.lower() in _TRUE for value in values)


def check_media_type(headers: RequestHeaders, expected: str) -> None:
    """415 unless the body is declared as `expected` (a missing type is refused too: it guards
    against cross-site form posts, as FastAPI's strict content type does)."""
    media_type = headers.media_type()
    if media_type != expected:
        shown = f"'{media_type}'" if media_type else "no content type"
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Send the body as {expected} (got {shown})",
            loc=["header", "content-type"],
        )


def read_valid(
    model: type[BaseModel], fast_reader: Callable[[bytes], Any] | None, body: bytes
) -> Any:
    """The body as the endpoint's handler takes it: read by the endpoint's fast reader where it
    has one and the body is plainly valid, else validated by its model; None when invalid."""
    if fast_reader is not None and (rows := fast_reader(body)) is not None:
        return rows
    return validated(model, body)


def validated(model: type[BaseModel], body: bytes) -> BaseModel | None:
    try:
        return model.model_validate_json(body)
    except ValidationError:
        return None


async def read_body(receive: Receive, limit: int) -> tuple[list[Message], bytes | None]:
    """The messages read, and the whole body; None for the body when it is over `limit` or
    the client left."""
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


async def _nothing() -> Message:
    return {"type": "http.disconnect"}
