"""API keys and the one access decision of every request, HTTP and gRPC alike.

Two roles hold keys: scoring keys may call the predict endpoints; operator keys may also call the
operator endpoints and ask for reason codes (`explain=true`), which show how the model decides.
The role each endpoint needs is in the endpoint table (serve_app.routes); a route the table does
not list needs a key. A key is accepted as `Authorization: Bearer <key>` or `X-API-Key`. Each key
has an id, the name it is given or a short digest of it, which the ledger and the logs carry
instead of the key; each may send at most its rate of requests per second (serve_app.rate_limit),
beyond which it gets a 429 with Retry-After.

Keys come from the environment (FRAUD_API_KEYS, FRAUD_OPERATOR_KEYS), read once, or from a
directory (FRAUD_KEYS_DIR, a mounted Secret) whose files `scoring` and `operator` are read again
when they change: at the first request after FRAUD_KEYS_RELOAD_S seconds, so a key removed from
the Secret is refused from then on. A file that cannot be read or holds a bad key is refused as
a whole (logged, never quoted) and the keys before it stay.
"""

import hashlib
import hmac
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serve_app.errors import ApiError
from serve_app.rate_limit import RateLimits, retry_after
from serve_app.routes import Role
from serve_app.settings import MIN_KEY_LENGTH, ServiceSettings, key_problem

logger = logging.getLogger(f"ray.serve.{__name__}")

# The files of FRAUD_KEYS_DIR (the Secret's keys) and the role each grants.
KEY_FILES = {"scoring": Role.SCORING, "operator": Role.OPERATOR}
# A key's given name: what logs and ledger records show for it.
_KEY_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
# Refusals over a key's rate are logged at most this often per key.
_RATE_LOG_EVERY_S = 60.0


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


class KeyFileError(ValueError):
    """A key file cannot be read or holds a key that is refused (named by position only)."""


@dataclass(frozen=True)
class ApiKey:
    secret: bytes
    caller: Caller
    rate_per_s: float | None = None  # None: the settings' key_rate_per_s


def read_key_files(directory: Path) -> tuple[ApiKey, ...]:
    """The keys of `directory`'s `scoring` and `operator` files (a missing file: none of that
    role). Each file is a JSON list whose items are a key, or `{"id": name, "key": key}` with an
    optional `"rate_per_s"`. Raises KeyFileError naming the file and position, never a key."""
    keys: list[ApiKey] = []
    for name, role in KEY_FILES.items():
        path = directory / name
        try:
            items = json.loads(path.read_bytes()) if path.exists() else []
        except (OSError, ValueError) as error:
            raise KeyFileError(
                f"{path}: not a JSON list of keys ({type(error).__name__})"
            ) from None
        if not isinstance(items, list):
            raise KeyFileError(f"{path}: not a JSON list of keys")
        keys += [_key_of(item, role, f"{path}, item {index}") for index, item in enumerate(items)]
    ids = [key.caller.key_id for key in keys]
    if len(set(ids)) != len(ids):
        raise KeyFileError(f"{directory}: two keys have the same id")
    secrets = [key.secret for key in keys]
    if len(set(secrets)) != len(secrets):
        raise KeyFileError(f"{directory}: a key is listed twice (or in both files)")
    return tuple(keys)


def _key_of(item: Any, role: Role, where: str) -> ApiKey:
    if isinstance(item, str):
        item = {"key": item}
    if not isinstance(item, dict) or not isinstance(item.get("key"), str):
        raise KeyFileError(f"{where}: neither a key nor an object with a `key`")
    unknown = set(item) - {"id", "key", "rate_per_s"}
    if unknown:
        raise KeyFileError(f"{where}: unknown fields {sorted(unknown)}")
    problem = key_problem(item["key"])
    if problem is not None:
        raise KeyFileError(f"{where}: the key {problem}")
    secret = item["key"].encode()
    name = item.get("id")
    if name is not None and (not isinstance(name, str) or not _KEY_NAME.match(name)):
        raise KeyFileError(f"{where}: the id must be 1 to 63 of a-z, 0-9, '.', '_', '-'")
    rate = item.get("rate_per_s")
    if rate is not None and (not isinstance(rate, int | float) or rate <= 0):
        raise KeyFileError(f"{where}: rate_per_s must be a positive number")
    return ApiKey(secret, Caller(role, name or key_id(secret)), rate)


@dataclass
class KeyRing:
    """The accepted keys, with their roles and rates; `anonymous` only when none is configured
    and that is allowed. With `directory`, the keys are that directory's files, read again when
    they change (at most every `reload_s`)."""

    keys: tuple[tuple[bytes, Caller], ...] = field(repr=False)  # never in a traceback or log
    anonymous: bool
    directory: Path | None = None
    reload_s: float = 10.0
    rate_per_s: float = 500.0
    limits: RateLimits = field(default_factory=RateLimits)
    rates: dict[str, float] = field(default_factory=dict)  # key id -> its own rate
    _read: bytes = field(default=b"", repr=False)
    _next_check: float = 0.0
    _rate_logged: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: ServiceSettings, allow_anonymous: bool) -> "KeyRing":
        by_role = ((Role.SCORING, settings.api_keys), (Role.OPERATOR, settings.operator_keys))
        keys = tuple(
            ApiKey(secret, Caller(role, key_id(secret)))
            for role, configured in by_role
            for secret in (key.get_secret_value().encode() for key in configured)
        )
        directory = settings.keys_dir
        if directory is not None:
            keys = read_key_files(directory)
        if not keys and not allow_anonymous:
            raise MissingApiKeysError(
                "No API key is configured: set FRAUD_KEYS_DIR (a directory with the files "
                "`scoring` and `operator`, a mounted Secret in production) or FRAUD_API_KEYS and "
                f"FRAUD_OPERATOR_KEYS (JSON lists of keys of at least {MIN_KEY_LENGTH} "
                "characters), or set the application argument allow_anonymous: true for a local "
                "service."
            )
        ring = cls(
            (),
            anonymous=not keys,
            directory=directory,
            reload_s=settings.keys_reload_s,
            rate_per_s=settings.key_rate_per_s,
            limits=RateLimits(settings.key_burst_s),
        )
        ring._use(keys, "loaded")
        if directory is not None:
            ring._read = _contents(directory)
            ring._next_check = time.monotonic() + ring.reload_s
        return ring

    def caller(self, offered: bytes) -> Caller | None:
        """Who a presented key is, or None. Every key is compared, in constant time, so timing
        reveals neither which key matched nor where a wrong one differs."""
        self._reload_if_changed()
        if self.anonymous:
            return ANONYMOUS
        if not offered:
            return None  # an empty key never matches, whatever is configured
        matched = None
        for secret, caller in self.keys:
            if hmac.compare_digest(offered, secret):
                matched = caller
        return matched

    def admit(self, caller: Caller) -> None:
        """Count a request of `caller` against its key's rate; RateLimited when over it."""
        if caller.key_id is None:
            return  # anonymous: a local service without keys
        rate = self.rates.get(caller.key_id, self.rate_per_s)
        wait_s = self.limits.wait_s(caller.key_id, rate)
        if wait_s <= 0:
            return
        now = time.monotonic()
        if now >= self._rate_logged.get(caller.key_id, 0.0):
            self._rate_logged[caller.key_id] = now + _RATE_LOG_EVERY_S
            logger.warning(
                "API key %s is over its rate of %g requests/s: refused with 429",
                caller.key_id,
                rate,
            )
        raise RateLimited(caller.key_id, wait_s)

    def _use(self, keys: tuple[ApiKey, ...], how: str) -> None:
        self.keys = tuple((key.secret, key.caller) for key in keys)
        self.anonymous = not keys  # from_settings allowed it, or refused to start
        self.rates = {
            key.caller.key_id: key.rate_per_s
            for key in keys
            if key.rate_per_s and key.caller.key_id is not None
        }
        self.limits.keep_only(key.caller.key_id for key in keys if key.caller.key_id)
        if keys:
            by_role = {
                role.name.lower(): [k.caller.key_id for k in keys if k.caller.role is role]
                for role in (Role.SCORING, Role.OPERATOR)
            }
            logger.info("API keys %s: %s", how, by_role)

    def _reload_if_changed(self) -> None:
        if self.directory is None or time.monotonic() < self._next_check:
            return
        self._next_check = time.monotonic() + self.reload_s
        contents = _contents(self.directory)
        if contents == self._read:
            return
        try:
            keys = read_key_files(self.directory)
            if not keys:  # never opened to anyone by emptying a file
                raise KeyFileError(f"{self.directory}: no key left")
        except KeyFileError as error:
            logger.error("API keys not reloaded, the previous ones stay: %s", error)
            return
        self._read = contents
        self._use(keys, "reloaded")


def _contents(directory: Path) -> bytes:
    """What the key files hold now, to compare with what was read (b"" for a missing file)."""
    parts = []
    for name in KEY_FILES:
        try:
            parts.append((directory / name).read_bytes())
        except OSError:
            parts.append(b"")
    return b"\0".join(parts)


class AccessRefused(ApiError):
    """A 401 or 403; `key_id`: the id of the key that was sent, if it is one of ours."""

    def __init__(self, status: int, kind: str, msg: str, key_id: str | None = None) -> None:
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        super().__init__(status, kind, msg, loc=["header", "authorization"], headers=headers)
        self.key_id = key_id


class RateLimited(AccessRefused):
    """A 429: the key sent more than its rate; Retry-After says when the next is admitted."""

    def __init__(self, key_id: str, wait_s: float) -> None:
        seconds = retry_after(wait_s)
        ApiError.__init__(
            self,
            429,
            "rate_limited",
            f"This key is over its rate limit: retry after {seconds} s",
            loc=["header", "authorization"],
            retry_after=seconds,
        )
        self.key_id = key_id


def authorize(keys: KeyRing, needed: Role, offered: bytes, operator_endpoints: str) -> Caller:
    """The caller, if their key grants `needed` and is within its rate; else an AccessRefused:
    401 without a valid key, 403 with a scoring key where an operator key is needed
    (`operator_endpoints` names them), 429 (RateLimited) over the key's rate."""
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
    keys.admit(caller)
    return caller
