"""The predict endpoints over gRPC through Serve's gRPC proxy, on the `fraud_app` fixture's app:
the answers are the HTTP API's, a wrong message is refused naming its field, and the call's
request id reaches the decision ledger."""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest

from fraud_model.features import FEATURE_NAMES
from serve_app.grpc_api import fraud_scoring_pb2 as pb
from serve_app.grpc_api.fraud_scoring_pb2_grpc import FraudScoringStub
from serve_app.grpc_scoring import SERVICE
from tests.helpers import as_json, ledger_rows, random_transactions
from tests.polling import wait_for

pytestmark = [pytest.mark.ray, pytest.mark.serve]

ROWS = random_transactions(20, seed=31)
APP = [("application", "fraud")]  # the proxy routes by app when several are deployed


@pytest.fixture(scope="module")
def stub(fraud_app: str, grpc_port: int) -> Iterator[FraudScoringStub]:
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        yield FraudScoringStub(channel)


def transaction(row: np.ndarray) -> pb.Transaction:
    return pb.Transaction(**as_json(row))


def test_a_transaction_gets_the_http_answer(stub: FraudScoringStub, client: httpx.Client) -> None:
    for row in ROWS:
        answer = stub.Predict(transaction(row), metadata=APP, timeout=30)
        expected = client.post("/api/v1/predict", json=as_json(row)).json()
        assert answer.fraud_probability == pytest.approx(expected["fraud_probability"], abs=1e-12)
        assert (answer.is_fraud, answer.threshold, answer.model_version) == (
            expected["is_fraud"],
            expected["threshold"],
            expected["model_version"],
        )


def test_a_thousand_transactions_as_columns_get_the_http_answer(
    stub: FraudScoringStub, client: httpx.Client
) -> None:
    rows = random_transactions(1_000, seed=32)
    body = {name: rows[:, index].tolist() for index, name in enumerate(FEATURE_NAMES)}
    answer = stub.PredictColumns(pb.TransactionColumns(**body), metadata=APP, timeout=30)
    expected = client.post("/api/v1/predict/columns", json=body).json()
    assert list(answer.fraud_probability) == pytest.approx(expected["fraud_probability"], abs=1e-12)
    assert list(answer.is_fraud) == expected["is_fraud"]


def test_a_wrong_transaction_is_refused_naming_its_field(stub: FraudScoringStub) -> None:
    message = transaction(ROWS[0])
    message.ClearField("V4")
    message.Amount = -3.0
    with pytest.raises(grpc.RpcError) as refused:
        stub.Predict(message, metadata=APP, timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = json.loads(refused.value.details())["detail"]
    assert [(item["type"], item["loc"]) for item in detail] == [
        ("missing", ["body", "V4"]),
        ("greater_than_equal", ["body", "Amount"]),
    ]


def test_the_request_id_reaches_the_ledger_and_comes_back(
    stub: FraudScoringStub, serve_ledger: Path
) -> None:
    given = f"grpc-{uuid.uuid4()}"
    answers = {}
    for metadata in ([*APP, ("x-request-id", given)], APP):  # with the caller's id, without
        answer, call = stub.Predict.with_call(transaction(ROWS[1]), metadata=metadata, timeout=30)
        (returned,) = [value for key, value in call.trailing_metadata() if key == "x-request-id"]
        answers[returned] = answer
    assert given in answers and len(answers) == 2  # the second got an id of its own

    def recorded() -> dict[str, dict]:
        found = {record["request_id"]: record for record in ledger_rows(serve_ledger)}
        return {key: found[key] for key in answers} if found.keys() >= answers.keys() else {}

    records = wait_for(recorded, timeout_s=30)
    assert records, "the calls' decisions were not in the ledger within 30 s"
    for request_id, record in records.items():
        assert record["route"] == f"{SERVICE}/Predict"
        assert record["score"] == answers[request_id].fraud_probability


def test_a_message_over_the_size_limit_is_refused(stub: FraudScoringStub) -> None:
    # About 4.6 MB: over the 4 MiB bound (fraud_model.ray_env.SERVE_ENVIRONMENT), refused by the
    # gRPC server before it is parsed. Serve's own default would take up to 2 GiB.
    count = 20_000
    message = pb.TransactionColumns(**{name: [0.5] * count for name in FEATURE_NAMES})
    with pytest.raises(grpc.RpcError) as refused:
        stub.PredictColumns(message, metadata=APP, timeout=30)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
