"""Single transactions scored by the Ingress replicas' copies of the FraudModel deployment's
model (serve_app.champion_copy), through real Serve: answered as the deployment answers, counted
under the Ingress, following a change of the deployment's rule, and off with
`local_scoring: false`."""

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from ray import serve

from fraud_model.artifact import load_artifact, read_metadata
from tests.helpers import METRICS_EXPORT_S, as_json, random_transactions
from tests.polling import wait_for
from tests.serve.serving import deploy_app, metric_value

pytestmark = [pytest.mark.ray, pytest.mark.serve]

APP = "copy"
ROWS = random_transactions(30, seed=41)


@pytest.fixture(scope="module")
def copy_app(serve_url: str, session_artifact: Path) -> Iterator[str]:
    deploy_app(APP, str(session_artifact), user_config={"threshold": 0.3})
    yield f"{serve_url}/{APP}"
    serve.delete(APP)


def singles(base: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=base, timeout=30) as http:
        return [http.post("/api/v1/predict", json=as_json(row)).json() for row in ROWS]


def copies_in_use(base: str, version: str | None, tries: int = 8) -> bool:
    """Whether every one of `tries` model-endpoint answers (each from one of the Ingress
    replicas) says its copy scores single transactions with `version` (None: no copy)."""
    with httpx.Client(base_url=base, timeout=30) as http:
        for _ in range(tries):
            copy = http.get("/api/v1/model").json().get("single_transactions")
            if (copy or {}).get("model_version") != version:
                return False
    return True


def test_single_transactions_are_scored_in_the_ingress_as_the_deployment_scores_them(
    copy_app: str, session_artifact: Path
) -> None:
    version = read_metadata(session_artifact).model_version
    assert wait_for(lambda: copies_in_use(copy_app, version), timeout_s=60)
    counted_before = metric_value(
        "ray_fraud_predictions_total", application=APP, deployment="Ingress"
    )
    answers = singles(copy_app)
    body = {"transactions": [as_json(row) for row in ROWS]}
    batch = httpx.post(f"{copy_app}/api/v1/predict/batch", json=body, timeout=30).json()
    # The batch endpoint is scored by the FraudModel deployment: the same answers, exactly.
    assert answers == batch["predictions"]
    assert {answer["threshold"] for answer in answers} == {0.3}
    # Counted by the Ingress replicas, where they were scored.
    assert wait_for(
        lambda: (
            metric_value("ray_fraud_predictions_total", application=APP, deployment="Ingress")
            >= counted_before + len(ROWS)
        ),
        timeout_s=60,
    )


def test_the_copies_follow_a_new_rule_of_the_deployment(
    copy_app: str, session_artifact: Path
) -> None:
    version = read_metadata(session_artifact).model_version
    assert wait_for(lambda: copies_in_use(copy_app, version), timeout_s=60)
    deploy_app(APP, str(session_artifact), user_config={"threshold": 0.0})
    # Within a few of the copies' one-second asks, every single transaction is flagged.

    def all_flagged() -> bool:
        return all(a["threshold"] == 0.0 and a["is_fraud"] for a in singles(copy_app))

    assert wait_for(all_flagged, timeout_s=15)


def model_calls() -> tuple[float, float]:
    """(vectorised calls, rows scored) of the app's FraudModel replicas so far. (Not the
    histogram's `_sum`: Ray 2.60 exports a wrong one, half the rows in a run seen here.)"""
    tags = {"application": APP, "deployment": "FraudModel"}
    calls = metric_value("ray_fraud_model_batch_size_count", **tags)
    return calls, metric_value("ray_fraud_predictions_total", **tags)


def settled_model_calls() -> tuple[float, float]:
    """model_calls() once the earlier tests' counts have all been exported: unchanged over
    more than an export period."""
    last: list[tuple[float, float]] = []

    def unchanged() -> bool:
        last.append(model_calls())
        return len(last) > 1 and last[-1] == last[-2]

    assert wait_for(unchanged, timeout_s=120, every_s=1.2 * METRICS_EXPORT_S)
    return last[-1]


def test_local_scoring_off_sends_every_transaction_to_the_deployment_batched(
    copy_app: str, session_artifact: Path
) -> None:
    off = [{"name": "Ingress", "user_config": {"local_scoring": False}}]
    deploy_app(APP, str(session_artifact), user_config={"threshold": 0.3}, more_deployments=off)
    # The Ingress's user_config is applied in place before the deploy returns.
    assert copies_in_use(copy_app, None)
    rows = random_transactions(96, seed=2)
    expected = load_artifact(session_artifact).fraud_probability(rows)
    calls_before, rows_before = settled_model_calls()

    async def send_all() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=copy_app, timeout=60) as http:
            responses = await asyncio.gather(
                *(http.post("/api/v1/predict", json=as_json(row)) for row in rows)
            )
        assert {response.status_code for response in responses} == {200}
        return [response.json() for response in responses]

    answers = asyncio.run(send_all())
    np.testing.assert_allclose([a["fraud_probability"] for a in answers], expected, atol=1e-12)
    assert all(answer["threshold"] == 0.3 for answer in answers)
    # Batched: the 96 rows went through the model in fewer vectorised calls than requests.
    # The replicas count each call at once, and add up the rows to send them to Ray now and
    # then (so an earlier test's last rows may arrive with these: at least 96, not exactly);
    # an export that holds the rows holds the calls counted before them.
    scored = wait_for(lambda: model_calls()[1] - rows_before >= len(rows), timeout_s=60)
    assert scored, "the model's metrics did not count the rows within 60 s"
    calls, _ = model_calls()
    assert 0 < calls - calls_before < len(rows)
    deploy_app(APP, str(session_artifact), user_config={"threshold": 0.3})
    version = read_metadata(session_artifact).model_version
    assert wait_for(lambda: copies_in_use(copy_app, version), timeout_s=60)
