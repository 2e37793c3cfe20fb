"""What an operator sees: the model endpoint, request ids, decisions and refusals in the ledger,
logs without card data, and Prometheus metrics on Ray's metrics endpoint."""

import uuid
from pathlib import Path

import httpx
import pytest

from fraud_model.artifact import read_metadata
from fraud_model.features import FEATURE_NAMES
from serve_app.model import ScoreDrift
from tests.helpers import as_json, ledger_rows, random_transactions
from tests.polling import wait_for
from tests.serve.serving import json_log_records, metrics_text

pytestmark = [pytest.mark.ray, pytest.mark.serve]


def test_model_endpoint_describes_the_serving_model(
    client: httpx.Client, session_artifact: Path
) -> None:
    metadata = read_metadata(session_artifact)
    info = client.get("/api/v1/model").json()
    assert info["model_version"] == metadata.model_version
    assert info["created_at"] == metadata.created_at.isoformat()
    assert info["engine"] == "onnx"
    assert info["threshold"] == metadata.threshold
    assert info["features"] == list(FEATURE_NAMES)
    assert info["data"]["sha256"] == metadata.data.sha256
    assert info["metrics"] == metadata.metrics
    assert info["last_reload_error"] is None


def test_a_client_request_id_is_echoed_and_recorded_with_the_decision(
    client: httpx.Client, serve_ledger: Path
) -> None:
    request_id = f"checkout-{uuid.uuid4()}"
    row = as_json(random_transactions(1, seed=5)[0])
    response = client.post("/api/v1/predict", json=row, headers={"X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id
    answer = response.json()

    def recorded() -> list[dict]:
        return [r for r in ledger_rows(serve_ledger) if r["request_id"] == request_id]

    (record,) = wait_for(recorded)
    assert record["model_version"] == answer["model_version"]
    assert record["score"] == answer["fraud_probability"]
    assert record["is_fraud"] == answer["is_fraud"]
    assert record["decision_rule"] == answer["decision_rule"]
    assert record["amount"] == row["Amount"]
    assert 0 < record["latency_ms"] < 30_000
    assert record["features"] is None


def test_a_refused_request_is_recorded_in_the_ledger(
    client: httpx.Client, serve_ledger: Path
) -> None:
    request_id = f"refused-{uuid.uuid4()}"
    response = client.post(
        "/api/v1/predict", json={"V1": "x"}, headers={"X-Request-ID": request_id}
    )
    assert response.status_code == 422

    def recorded() -> list[dict]:
        return [r for r in ledger_rows(serve_ledger, "refusals") if r["request_id"] == request_id]

    (refusal,) = wait_for(recorded)
    assert (refusal["status"], refusal["reason"], refusal["route"]) == (
        422,
        "invalid",
        "/api/v1/predict",
    )


def test_transaction_values_never_reach_the_logs(client: httpx.Client, serve_logs: Path) -> None:
    marker = 4321.987654321
    good = as_json(random_transactions(1, seed=6)[0]) | {"Amount": marker}
    batch = {"transactions": [good, good | {"V2": None}]}
    requests = [
        ("/api/v1/predict", good, 200),
        ("/api/v1/predict", good | {"V1": "x"}, 422),
        ("/api/v1/predict/batch", batch, 422),
    ]
    sent = {f"no-card-data-{uuid.uuid4()}": request for request in requests}
    for request_id, (path, body, status) in sent.items():
        answer = client.post(path, json=body, headers={"X-Request-ID": request_id})
        assert answer.status_code == status

    # Every request's own log lines are written (the positive marker) before the check.
    def logged_ids() -> bool:
        ids = {record.get("request_id") for record in json_log_records("*.log", serve_logs)}
        return set(sent) <= ids

    assert wait_for(logged_ids)
    logs = "".join(file.read_text() for file in serve_logs.glob("*"))
    assert "4321.98" not in logs


def test_metrics_appear_on_ray_s_metrics_endpoint(client: httpx.Client) -> None:
    rows = random_transactions(40, seed=8)
    rows[::4, 13] -= 4.0
    for row in rows:
        assert client.post("/api/v1/predict", json=as_json(row)).status_code == 200
    batch = {"transactions": [as_json(row) for row in rows[:10]]}
    assert client.post("/api/v1/predict/batch", json=batch).status_code == 200
    # One request, so one replica: enough scores for it to set the drift gauge.
    enough = random_transactions(ScoreDrift.MIN_SCORES + 50, seed=9)
    drift_batch = {"transactions": [as_json(row) for row in enough]}
    assert client.post("/api/v1/predict/batch", json=drift_batch).status_code == 200
    assert client.post("/api/v1/predict", json={"V1": 1.0}).status_code == 422

    expected = [
        "ray_fraud_predictions_total{",
        'decision="legit"',
        "ray_fraud_score_bucket_total{",
        'le="+Inf"',
        "ray_fraud_model_batch_size_bucket{",
        "ray_fraud_model_info{",
        'engine="onnx"',
        "ray_fraud_rejected_requests_total{",
        'reason="invalid"',
        "ray_fraud_score_psi{",  # the score drift gauge
        "ray_fraud_score_drift_bin_total{",  # the fleet-wide drift rule's inputs
        'bin="0"',
        "ray_fraud_score_reference_share{",
        "ray_serve_num_http_requests",  # Ray's own, on the same endpoint
    ]

    def all_there() -> str:
        text = metrics_text()
        return text if all(name in text for name in expected) else ""

    text = wait_for(all_there, timeout_s=90, every_s=3)
    assert text, [name for name in expected if name not in metrics_text()]
    psi_values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ray_fraud_score_psi{")
    ]
    assert psi_values and all(value >= 0 for value in psi_values)
