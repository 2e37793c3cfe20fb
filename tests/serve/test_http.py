"""The served graph over real HTTP: Serve proxy -> Ingress (FastAPI) -> FraudModel (batched)."""

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest
import ray
from ray import serve

from fraud_model.artifact import load_artifact
from fraud_model.features import FEATURE_NAMES
from serve_app.app import build_app
from tests.conftest import random_transactions
from tests.serve.conftest import shipped_app_args

pytestmark = [pytest.mark.ray, pytest.mark.serve]


def as_json(row: np.ndarray) -> dict[str, float]:
    return {name: float(value) for name, value in zip(FEATURE_NAMES, row, strict=True)}


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


def test_concurrent_requests_are_batched_without_mixing_answers(
    fraud_app: str, session_artifact: Path
) -> None:
    rows = random_transactions(96, seed=2)
    expected = load_artifact(session_artifact).fraud_probability(rows)

    async def send_all() -> list[float]:
        async with httpx.AsyncClient(base_url=fraud_app, timeout=60) as http:
            responses = await asyncio.gather(
                *(http.post("/api/v1/predict", json=as_json(row)) for row in rows)
            )
        assert {response.status_code for response in responses} == {200}
        return [response.json()["fraud_probability"] for response in responses]

    np.testing.assert_allclose(asyncio.run(send_all()), expected, atol=1e-12)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"V3": None}, "V3", "valid number"),
        ({"Amount": "12.5"}, "Amount", "valid number"),
        ({"V1": True}, "V1", "valid number"),
        ({"V7": [1.0]}, "V7", "valid number"),
    ],
)
def test_bad_field_gets_422_naming_it(
    client: httpx.Client, change: dict, field: str, message: str
) -> None:
    body = as_json(random_transactions(1)[0]) | change
    response = client.post("/api/v1/predict", json=body)
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert [error["loc"] for error in errors] == [["body", field]]
    assert message in errors[0]["msg"]
    assert "input" not in errors[0]  # transaction values are never echoed back


def test_missing_fields_are_each_named(client: httpx.Client) -> None:
    body = as_json(random_transactions(1)[0])
    del body["V2"], body["Amount"]
    response = client.post("/api/v1/predict", json=body)
    assert response.status_code == 422
    assert sorted(error["loc"][-1] for error in response.json()["detail"]) == ["Amount", "V2"]


def test_nan_and_infinity_are_refused(client: httpx.Client) -> None:
    body = as_json(random_transactions(1)[0])
    for bad in ("NaN", "Infinity", "-Infinity"):
        raw = httpx.Request("POST", "/", json=body | {"V4": 123456.0}).content.decode()
        response = client.post(
            "/api/v1/predict",
            content=raw.replace("123456.0", bad),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 422, bad
        assert response.json()["detail"][0]["loc"] == ["body", "V4"]


def test_openapi_and_docs_are_served_under_api_v1(client: httpx.Client) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    assert {"/api/v1/predict", "/api/v1/utils/health-check/"} <= set(spec["paths"])
    schema = spec["components"]["schemas"]["Transaction"]
    assert schema["required"] == list(FEATURE_NAMES)
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_config_args_choose_the_engine(
    client: httpx.Client, fraud_app: str, session_artifact: Path
) -> None:
    args = shipped_app_args(artifact_path=str(session_artifact), engine="sklearn")
    serve.run(build_app(args), name="fallback", route_prefix="/fallback")
    try:
        for row in random_transactions(10, seed=9):
            onnx = client.post("/api/v1/predict", json=as_json(row)).json()
            fallback = httpx.post(
                f"{fraud_app}/fallback/api/v1/predict", json=as_json(row), timeout=30
            ).json()
            assert fallback["fraud_probability"] == pytest.approx(
                onnx["fraud_probability"], rel=1e-5, abs=1e-9
            )
    finally:
        serve.delete("fallback")


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


@pytest.mark.parametrize(
    ("transactions", "loc", "message"),
    [
        ([], ["body", "transactions"], "at least 1 item"),
        (1001, ["body", "transactions"], "at most 1000 items"),
        ("one bad", ["body", "transactions", 2, "V2"], "valid number"),
    ],
)
def test_bad_batches_get_422_naming_the_limit_or_the_field(
    client: httpx.Client, transactions: object, loc: list, message: str
) -> None:
    if transactions == 1001:
        transactions = [as_json(row) for row in random_transactions(1001)]
    elif transactions == "one bad":
        transactions = [as_json(row) for row in random_transactions(4)]
        transactions[2]["V2"] = "x"
    response = client.post("/api/v1/predict/batch", json={"transactions": transactions})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == loc and message in error["msg"]


def test_threshold_and_batching_change_without_restarting_replicas(
    fraud_app: str, session_artifact: Path
) -> None:
    """A changed Serve config (what `serve deploy` and KubeRay apply) retunes replicas in place."""
    from ray.serve.context import _get_global_client  # the client `serve deploy` ends up in
    from ray.serve.schema import ServeDeploySchema

    def apply(tuning: dict) -> None:
        app = {
            "name": "tuning",
            "route_prefix": "/tuning",
            "import_path": "serve_app.app:build_app",
            "args": {"artifact_path": str(session_artifact)},
            "deployments": [{"name": "FraudModel", "user_config": tuning}],
        }
        config = ServeDeploySchema.model_validate({"applications": [app]})
        _get_global_client().deploy_apps(config, _blocking=True)

    def replicas() -> set[str]:
        actors = ray.util.list_named_actors(all_namespaces=True)
        return {a["name"] for a in actors if "tuning#FraudModel" in a["name"]}

    def threshold() -> float:
        row = as_json(random_transactions(1)[0])
        response = httpx.post(f"{fraud_app}/tuning/api/v1/predict", json=row, timeout=30)
        return response.json()["threshold"]

    apply({"threshold": 0.5, "max_batch_size": 32, "batch_wait_timeout_s": 0.005})
    try:
        before = replicas()
        assert len(before) == 1 and threshold() == 0.5
        apply({"threshold": 0.25, "max_batch_size": 8, "batch_wait_timeout_s": 0.001})
        assert threshold() == 0.25
        assert replicas() == before
    finally:
        serve.delete("tuning")
