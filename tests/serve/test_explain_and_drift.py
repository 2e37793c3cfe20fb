"""Reason codes and score drift, over real HTTP."""

from pathlib import Path

import httpx
import numpy as np
import pytest

from fraud_model.artifact import load_artifact
from fraud_model.features import FEATURE_NAMES
from tests.helpers import as_json, random_transactions
from tests.polling import wait_for
from tests.serve.serving import metric_value

pytestmark = [pytest.mark.ray, pytest.mark.serve]


def test_explain_adds_contributions_that_sum_to_the_score(client: httpx.Client) -> None:
    rows = random_transactions(6, seed=31)
    rows[:3, 13] -= 4.0
    for row in rows:
        plain = client.post("/api/v1/predict", json=as_json(row)).json()
        assert "explanation" not in plain
        every = client.post("/api/v1/predict?explain=true&top_k=29", json=as_json(row)).json()
        assert every["fraud_probability"] == plain["fraud_probability"]
        contributions = every["explanation"]["contributions"]
        assert sorted(c["feature"] for c in contributions) == sorted(FEATURE_NAMES)
        assert every["explanation"]["other"] == 0.0
        by_name = {c["feature"]: c["value"] for c in contributions}
        assert by_name["V14"] == pytest.approx(float(row[13]), rel=1e-6)
        for query, k in (
            ("explain=true", 5),
            ("explain=true&top_k=3", 3),
            ("explain=true&top_k=29", 29),
        ):
            explained = client.post(f"/api/v1/predict?{query}", json=as_json(row)).json()
            assert explained["fraud_probability"] == plain["fraud_probability"]
            explanation = explained["explanation"]
            listed = explanation["contributions"]
            assert len(listed) == k
            # The top k of every feature's contributions, largest first.
            assert listed == contributions[:k]
            sizes = [abs(c["contribution"]) for c in listed]
            assert sizes == sorted(sizes, reverse=True)
            rest = sum(c["contribution"] for c in contributions[k:])
            assert explanation["other"] == pytest.approx(rest, abs=1e-12)
            total = explanation["base"] + sum(c["contribution"] for c in listed)
            # Exact for the forest; the ONNX score agrees within the parity tolerance.
            assert total + explanation["other"] == pytest.approx(
                plain["fraud_probability"], abs=1e-5
            )


@pytest.mark.parametrize("top_k", ["0", "30", "x"])
def test_top_k_outside_one_to_29_is_refused(client: httpx.Client, top_k: str) -> None:
    row = as_json(random_transactions(1, seed=34)[0])
    response = client.post(f"/api/v1/predict?explain=true&top_k={top_k}", json=row)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "top_k"]


def test_batch_explain_matches_single_explain(client: httpx.Client) -> None:
    rows = random_transactions(5, seed=32)
    body = {"transactions": [as_json(row) for row in rows]}
    for query in ("explain=true", "explain=true&top_k=2"):
        batch = client.post(f"/api/v1/predict/batch?{query}", json=body).json()["predictions"]
        for row, answer in zip(rows, batch, strict=True):
            single = client.post(f"/api/v1/predict?{query}", json=as_json(row)).json()
            assert answer == single


def test_score_drift_is_tracked_against_the_artifact_s_reference(
    client: httpx.Client, session_artifact: Path
) -> None:
    before = client.get("/api/v1/model").json()["score_drift"]
    version = load_artifact(session_artifact).metadata.model_version
    binned_before = metric_value("ray_fraud_score_drift_bin_total", model_version=version)
    # Traffic unlike the reference: every row pushed towards the fraud pattern.
    rows = random_transactions(300, seed=33)
    rows[:, 13] -= 5.0
    body = {"transactions": [as_json(row) for row in rows]}
    assert client.post("/api/v1/predict/batch", json=body).status_code == 200
    after = client.get("/api/v1/model").json()["score_drift"]
    assert after["scores_seen"] >= before["scores_seen"] + 300
    assert after["psi"] > 0.25  # "the inputs have moved"
    assert after["scope"] == "this replica, since it loaded the model"
    assert "fraud:score_psi:1h" in after["fleet_psi"]

    # The fleet-wide rule's input: every score counted in a drift bin, on Ray's endpoint.
    def binned() -> float:
        return metric_value("ray_fraud_score_drift_bin_total", model_version=version)

    assert wait_for(lambda: binned() >= binned_before + 300)
    scores = load_artifact(session_artifact).fraud_probability(rows)
    assert np.mean(scores) > 0.01  # the pushed rows do score high
