"""The served graph over real HTTP: Serve proxy -> Ingress (FastAPI) -> FraudModel (batched)."""

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest
from ray import serve

from fraud_model.artifact import load_artifact
from fraud_model.features import FEATURE_NAMES
from tests.helpers import as_json, assert_same_answers, random_transactions
from tests.serve.serving import deploy_app, replica_names

pytestmark = [pytest.mark.ray, pytest.mark.serve]


def test_health_check_returns_true(client: httpx.Client) -> None:
    response = client.get("/api/v1/utils/health-check/")
    assert response.status_code == 200
    assert response.json() is True


def test_predict_returns_the_artifact_s_calibrated_score(
    client: httpx.Client, session_artifact: Path
) -> None:
    artifact = load_artifact(session_artifact)
    rows = random_transactions(20, seed=1)
    rows[:5, 13] -= 4.0  # push a few rows towards the synthetic fraud pattern (low V14)
    expected = artifact.fraud_probability(rows)

    for row, probability in zip(rows, expected, strict=True):
        response = client.post("/api/v1/predict", json=as_json(row))
        assert response.status_code == 200
        body = response.json()
        assert body["fraud_probability"] == pytest.approx(probability, abs=1e-12)
        assert body["is_fraud"] is bool(probability >= 0.01)
        assert body["threshold"] == 0.01
        assert body["model_version"] == artifact.metadata.model_version
    assert any(expected >= 0.01) and any(expected < 0.01)


def test_concurrent_requests_get_their_own_answers(fraud_app: str, session_artifact: Path) -> None:
    rows = random_transactions(96, seed=2)
    expected = load_artifact(session_artifact).fraud_probability(rows)

    async def send_all() -> list[float]:
        async with httpx.AsyncClient(base_url=fraud_app, timeout=60) as http:
            responses = await asyncio.gather(
                *(http.post("/api/v1/predict", json=as_json(row)) for row in rows)
            )
        assert {response.status_code for response in responses} == {200}
        return [response.json()["fraud_probability"] for response in responses]

    # Scored by the Ingress replicas' copies of the model (tests/serve/test_champion_copy.py
    # has them sent to the deployment, batched).
    np.testing.assert_allclose(asyncio.run(send_all()), expected, atol=1e-12)


def test_openapi_and_docs_are_served_under_api_v1(client: httpx.Client) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    assert {"/api/v1/predict", "/api/v1/utils/health-check/"} <= set(spec["paths"])
    schema = spec["components"]["schemas"]["Transaction"]
    assert schema["required"] == list(FEATURE_NAMES)
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_batch_endpoint_equals_the_single_endpoint_row_by_row(client: httpx.Client) -> None:
    rows = random_transactions(40, seed=4)
    rows[::3, 13] -= 4.0
    batch = client.post("/api/v1/predict/batch", json={"transactions": [as_json(r) for r in rows]})
    assert batch.status_code == 200
    predictions = batch.json()["predictions"]
    assert len(predictions) == 40
    for row, answer in zip(rows, predictions, strict=True):
        single = client.post("/api/v1/predict", json=as_json(row)).json()
        assert answer["fraud_probability"] == pytest.approx(single["fraud_probability"], abs=1e-12)
        assert answer["is_fraud"] == single["is_fraud"]
        assert answer["model_version"] == single["model_version"]


def test_columns_get_the_batch_endpoint_s_answers(client: httpx.Client) -> None:
    rows = [as_json(row) for row in random_transactions(60, seed=14)]
    batch = client.post("/api/v1/predict/batch", json={"transactions": rows}).json()
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    answer = client.post("/api/v1/predict/columns", json=columns)
    assert answer.status_code == 200
    assert_same_answers(answer.json(), batch["predictions"])


def test_threshold_and_batching_change_without_restarting_replicas(
    fraud_app: str, session_artifact: Path
) -> None:
    """A changed Serve config (what `serve deploy` and KubeRay apply) retunes replicas in place."""

    def threshold() -> float:
        row = as_json(random_transactions(1)[0])
        response = httpx.post(f"{fraud_app}/tuning/api/v1/predict", json=row, timeout=30)
        return response.json()["threshold"]

    tuning = {"threshold": 0.5, "max_batch_size": 32, "batch_wait_timeout_s": 0.005}
    deploy_app("tuning", str(session_artifact), user_config=tuning)
    try:
        before = replica_names("tuning")
        assert len(before) == 1 and threshold() == 0.5
        tuning = {"threshold": 0.25, "max_batch_size": 8, "batch_wait_timeout_s": 0.001}
        deploy_app("tuning", str(session_artifact), user_config=tuning)
        assert threshold() == 0.25
        assert replica_names("tuning") == before
    finally:
        serve.delete("tuning")
