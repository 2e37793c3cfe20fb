"""The lean predict path (serve_app.fast_path): what it answers itself, and that everything else
reaches the FastAPI app with its body intact."""

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.types import Message, Receive, Scope, Send

from serve_app.auth import KeyRing
from serve_app.fast_path import ScoringFastPath
from serve_app.schemas import batch_request_model, columnar_request_model
from serve_app.scoring import Scorer
from serve_app.settings import ServiceSettings
from tests.unit.api_client import TRANSACTION, InProcessModel, client

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
    fast_path: ScoringFastPath,
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

    await fast_path(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.fixture
def fast_path(artifact_dir: Path) -> tuple[ScoringFastPath, App]:
    app = App()
    settings = ServiceSettings(api_keys=[SecretStr(KEY)])
    scorer = Scorer(InProcessModel(artifact_dir), 2.0, predictions=None)
    path = ScoringFastPath(
        app,
        scorer=scorer,
        keys=KeyRing.from_settings(settings, allow_anonymous=False),
        batch_model=batch_request_model(3),
        columnar_model=columnar_request_model(3),
        body_limits={
            "/api/v1/predict": 2048,
            "/api/v1/predict/batch": 8192,
            "/api/v1/predict/columns": 8192,
        },
        cross_origin=True,
    )
    return path, app


async def test_a_valid_transaction_is_answered_without_the_app(
    fast_path: tuple[ScoringFastPath, App],
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
        (TRANSACTION, {"headers": {"authorization": "Bearer wrong"}}),
        (TRANSACTION, {"headers": {"authorization": ""}}),
        (TRANSACTION, {"headers": {"content-type": "text/plain"}}),
        (TRANSACTION, {"headers": {"origin": "https://shop.example"}}),
        (TRANSACTION, {"query": b"explain=true"}),
        (TRANSACTION | {"Amount": 1.0, "pad": "x" * 3000}, {"chunk": 500}),  # over the limit
        ({"transactions": [TRANSACTION] * 4}, {"path": "/api/v1/predict/batch"}),  # too many
        (TRANSACTION | {"V2": [0.5, 0.5]}, {"path": "/api/v1/predict/columns"}),  # not columns
    ],
)
async def test_everything_else_reaches_the_app_with_its_body_intact(
    fast_path: tuple[ScoringFastPath, App], body: dict[str, Any], options: dict[str, Any]
) -> None:
    path, app = fast_path
    raw = json.dumps(body).encode()
    status, _ = await call(path, raw, **options)
    assert status == 299
    assert app.bodies == [raw]


def test_both_paths_give_the_same_answer_byte_for_byte(artifact_dir: Path) -> None:
    api = client(artifact_dir)
    rows = [TRANSACTION, TRANSACTION | {"V14": -9.0, "Amount": 12.5}]
    for row in rows:
        lean = api.post("/api/v1/predict", json=row)
        routed = api.post("/api/v1/predict?explain=false", json=row)  # a query: FastAPI's route
        assert (lean.status_code, lean.content) == (routed.status_code, routed.content)
        assert lean.headers["content-type"] == routed.headers["content-type"]
    batch = {"transactions": rows}
    lean = api.post("/api/v1/predict/batch", json=batch)
    routed = api.post("/api/v1/predict/batch?explain=false", json=batch)
    assert (lean.status_code, lean.content) == (routed.status_code, routed.content)
    columns = {name: [row[name] for row in rows] for name in TRANSACTION}
    lean = api.post("/api/v1/predict/columns", json=columns)
    routed = api.post("/api/v1/predict/columns?routed=1", json=columns)
    assert (lean.status_code, lean.content) == (routed.status_code, routed.content)
