"""The gRPC methods' work (serve_app.grpc_scoring) on a real model in-process: the answers are the
HTTP API's, and every refusal is the HTTP API's error body under the mapped gRPC code."""

import asyncio
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from pydantic import SecretStr

from fraud_model.features import FEATURE_NAMES
from serve_app.access import KeyRing
from serve_app.config import AppArgs
from serve_app.data_plane import DataPlane, ModelHandle
from serve_app.grpc_api import fraud_scoring_pb2 as pb
from serve_app.grpc_scoring import GrpcScoring, Refusal, Reply
from serve_app.routes import endpoint_table
from serve_app.settings import ServiceSettings
from tests.helpers import PROJECT_ROOT, random_transactions
from tests.unit.api_client import InProcessModel, client

ROWS = random_transactions(6, seed=5)
SCORING_KEY, OPERATOR_KEY = "s" * 40, "o" * 40


ANONYMOUS = KeyRing((), anonymous=True)


def scoring(
    artifact: Path,
    keys: KeyRing = ANONYMOUS,
    max_transactions: int = 100,
    model: ModelHandle | None = None,
) -> GrpcScoring:
    plane = DataPlane(model or InProcessModel(artifact), request_timeout_s=5, decisions=None)
    table = endpoint_table(AppArgs(max_transactions_per_request=max_transactions))
    return GrpcScoring(table, keys, plane)


def answer_of(reply: Reply[Any]) -> Any:
    return reply.answer


def transaction(row: np.ndarray, **changes: float | None) -> pb.Transaction:
    values = dict(zip(FEATURE_NAMES, map(float, row), strict=True)) | changes
    return pb.Transaction(**{name: value for name, value in values.items() if value is not None})


def columns(rows: np.ndarray) -> pb.TransactionColumns:
    return pb.TransactionColumns(
        **{name: rows[:, index].tolist() for index, name in enumerate(FEATURE_NAMES)}
    )


def refused(reply: Reply[Any]) -> tuple[grpc.StatusCode, list[dict[str, Any]]]:
    answer = reply.answer
    assert isinstance(answer, Refusal), answer
    return answer.code, json.loads(answer.details)["detail"]


def http_refusal(artifact: Path, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = client(artifact).post(f"/api/v1/{path}", json=body)
    assert response.status_code == 422, response.text
    detail: list[dict[str, Any]] = response.json()["detail"]
    return detail


def test_the_proto_has_the_feature_contract_in_order() -> None:
    for message in (pb.Transaction, pb.TransactionColumns):
        assert [field.name for field in message.DESCRIPTOR.fields] == list(FEATURE_NAMES)
    # Presence is tracked, so a field that was not sent is refused, never read as 0.
    assert all(field.has_presence for field in pb.Transaction.DESCRIPTOR.fields)


def test_the_generated_code_is_what_protoc_makes_of_the_proto(tmp_path: Path) -> None:
    proto = "serve_app/grpc_api/fraud_scoring.proto"
    (tmp_path / "serve_app" / "grpc_api").mkdir(parents=True)
    (tmp_path / proto).write_bytes((PROJECT_ROOT / proto).read_bytes())
    outputs = ["--python_out=.", "--grpc_python_out=.", "--pyi_out=."]
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I.", *outputs, proto],
        cwd=tmp_path,
        check=True,
    )
    generated = sorted((tmp_path / "serve_app" / "grpc_api").glob("fraud_scoring_pb2*"))
    assert [path.name for path in generated] == [
        "fraud_scoring_pb2.py",
        "fraud_scoring_pb2.pyi",
        "fraud_scoring_pb2_grpc.py",
    ]
    for path in generated:
        committed = PROJECT_ROOT / "serve_app" / "grpc_api" / path.name
        assert committed.read_text() == path.read_text(), (
            f"regenerate {path.name}: see the proto's header"
        )


def test_a_transaction_gets_the_http_answer(session_artifact: Path) -> None:
    grpc_scoring, http = scoring(session_artifact), client(session_artifact)
    for row in ROWS:
        answer = answer_of(asyncio.run(grpc_scoring.predict(transaction(row), [])))
        assert isinstance(answer, pb.Prediction)
        expected = http.post(
            "/api/v1/predict", json=dict(zip(FEATURE_NAMES, map(float, row), strict=True))
        ).json()
        assert answer.fraud_probability == pytest.approx(expected["fraud_probability"], abs=1e-12)
        assert answer.is_fraud == expected["is_fraud"]
        assert answer.threshold == expected["threshold"]
        assert answer.model_version == expected["model_version"]


def test_columns_get_the_http_answer(session_artifact: Path) -> None:
    answer = answer_of(asyncio.run(scoring(session_artifact).predict_columns(columns(ROWS), [])))
    assert isinstance(answer, pb.ColumnarPrediction)
    body = {name: ROWS[:, index].tolist() for index, name in enumerate(FEATURE_NAMES)}
    expected = client(session_artifact).post("/api/v1/predict/columns", json=body).json()
    assert list(answer.fraud_probability) == pytest.approx(expected["fraud_probability"], abs=1e-12)
    assert list(answer.is_fraud) == expected["is_fraud"]
    assert answer.model_version == expected["model_version"]


@pytest.mark.parametrize(
    "changes",
    [
        {"V3": None},  # not sent
        {"V3": None, "V9": None},
        {"Amount": -1.0},
        {"V7": 1e6},
        {"V7": -1e6, "Amount": 2e6},
    ],
)
def test_a_wrong_transaction_is_refused_as_over_http(
    session_artifact: Path, changes: dict[str, float | None]
) -> None:
    reply = asyncio.run(scoring(session_artifact).predict(transaction(ROWS[0], **changes), []))
    code, detail = refused(reply)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    body = {name: float(value) for name, value in zip(FEATURE_NAMES, ROWS[0], strict=True)}
    body = {name: value for name, value in (body | changes).items() if value is not None}
    assert detail == http_refusal(session_artifact, "predict", body)
    assert {tuple(item["loc"]) for item in detail} == {("body", name) for name in changes}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_value_json_cannot_carry_is_refused_naming_its_field(
    session_artifact: Path, value: float
) -> None:
    reply = asyncio.run(scoring(session_artifact).predict(transaction(ROWS[0], V12=value), []))
    code, detail = refused(reply)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [item["loc"] for item in detail] == [["body", "V12"]]


def test_wrong_columns_are_refused_naming_the_column_and_position(session_artifact: Path) -> None:
    grpc_scoring = scoring(session_artifact, max_transactions=4)
    rows = ROWS[:3].copy()
    rows[1, 4] = math.nan
    rows[2, 28] = -5.0
    code, detail = refused(asyncio.run(grpc_scoring.predict_columns(columns(rows), [])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [item["loc"] for item in detail] == [["body", "V5", 1], ["body", "Amount", 2]]

    ragged = columns(ROWS[:3])
    ragged.V2.append(0.5)
    code, detail = refused(asyncio.run(grpc_scoring.predict_columns(ragged, [])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "column V2 has 4 values where V1 has 3" in detail[0]["msg"]

    for wrong in (pb.TransactionColumns(), columns(ROWS[:5])):  # none, and over the limit
        code, detail = refused(asyncio.run(grpc_scoring.predict_columns(wrong, [])))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert detail[0]["loc"] == ["body", "V1"]


def test_a_refusal_over_http_and_grpc_is_the_same_body(session_artifact: Path) -> None:
    body = {name: ROWS[:2, index].tolist() for index, name in enumerate(FEATURE_NAMES)}
    body["V20"] = [0.1, 5000.0]
    message = pb.TransactionColumns(**body)
    _, detail = refused(asyncio.run(scoring(session_artifact).predict_columns(message, [])))
    assert detail == http_refusal(session_artifact, "predict/columns", body)


def test_keys_are_those_of_the_http_api(session_artifact: Path) -> None:
    settings = ServiceSettings(
        api_keys=[SecretStr(SCORING_KEY)], operator_keys=[SecretStr(OPERATOR_KEY)]
    )
    keys = KeyRing.from_settings(settings, allow_anonymous=False)
    grpc_scoring = scoring(session_artifact, keys)
    message = transaction(ROWS[0])
    for metadata in (
        [("authorization", f"Bearer {SCORING_KEY}")],
        [("x-api-key", SCORING_KEY)],
        [("authorization", f"Bearer {OPERATOR_KEY}")],
    ):
        reply = asyncio.run(grpc_scoring.predict(message, metadata))
        assert isinstance(reply.answer, pb.Prediction)
    for metadata in ([], [("x-api-key", "w" * 40)], [("authorization", SCORING_KEY)]):
        code, detail = refused(asyncio.run(grpc_scoring.predict(message, metadata)))
        assert code == grpc.StatusCode.UNAUTHENTICATED
        assert detail == [
            {
                "type": "unauthorized",
                "loc": ["header", "authorization"],
                "msg": "A valid API key is required",
            }
        ]
    code, _ = refused(asyncio.run(grpc_scoring.predict_columns(columns(ROWS), [])))
    assert code == grpc.StatusCode.UNAUTHENTICATED  # before the columns are looked at


class Overloaded(InProcessModel):
    async def score(self, row: list[float]) -> Any:
        from ray.serve.exceptions import BackPressureError

        raise BackPressureError(num_queued_requests=9, max_queued_requests=8)


def test_an_overloaded_model_is_unavailable_which_clients_retry(session_artifact: Path) -> None:
    grpc_scoring = scoring(session_artifact, model=Overloaded(session_artifact))
    code, detail = refused(asyncio.run(grpc_scoring.predict(transaction(ROWS[0]), [])))
    assert code == grpc.StatusCode.UNAVAILABLE
    assert detail[0]["type"] == "overloaded"


def test_the_request_id_is_the_callers_else_serves_else_a_new_one(session_artifact: Path) -> None:
    grpc_scoring = scoring(session_artifact)

    def request_id(metadata: list[tuple[str, str]]) -> str | None:
        return asyncio.run(grpc_scoring.predict(transaction(ROWS[0]), metadata)).request_id

    assert request_id([("x-request-id", "order-1"), ("request_id", "serve-1")]) == "order-1"
    assert request_id([("request_id", "serve-1")]) == "serve-1"
    made = {request_id([]) for _ in range(3)}
    assert len(made) == 3 and all(len(str(made_id)) == 36 for made_id in made)  # uuid4s


@pytest.mark.parametrize("name", ["authorization", "x-api-key", "x-request-id"])
def test_metadata_sent_twice_is_refused_naming_it_as_over_http(
    session_artifact: Path, name: str
) -> None:
    values = {
        "authorization": ["Bearer " + "a" * 40, "Bearer " + "b" * 40],
        "x-api-key": ["a" * 40, "b" * 40],
        "x-request-id": ["first", "second"],
    }[name]
    reply = asyncio.run(
        scoring(session_artifact).predict(transaction(ROWS[0]), [(name, v) for v in values])
    )
    code, detail = refused(reply)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert detail[0]["loc"] == ["header", name] and detail[0]["type"] == "duplicate_header"


def test_a_request_id_that_is_not_a_short_safe_token_is_refused(session_artifact: Path) -> None:
    reply = asyncio.run(
        scoring(session_artifact).predict(transaction(ROWS[0]), [("x-request-id", "x" * 129)])
    )
    code, detail = refused(reply)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert detail[0]["loc"] == ["header", "x-request-id"]
    assert reply.request_id is None  # never echoed back
