"""Every answered decision and every refusal becomes a record of the decision ledger, whichever
way it came (the lean path, FastAPI's routes, gRPC), with what a fraud team joins it by later:
the request id, the position, the model version, the score, the threshold, the Amount, the key's
id. Read back from the Parquet files the ledger writer wrote in tmp_path."""

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from fraud_model.features import FEATURE_NAMES
from serve_app.access import KeyRing, key_id
from serve_app.config import AppArgs
from serve_app.data_plane import DataPlane
from serve_app.grpc_api import fraud_scoring_pb2 as pb
from serve_app.grpc_scoring import SERVICE, GrpcScoring
from serve_app.refusals import Refusals
from serve_app.routes import endpoint_table
from serve_app.settings import ServiceSettings
from tests.helpers import ledger_rows
from tests.unit.api_client import TRANSACTION, InProcessModel, client, ledger_in

SCORING, OPERATOR = "s" * 40, "o" * 40
KEYS = {"api_keys": [SCORING], "operator_keys": [OPERATOR]}
FRAUDY = TRANSACTION | {"V14": -9.0, "Amount": 12.5}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def decisions_after(directory: Path, log: Any, table: str = "decisions") -> list[dict]:
    assert log.writer.flush(timeout_s=10)
    return ledger_rows(directory, table)


def test_a_single_decision_is_recorded_with_what_it_is_joined_by(
    artifact_dir: Path, tmp_path: Path
) -> None:
    log = ledger_in(tmp_path / "ledger")
    api = client(artifact_dir, AppArgs(), decisions=log, **KEYS)
    headers = {"X-Request-ID": "checkout-1", **bearer(SCORING)}
    lean = api.post("/api/v1/predict", json=FRAUDY, headers=headers).json()
    routed = api.post(
        "/api/v1/predict?explain=false",
        json=TRANSACTION,
        headers={"X-Request-ID": "checkout-2", **bearer(SCORING)},
    ).json()
    first, second = decisions_after(tmp_path / "ledger", log)
    for row, answer, request_id, amount in (
        (first, lean, "checkout-1", 12.5),
        (second, routed, "checkout-2", TRANSACTION["Amount"]),
    ):
        assert row["request_id"] == request_id and row["position"] == 0
        assert row["route"] == "/api/v1/predict"
        assert (row["role"], row["served"], row["mode"]) == ("champion", True, None)
        assert row["model_version"] == answer["model_version"]
        assert row["score"] == answer["fraud_probability"]
        assert row["is_fraud"] == answer["is_fraud"]
        assert row["threshold"] == answer["threshold"]
        assert row["amount"] == amount
        assert row["key_id"] == key_id(SCORING.encode()) and SCORING not in str(row)
        assert row["latency_ms"] >= 0
        assert row["features"] is None  # not kept unless asked for


def test_every_transaction_of_a_batch_and_of_columns_is_a_row_in_order(
    artifact_dir: Path, tmp_path: Path
) -> None:
    log = ledger_in(tmp_path / "ledger")
    api = client(artifact_dir, decisions=log)
    rows = [TRANSACTION, FRAUDY, TRANSACTION | {"Amount": 3.0}]
    batch = api.post("/api/v1/predict/batch", json={"transactions": rows}).json()["predictions"]
    columns = {name: [row[name] for row in rows] for name in FEATURE_NAMES}
    answer = api.post("/api/v1/predict/columns", json=columns).json()
    recorded = decisions_after(tmp_path / "ledger", log)
    by_route = {
        route: [r for r in recorded if r["route"] == route]
        for route in ("/api/v1/predict/batch", "/api/v1/predict/columns")
    }
    assert [r["position"] for r in by_route["/api/v1/predict/batch"]] == [0, 1, 2]
    assert [r["score"] for r in by_route["/api/v1/predict/batch"]] == [
        a["fraud_probability"] for a in batch
    ]
    assert [r["score"] for r in by_route["/api/v1/predict/columns"]] == answer["fraud_probability"]
    for route_rows in by_route.values():
        assert [r["amount"] for r in route_rows] == [row["Amount"] for row in rows]
        assert {r["transactions"] for r in route_rows} == {3}
        assert len({r["request_id"] for r in route_rows}) == 1  # one request, given an id


def test_features_are_kept_only_when_the_ledger_is_told_to(
    artifact_dir: Path, tmp_path: Path
) -> None:
    log = ledger_in(tmp_path / "ledger", record_features=True)
    client(artifact_dir, decisions=log).post("/api/v1/predict", json=FRAUDY)
    (row,) = decisions_after(tmp_path / "ledger", log)
    assert row["features"] == pytest.approx([FRAUDY[name] for name in FEATURE_NAMES])


@pytest.mark.parametrize(
    ("request_options", "status", "reason", "key"),
    [
        ({}, 401, "unauthorized", None),
        ({"headers": bearer("w" * 40)}, 401, "unauthorized", None),
        ({"query": "explain=true", "headers": bearer(SCORING)}, 403, "forbidden", SCORING),
        ({"json": TRANSACTION | {"V1": "x"}, "headers": bearer(SCORING)}, 422, "invalid", SCORING),
        ({"content": b"{", "headers": bearer(OPERATOR)}, 400, "bad_json", OPERATOR),
        ({"content": b"x" * 20_000, "headers": bearer(SCORING)}, 413, "too_large", SCORING),
    ],
)
def test_a_refused_request_is_recorded_with_its_status_reason_and_key_id(
    artifact_dir: Path,
    tmp_path: Path,
    request_options: dict[str, Any],
    status: int,
    reason: str,
    key: str | None,
) -> None:
    log = ledger_in(tmp_path / "ledger")
    api = client(artifact_dir, AppArgs(), decisions=log, **KEYS)
    options = {"json": TRANSACTION} | request_options
    query = options.pop("query", "")
    headers = {"X-Request-ID": "refused-1", "Content-Type": "application/json"}
    headers |= options.pop("headers", {})
    answer = api.post(f"/api/v1/predict?{query}", headers=headers, **options)
    assert answer.status_code == status
    (refusal,) = decisions_after(tmp_path / "ledger", log, "refusals")
    assert (refusal["status"], refusal["reason"], refusal["route"]) == (
        status,
        reason,
        "/api/v1/predict",
    )
    assert refusal["request_id"] == "refused-1"
    assert refusal["key_id"] == (key_id(key.encode()) if key else None)
    assert decisions_after(tmp_path / "ledger", log) == []  # nothing was decided


def test_grpc_decisions_and_refusals_are_recorded_alike(
    session_artifact: Path, tmp_path: Path
) -> None:
    log = ledger_in(tmp_path / "ledger")
    settings = ServiceSettings(api_keys=[SecretStr(SCORING)])
    keys = KeyRing.from_settings(settings, allow_anonymous=False)
    plane = DataPlane(InProcessModel(session_artifact), 5, decisions=log)
    scoring = GrpcScoring(endpoint_table(AppArgs()), keys, plane, Refusals(decisions=log))
    message = pb.Transaction(**FRAUDY)
    allowed = [("authorization", f"Bearer {SCORING}"), ("x-request-id", "grpc-1")]
    answered = asyncio.run(scoring.predict(message, allowed)).answer
    asyncio.run(scoring.predict(message, [("x-request-id", "grpc-2")]))  # no key
    (decision,) = decisions_after(tmp_path / "ledger", log)
    assert (decision["request_id"], decision["route"]) == ("grpc-1", f"{SERVICE}/Predict")
    assert decision["score"] == answered.fraud_probability and decision["amount"] == 12.5
    (refusal,) = decisions_after(tmp_path / "ledger", log, "refusals")
    assert (refusal["request_id"], refusal["status"], refusal["key_id"]) == ("grpc-2", 401, None)


def test_outcomes_of_recorded_decisions_are_kept_and_unknown_ones_reported_back(
    artifact_dir: Path, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    log = ledger_in(ledger)
    api = client(artifact_dir, AppArgs(ledger={"location": str(ledger)}), decisions=log, **KEYS)
    rows = {"transactions": [TRANSACTION, FRAUDY]}
    headers = {"X-Request-ID": "order-7", **bearer(SCORING)}
    assert api.post("/api/v1/predict/batch", json=rows, headers=headers).status_code == 200
    assert log.writer.flush(timeout_s=10)
    # After the decisions, as in life: the lookup scans the days before reported_at.
    reported = datetime.now(UTC).isoformat()
    outcomes = [
        {"request_id": "order-7", "position": 1, "is_fraud": True, "source": "chargeback"},
        {"request_id": "order-7", "position": 0, "is_fraud": False, "source": "review"},
        {"request_id": "order-7", "position": 5, "is_fraud": True, "source": "review"},
        {"request_id": "no-such-order", "is_fraud": True, "source": "chargeback"},
    ]
    body = {"outcomes": [outcome | {"reported_at": reported} for outcome in outcomes]}
    assert api.post("/api/v1/outcomes", json=body, headers=bearer(SCORING)).status_code == 403
    answer = api.post("/api/v1/outcomes", json=body, headers=bearer(OPERATOR))
    assert answer.status_code == 200, answer.text
    receipt = answer.json()
    assert receipt["recorded"] == 2
    assert receipt["unknown"] == [
        {"request_id": "order-7", "position": 5},
        {"request_id": "no-such-order", "position": 0},
    ]
    kept = ledger_rows(ledger, "outcomes")
    assert sorted((r["position"], r["is_fraud"], r["source"]) for r in kept) == [
        (0, False, "review"),
        (1, True, "chargeback"),
    ]


def test_a_wrong_outcome_is_refused_naming_its_field(artifact_dir: Path, tmp_path: Path) -> None:
    api = client(artifact_dir, AppArgs(ledger={"location": str(tmp_path)}), **KEYS)
    outcome = {"request_id": "r", "is_fraud": "yes", "source": "rumour", "reported_at": "today"}
    answer = api.post("/api/v1/outcomes", json={"outcomes": [outcome]}, headers=bearer(OPERATOR))
    assert answer.status_code == 422
    assert {tuple(item["loc"][-1:]) for item in answer.json()["detail"]} == {
        ("is_fraud",),
        ("source",),
        ("reported_at",),
    }


def test_an_outcome_dated_at_the_ends_of_the_calendar_is_unknown_not_an_error(
    artifact_dir: Path, tmp_path: Path
) -> None:
    api = client(artifact_dir, AppArgs(ledger={"location": str(tmp_path)}), **KEYS)
    outcomes = [
        {"request_id": "r-1", "is_fraud": True, "source": "review", "reported_at": when}
        for when in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z")
    ]
    answer = api.post("/api/v1/outcomes", json={"outcomes": outcomes}, headers=bearer(OPERATOR))
    assert answer.status_code == 200, answer.text
    assert answer.json()["recorded"] == 0 and len(answer.json()["unknown"]) == 1
