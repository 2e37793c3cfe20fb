"""One-step JSON validation: valid bodies arrive validated once, refusals are unchanged."""

import json

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from fraud_model.features import FEATURE_NAMES
from serve_app.fast_json import ValidatedJsonRoute
from serve_app.refusals import install_error_handlers
from serve_app.schemas import Transaction, batch_request_model

VALID = {name: 0.5 for name in FEATURE_NAMES}
BatchRequest = batch_request_model(3)


def app_with(route_class: type[APIRoute], received: list | None = None) -> TestClient:
    router = APIRouter(route_class=route_class)

    @router.post("/one")
    async def one(transaction: Transaction) -> list[float]:
        if received is not None:
            received.append(transaction)
        return transaction.feature_row()

    @router.post("/many")
    async def many(request: BatchRequest) -> int:  # type: ignore[valid-type]
        return len(request.transactions)

    @router.get("/plain")
    async def plain() -> bool:
        return True

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    return TestClient(app)


def test_a_valid_body_reaches_the_endpoint_as_the_model_pydantic_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list = []
    original = Transaction.model_validate_json

    def recording(raw: bytes) -> object:
        parsed.append(original(raw))
        return parsed[-1]

    monkeypatch.setattr(Transaction, "model_validate_json", recording)
    received: list = []
    response = app_with(ValidatedJsonRoute, received).post("/one", json=VALID | {"V1": 2})
    assert response.status_code == 200
    assert response.json()[0] == 2.0
    # The very object from the JSON parser: FastAPI did not parse or validate it again.
    assert len(parsed) == 1 and received == parsed and received[0] is parsed[0]


BAD_BODIES = [
    ("/one", '{"V1": 0.1,'),  # malformed
    ("/one", "[1, 2]"),
    ("/one", json.dumps(VALID | {"V2": "1.5"})),
    ("/one", json.dumps(VALID | {"v2": 1.5})),
    ("/one", json.dumps(VALID).replace("0.5", "NaN", 1)),
    ("/one", '{"V1": ' + "[" * 5_000 + "]" * 5_000 + "}"),  # deeper than json allows
    ("/many", json.dumps({"transactions": [VALID] * 4})),
    ("/many", json.dumps({"transactions": [VALID, {"V1": 1.0}]})),
    ("/many", json.dumps({"transactions": [VALID], "extra": 1})),
]


@pytest.mark.parametrize(("path", "raw"), BAD_BODIES)
def test_refusals_are_exactly_fastapis_own(path: str, raw: str) -> None:
    headers = {"content-type": "application/json"}
    plain = app_with(APIRoute).post(path, content=raw.encode(), headers=headers)
    validated = app_with(ValidatedJsonRoute).post(path, content=raw.encode(), headers=headers)
    assert plain.status_code >= 400
    assert (validated.status_code, validated.json()) == (plain.status_code, plain.json())


def test_valid_answers_and_routes_without_a_body_are_unchanged() -> None:
    plain, validated = app_with(APIRoute), app_with(ValidatedJsonRoute)
    batch = {"transactions": [VALID, VALID | {"Amount": 3}]}
    for client in (plain, validated):
        assert client.get("/plain").json() is True
    assert validated.post("/many", json=batch).json() == plain.post("/many", json=batch).json()
    assert validated.post("/one", json=VALID).json() == plain.post("/one", json=VALID).json()
