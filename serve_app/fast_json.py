"""JSON in and out through pydantic-core's Rust parser and serializer.

FastAPI parses a body with `json.loads` and then validates the Python objects, two passes in
Python; pydantic's `model_validate_json` does both in one pass in Rust, for a fraction of the
Ingress's CPU on large batches (docs/BENCHMARKS.md). ValidatedJsonRoute hands FastAPI the
already-validated model, which FastAPI then accepts as is.

A body that fails goes FastAPI's own way (`json.loads`, then its validation), so every refusal
keeps the same status, error shape and order of checks (API key before the schema); only
valid bodies take the fast path.
"""

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json


class ValidatedJsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        body_model = self.body_field.field_info.annotation if self.body_field else None
        if not (isinstance(body_model, type) and issubclass(body_model, BaseModel)):
            return handler

        async def validated_body_handler(request: Request) -> Response:
            return await handler(ValidatedJsonRequest(request.scope, request.receive, body_model))

        return validated_body_handler


class ValidatedJsonRequest(Request):
    """A request whose `json()` is the body validated as `body_model` when it is valid."""

    def __init__(self, scope: Any, receive: Any, body_model: type[BaseModel]) -> None:
        super().__init__(scope, receive)
        self._body_model = body_model

    async def json(self) -> Any:
        body = await self.body()
        try:
            return self._body_model.model_validate_json(body)
        except ValidationError:
            # FastAPI reports it: JSON syntax errors as 400, schema errors after the guards.
            return json.loads(body)


class FastJSONResponse(JSONResponse):
    """JSONResponse written by pydantic-core, several times faster than json.dumps for large
    answers (docs/BENCHMARKS.md). It would write NaN as null, so the scores are checked finite
    before they get here (serve_app.model.predictions)."""

    def render(self, content: Any) -> bytes:
        return to_json(content)
