"""The headers a request is decided by, read once, for HTTP and gRPC alike.

A header that decides something may appear once: with two `Content-Type`, `Authorization`,
`X-API-Key` or `X-Request-ID` headers, one reader would take the first and another the last, so
such a request is refused (400, naming the header) rather than read either way. A request id is
copied into the ledger and the logs, so it is bounded: at most MAX_REQUEST_ID characters of a
safe set.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ledger.schema import MAX_REQUEST_ID, REQUEST_ID_PATTERN
from serve_app.errors import ApiError

_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)
# The headers read here, by their lower-case name.
_CONTENT_TYPE, _AUTHORIZATION, _API_KEY, _REQUEST_ID_HEADER, _ORIGIN = (
    b"content-type",
    b"authorization",
    b"x-api-key",
    b"x-request-id",
    b"origin",
)
_SINGLE = frozenset({_CONTENT_TYPE, _AUTHORIZATION, _API_KEY, _REQUEST_ID_HEADER})


@dataclass(frozen=True)
class RequestHeaders:
    content_type: bytes = b""
    authorization: bytes = b""
    api_key: bytes = b""
    request_id: str | None = None
    origin: bool = False

    @classmethod
    def read(cls, pairs: Iterable[tuple[bytes, bytes]]) -> "RequestHeaders":
        """The headers of `pairs` (lower-case names, as ASGI gives them); an ApiError (400) for
        a repeated deciding header or a request id that is not a safe, short token."""
        found: dict[bytes, bytes] = {}
        origin = False
        for name, value in pairs:
            if name in _SINGLE:
                if name in found:
                    raise ApiError(
                        400,
                        "duplicate_header",
                        f"The {name.decode()} header is sent more than once; send it once",
                        loc=["header", name.decode()],
                    )
                found[name] = value
            elif name == _ORIGIN:
                origin = True
        request_id = None
        if _REQUEST_ID_HEADER in found:
            request_id = found[_REQUEST_ID_HEADER].decode("latin-1")
            if not _REQUEST_ID.fullmatch(request_id):
                raise ApiError(
                    400,
                    "bad_request_id",
                    f"X-Request-ID must be 1 to {MAX_REQUEST_ID} characters of letters, digits "
                    "and . _ : -",
                    loc=["header", "x-request-id"],
                )
        return cls(
            content_type=found.get(_CONTENT_TYPE, b""),
            authorization=found.get(_AUTHORIZATION, b""),
            api_key=found.get(_API_KEY, b""),
            request_id=request_id,
            origin=origin,
        )

    @property
    def key(self) -> bytes:
        """The key from `Authorization: Bearer <key>`, else from `X-API-Key`; b"" if neither."""
        scheme, _, token = self.authorization.partition(b" ")
        if scheme.lower() == b"bearer" and token.strip():
            return token.strip()
        return self.api_key.strip()

    def media_type(self) -> str:
        """The Content-Type without its parameters, lower case; "" when none is sent."""
        return media_type(self.content_type)


def media_type(content_type: bytes) -> str:
    return content_type.split(b";", 1)[0].strip().lower().decode("latin-1")


def grpc_pairs(metadata: Iterable[tuple[str, str | bytes]]) -> list[tuple[bytes, bytes]]:
    """gRPC metadata as the (name, value) byte pairs of HTTP headers (names are lower case in
    gRPC already)."""
    return [
        (name.encode(), value if isinstance(value, bytes) else value.encode())
        for name, value in metadata
    ]


# The request headers a browser may send across origins (CORS), when origins are allowed.
ALLOWED_HEADERS = ["Content-Type", "Authorization", "X-API-Key", "X-Request-ID"]
