"""API keys and the one access decision of every request, HTTP and gRPC alike.

Two roles hold keys: scoring keys may call the predict endpoints; operator keys may also call the
operator endpoints and ask for reason codes (`explain=true`), which show how the model decides.
The role each endpoint needs is in the endpoint table (serve_app.routes); a route the table does
not list needs a key. A key is accepted as `Authorization: Bearer <key>` or `X-API-Key`. Each key
has an id, a short digest of it, which the ledger and the logs carry instead of the key.
"""

import hashlib
import hmac
from dataclasses import dataclass

from serve_app.errors import ApiError
from serve_app.routes import Role
from serve_app.settings import MIN_KEY_LENGTH, ServiceSettings


class MissingApiKeysError(RuntimeError):
    """No API key is configured and anonymous access was not allowed."""


@dataclass(frozen=True)
class Caller:
    """Who made a request: the role their key grants and the key's id (None: anonymous)."""

    role: Role
    key_id: str | None = None


ANONYMOUS = Caller(Role.OPERATOR)  # a local service without keys, where that is allowed


def key_id(key: bytes) -> str:
    """A key's public name: the first 12 hex digits of its sha256 (keys are random strings of
    at least MIN_KEY_LENGTH characters, so this reveals nothing usable)."""
    return "key-" + hashlib.sha256(key).hexdigest()[:12]


@dataclass(frozen=True)
class KeyRing:
    """The accepted keys, with their roles; `anonymous` only when none is configured and that
    is allowed."""

    keys: tuple[tuple[bytes, Caller], ...]
    anonymous: bool

    @classmethod
    def from_settings(cls, settings: ServiceSettings, allow_anonymous: bool) -> "KeyRing":
        by_role = ((Role.SCORING, settings.api_keys), (Role.OPERATOR, settings.operator_keys))
        keys = tuple(
            (secret, Caller(role, key_id(secret)))
            for role, configured in by_role
            for secret in (key.get_secret_value().encode() for key in configured)
        )
        if not keys and not allow_anonymous:
            raise MissingApiKeysError(
                "No API key is configured: set FRAUD_API_KEYS and FRAUD_OPERATOR_KEYS (JSON lists "
                f"of keys of at least {MIN_KEY_LENGTH} characters, from a Secret in production), "
                "or set the application argument allow_anonymous: true for a local service."
            )
        return cls(keys, anonymous=not keys)

    def caller(self, offered: bytes) -> Caller | None:
        """Who a presented key is, or None. Every key is compared, in constant time, so timing
        reveals neither which key matched nor where a wrong one differs."""
        if self.anonymous:
            return ANONYMOUS
        if not offered:
            return None  # an empty key never matches, whatever is configured
        matched = None
        for secret, caller in self.keys:
            if hmac.compare_digest(offered, secret):
                matched = caller
        return matched


class AccessRefused(ApiError):
    """A 401 or 403; `key_id`: the id of the key that was sent, if it is one of ours."""

    def __init__(self, status: int, kind: str, msg: str, key_id: str | None = None) -> None:
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        super().__init__(status, kind, msg, loc=["header", "authorization"], headers=headers)
        self.key_id = key_id


def authorize(keys: KeyRing, needed: Role, offered: bytes, operator_endpoints: str) -> Caller:
    """The caller, if their key grants `needed`; else an AccessRefused: 401 without a valid key,
    403 with a scoring key where an operator key is needed (`operator_endpoints` names
    them)."""
    if needed is Role.OPEN:
        return Caller(Role.OPEN)  # whatever key came with it: none is needed, none is checked
    caller = keys.caller(offered)
    if caller is None:
        raise AccessRefused(401, "unauthorized", "A valid API key is required")
    if caller.role < needed:
        raise AccessRefused(
            403,
            "forbidden",
            f"This needs an operator key ({operator_endpoints})",
            key_id=caller.key_id,
        )
    return caller
