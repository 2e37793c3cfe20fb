"""API keys, checked before anything reads the request body.

Two roles: scoring keys may call the predict endpoints; operator keys may also read
`GET /api/v1/model` and `/model/challenger` and ask for reason codes (`explain=true`), which
show how the model decides. The check is an ASGI middleware, so a request without a valid key
is refused before its body is read, parsed or size-checked. A key is accepted as
`Authorization: Bearer <key>` or `X-API-Key`.
"""

import enum
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from serve_app.errors import ApiError, Rejections
from serve_app.settings import ServiceSettings

# The values FastAPI (pydantic) reads as true for a bool query parameter.
_TRUE = {"1", "on", "t", "true", "y", "yes"}


class Access(enum.Enum):
    OPEN = "open"
    SCORING = "scoring"
    OPERATOR = "operator"


class MissingApiKeysError(RuntimeError):
    """No API key is configured and anonymous access was not allowed."""


@dataclass(frozen=True)
class KeyRing:
    """The accepted keys, as bytes; `anonymous` only when none is configured and that is allowed."""

    scoring: tuple[bytes, ...]
    operator: tuple[bytes, ...]
    anonymous: bool

    @classmethod
    def from_settings(cls, settings: ServiceSettings, allow_anonymous: bool) -> "KeyRing":
        scoring = tuple(key.get_secret_value().encode() for key in settings.api_keys)
        operator = tuple(key.get_secret_value().encode() for key in settings.operator_keys)
        if not scoring and not operator and not allow_anonymous:
            raise MissingApiKeysError(
                "No API key is configured: set FRAUD_API_KEYS and FRAUD_OPERATOR_KEYS (JSON lists "
                "of keys of at least 32 characters, from a Secret in production), or set the "
                "application argument allow_anonymous: true for a local service."
            )
        return cls(scoring, operator, anonymous=not scoring and not operator)

    def role_of(self, offered: bytes) -> Access | None:
        """The role a presented key grants, or None. Every key is compared, in constant time,
        so timing reveals neither which key matched nor where a wrong one differs."""
        if not offered:
            return None  # an empty key never matches, whatever is configured
        operator = [hmac.compare_digest(offered, key) for key in self.operator]
        scoring = [hmac.compare_digest(offered, key) for key in self.scoring]
        if any(operator):
            return Access.OPERATOR
        return Access.SCORING if any(scoring) else None


def access_rules(api_prefix: str) -> Callable[[str, bytes], Access]:
    """What each route needs: the model endpoints and reason codes an operator key, the predict
    endpoints a scoring key; everything else (health check, docs, unknown paths) none."""
    scoring_paths = {f"{api_prefix}/predict{kind}" for kind in ("", "/batch", "/columns")}
    operator_paths = {f"{api_prefix}/model", f"{api_prefix}/model/challenger"}

    def needed(path: str, query: bytes) -> Access:
        if path in operator_paths:
            return Access.OPERATOR
        if path in scoring_paths:
            explain = [v for k, v in parse_qsl(query.decode("latin-1")) if k == "explain"]
            # Any true value asks for reason codes, whichever one FastAPI ends up reading.
            if any(value.lower() in _TRUE for value in explain):
                return Access.OPERATOR
            return Access.SCORING
        return Access.OPEN

    return needed


class ApiKeyMiddleware:
    """ASGI middleware refusing, before the body is read, a request whose key does not grant
    what its route needs: 401 without a valid key, 403 with a scoring key where an operator
    key is needed."""

    def __init__(
        self,
        app: ASGIApp,
        keys: KeyRing,
        needed: Callable[[str, bytes], Access],
        rejections: Rejections | None = None,
    ) -> None:
        self.app = app
        self.keys = keys
        self.needed = needed
        self.rejections = rejections

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.keys.anonymous:
            await self.app(scope, receive, send)
            return
        needed = self.needed(scope["path"], scope.get("query_string", b""))
        if needed is Access.OPEN:
            await self.app(scope, receive, send)
            return
        role = self.keys.role_of(presented_key(scope["headers"]))
        if role is Access.OPERATOR or (role is Access.SCORING and needed is Access.SCORING):
            await self.app(scope, receive, send)
            return
        if role is None:
            error = ApiError(
                401,
                "unauthorized",
                "A valid API key is required",
                loc=["header", "authorization"],
                headers={"WWW-Authenticate": "Bearer"},
            )
        else:
            error = ApiError(
                403,
                "forbidden",
                "This needs an operator key (the model endpoint and explain=true)",
                loc=["header", "authorization"],
            )
        if self.rejections is not None:
            self.rejections.rejected(error.kind)
        await error.response()(scope, receive, send)


def presented_key(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The key from `Authorization: Bearer <key>`, else from `X-API-Key`; b"" if neither."""
    return key_in({name.lower(): value for name, value in headers})


def key_in(by_name: Mapping[bytes, bytes]) -> bytes:
    """presented_key() of headers already by (lower-case) name."""
    scheme, _, token = by_name.get(b"authorization", b"").partition(b" ")
    if scheme.lower() == b"bearer" and token.strip():
        return token.strip()
    return by_name.get(b"x-api-key", b"").strip()
