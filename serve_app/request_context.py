"""What a request is, once admitted, and the decision it is waiting for.

`Request` is who asked, by which route, when and under which id: what a decision and a refusal
are recorded with. `Decided` is the request's decision under way, which the challenger beside the
serving model marks (who answered, in which mode) and reads back in its own background tasks:
asyncio copies the current context into every task it starts, so the shadow call of a request
knows the request it belongs to.
"""

import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np
from starlette.types import Scope

from serve_app.access import Caller
from serve_app.schemas import FeatureRows


@dataclass(frozen=True)
class Request:
    """The route a request came by (an HTTP path or a gRPC method), its id, the caller, and when
    it arrived (time.time())."""

    route: str
    request_id: str
    caller: Caller
    received_at: float = field(default_factory=time.time)


def new_request_id() -> str:
    """For a request that came without one (Serve's proxies and HAProxy add one to every HTTP
    request; a direct caller may not)."""
    return str(uuid.uuid4())


@dataclass
class Decided:
    """A request's decision under way: its rows, and which model answered it."""

    request: Request
    rows: FeatureRows | np.ndarray
    served_by: str = "champion"
    mode: str | None = None  # "shadow" or "canary" where the challenger took part


deciding: ContextVar[Decided | None] = ContextVar("fraud_decision", default=None)


# Where the gate leaves the Request for the routes: a key of the request's own ASGI scope (never
# the app's shared state).
SCOPE_KEY = "fraud.request"


def request_of(scope: Scope) -> Request | None:
    """The Request the gate admitted, if it did."""
    request: Request | None = scope.get(SCOPE_KEY)
    return request


def admitted(scope: Scope) -> Request:
    """The Request the gate admitted (for the routes, which run only behind it)."""
    request = request_of(scope)
    if request is None:
        raise RuntimeError("a route ran without the request gate in front of it")
    return request
