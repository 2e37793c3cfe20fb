"""The request gate (serve_app.gate): what its lean path answers itself, what it refuses unread,
and that everything else reaches the FastAPI app with its body intact."""

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.types import Message, Receive, Scope, Send

from serve_app.access import KeyRing
from serve_app.config import AppArgs
from serve_app.data_plane import DataPlane
from serve_app.gate import RequestGate
from serve_app.routes import endpoint_table
from serve_app.settings import ServiceSettings
from tests.unit.api_client import TRANSACTION, InProcessModel

pytestmark = pytest.mark.anyio
KEY = "k" * 40


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class App:
    """The FastAPI app's stand-in: records what reached it, body included."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def call(
    gate: RequestGate,
    body: bytes,
    path: str = "/api/v1/predict",
    headers: dict[str, str] | None = None,
    query: bytes = b"",
    chunk: int = 1 << 20,
) -> tuple[int, bytes]:
    headers = {"content-type": "application/json", "authorization": f"Bearer {KEY}"} | (
        headers or {}
    )
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": query,
        "headers": [(k.encode(), v.encode()) for k, v in headers.items() if v],
    }
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    messages: list[Message] = [
        {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1}
        for i, piece in enumerate(pieces)
    ]

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await gate(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.fixture
def fast_path(artifact_dir: Path) -> tuple[RequestGate, App]:
    app = App()
    settings = ServiceSettings(api_keys=[SecretStr(KEY)])
    gate = RequestGate(
        app,
        table=endpoint_table(AppArgs(max_transactions_per_request=3)),
        keys=KeyRing.from_settings(settings, allow_anonymous=False),
        plane=DataPlane(InProcessModel(artifact_dir), 2.0, decisions=None),
    )
    return gate, app


async def test_a_valid_transaction_is_answered_without_the_app(
    fast_path: tuple[RequestGate, App],
) -> None:
    path, app = fast_path
    status, body = await call(path, json.dumps(TRANSACTION).encode(), chunk=100)
    assert status == 200
    assert set(json.loads(body)) == {
        "fraud_probability", "is_fraud", "threshold", "model_version", "decision_rule"
    }  # fmt: skip
    batch = json.dumps({"transactions": [TRANSACTION] * 3}).encode()
    status, body = await call(path, batch, path="/api/v1/predict/batch")
    assert status == 200 and len(json.loads(body)["predictions"]) == 3
    columns = json.dumps({name: [value] * 3 for name, value in TRANSACTION.items()}).encode()
    status, body = await call(path, columns, path="/api/v1/predict/columns")
    assert status == 200 and len(json.loads(body)["fraud_probability"]) == 3
    assert app.bodies == []


@pytest.mark.parametrize(
    ("body", "options"),
    [
        ({"V1": 1.0}, {}),  # missing fields
        (TRANSACTION | {"V1": "1"}, {}),  # a string
        (TRANSACTION, {"query": b"top_k=3"}),  # a query: FastAPI's route reads it
        ({"transactions": [TRANSACTION] * 4}, {"path": "/api/v1/predict/batch"}),  # too many
        (TRANSACTION | {"V2": [0.5, 0.5]}, {"path": "/api/v1/predict/columns"}),  # not columns
    ],
)
async def test_everything_else_reaches_the_app_with_its_body_intact(
    fast_path: tuple[RequestGate, App], body: dict[str, Any], options: dict[str, Any]
) -> None:
    path, app = fast_path
    raw = json.dumps(body).encode()
    status, _ = await call(path, raw, **options)
    assert status == 299
    assert app.bodies == [raw]


@pytest.mark.parametrize(
    ("options", "status"),
    [
        ({"headers": {"authorization": "Bearer wrong"}}, 401),
        ({"headers": {"authorization": ""}}, 401),
        ({"query": b"explain=true"}, 403),  # reason codes need an operator key
        ({"headers": {"content-type": "text/plain"}}, 415),
        ({"path": "/api/v1/model", "headers": {"authorization": ""}}, 401),
        ({"path": "/api/v1/anything", "headers": {"authorization": ""}}, 401),
    ],
)
async def test_what_the_gate_refuses_never_reaches_the_app(
    fast_path: tuple[RequestGate, App], options: dict[str, Any], status: int
) -> None:
    path, app = fast_path
    answered, _ = await call(path, json.dumps(TRANSACTION).encode(), **options)
    assert answered == status
    assert app.bodies == []


async def test_a_body_over_the_limit_is_refused_before_it_is_all_read(
    fast_path: tuple[RequestGate, App],
) -> None:
    path, app = fast_path
    raw = json.dumps(TRANSACTION | {"pad": "x" * 20_000}).encode()
    status, body = await call(path, raw, chunk=500)
    assert status == 413
    assert json.loads(body)["detail"][0]["type"] == "too_large"
    assert app.bodies == []


class FailingDecisions:
    """A decision log that fails: an error the lean path does not expect."""

    def decided(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the ledger's secret path /srv/x")


async def test_an_unexpected_error_is_answered_in_the_api_s_shape_without_detail(
    artifact_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The gate runs in front of FastAPI's error middleware, so it answers such errors itself.
    settings = ServiceSettings(api_keys=[SecretStr(KEY)])
    plane = DataPlane(InProcessModel(artifact_dir), 2.0, decisions=None)
    plane.decisions = FailingDecisions()  # type: ignore[assignment]
    gate = RequestGate(
        App(),
        table=endpoint_table(AppArgs()),
        keys=KeyRing.from_settings(settings, allow_anonymous=False),
        plane=plane,
    )
    status, body = await call(gate, json.dumps(TRANSACTION).encode())
    assert status == 500
    assert json.loads(body)["detail"][0]["type"] == "internal"
    assert b"secret" not in body
    assert "Unexpected error on /api/v1/predict" in caplog.text
