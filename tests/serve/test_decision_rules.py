"""Decision rules in a running service: the artifact's own rule by default, another one set in
FraudModel's user_config and applied in place, a config that makes no rule refused while the old
rule keeps serving, and the decision counts of a per-transaction rule exact in the metrics."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from ray import serve

from fraud_model.artifact import load_artifact
from fraud_model.features import FEATURE_NAMES
from tests.helpers import as_json
from tests.polling import wait_for
from tests.serve.serving import deploy_app, metric_value
from training.data import synthetic_dataset
from training.options import ForestParams, TrainingOptions
from training.pipeline import train_and_export

pytestmark = [pytest.mark.ray, pytest.mark.serve]

AMOUNT = FEATURE_NAMES.index("Amount")


def mixed_rows() -> np.ndarray:
    """Ten frauds and ten legitimate transactions (within the anonymous body limit)."""
    data = synthetic_dataset(2_000, fraud_rate=0.05, seed=8)
    fraud = np.flatnonzero(data.labels == 1)[:10]
    legitimate = np.flatnonzero(data.labels == 0)[:10]
    return data.features[np.concatenate([fraud, legitimate])]


ROWS = mixed_rows()
SCORED: list[int] = []  # rows the `rules` app scored in this module, one entry per request


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained here, with its decision rule and alert curve."""
    path = tmp_path_factory.mktemp("rules") / "model"
    train_and_export(
        synthetic_dataset(4_000, fraud_rate=0.04, seed=3),
        ForestParams(n_estimators=10, max_depth=8),
        TrainingOptions(decision_rule="fixed_threshold", stability_runs=0),
        path,
    )
    return path


@pytest.fixture(scope="module")
def rules_app(serve_url: str, trained: Path) -> Iterator[str]:
    deploy_app("rules", str(trained))
    yield f"{serve_url}/rules"
    serve.delete("rules")


def answers(base: str) -> list[dict]:
    body = {"transactions": [as_json(row) for row in ROWS]}
    response = httpx.post(f"{base}/api/v1/predict/batch", json=body, timeout=30)
    assert response.status_code == 200, response.text
    predictions: list[dict] = response.json()["predictions"]
    SCORED.append(len(predictions))
    return predictions


def model_info(base: str) -> dict:
    return httpx.get(f"{base}/api/v1/model", timeout=30).json()


def test_the_artifact_s_rule_decides_unless_the_config_names_another(
    rules_app: str, trained: Path
) -> None:
    artifact = load_artifact(trained)
    shipped = artifact.metadata.decision_rule
    assert shipped.rule == "fixed_threshold"
    probabilities = artifact.fraud_probability(ROWS)
    for answer, p in zip(answers(rules_app), probabilities, strict=True):
        assert answer["decision_rule"] == "fixed_threshold"
        assert answer["threshold"] == shipped.cut
        assert answer["is_fraud"] is bool(p >= shipped.cut)

    # Another rule, applied in place: the expected cost of each transaction's Amount.
    expected_loss = probabilities * ROWS[:, AMOUNT].astype(np.float64)
    cost = float(np.median(expected_loss))
    deploy_app("rules", str(trained), user_config={"decision_rule": "expected_cost",
                                                    "review_cost": cost})  # fmt: skip
    expected = expected_loss >= cost
    served = answers(rules_app)
    assert [answer["is_fraud"] for answer in served] == expected.tolist()
    assert {(answer["decision_rule"], answer["threshold"]) for answer in served} == {
        ("expected_cost", cost)
    }
    assert 0 < expected.sum() < len(ROWS)  # the Amount decides some rows either way
    info = model_info(rules_app)
    assert info["decision_rule"]["rule"] == "expected_cost"
    assert info["artifact_decision_rule"]["rule"] == "fixed_threshold"

    # An alert budget becomes a threshold on the artifact's alert curve.
    deploy_app("rules", str(trained), user_config={"decision_rule": "alert_budget",
                                                    "alerts_per_10k": 50})  # fmt: skip
    threshold = artifact.alert_curve.threshold_for(alerts_per_10k=50)  # type: ignore[union-attr]
    assert {answer["threshold"] for answer in answers(rules_app)} == {threshold}


def test_a_config_that_makes_no_rule_is_refused_and_the_old_rule_keeps_serving(
    rules_app: str, trained: Path
) -> None:
    deploy_app("rules", str(trained), user_config={"threshold": 0.3})
    # alert_budget without its number, on an artifact that ships another rule.
    deploy_app("rules", str(trained), user_config={"decision_rule": "alert_budget"})
    info = model_info(rules_app)
    assert "decision rule" in info["last_reload_error"]["error"]
    assert "alerts_per_10k" in info["last_reload_error"]["error"]
    assert {(answer["decision_rule"], answer["threshold"]) for answer in answers(rules_app)} == {
        ("fixed_threshold", 0.3)
    }


def test_the_metrics_count_the_decisions_of_a_per_transaction_rule(
    rules_app: str, trained: Path
) -> None:
    artifact = load_artifact(trained)
    cost = float(np.median(artifact.fraud_probability(ROWS) * ROWS[:, AMOUNT]))
    deploy_app("rules", str(trained), user_config={"decision_rule": "expected_cost",
                                                    "review_cost": cost})  # fmt: skip
    version = artifact.metadata.model_version

    def counted(decision: str) -> float:
        return metric_value(
            "ray_fraud_predictions_total", application="rules", decision=decision,
            model_version=version,
        )  # fmt: skip

    # Every row scored so far is exported first, so that the counts below move by this batch.
    assert wait_for(
        lambda: counted("fraud") + counted("legit") == sum(SCORED), timeout_s=60, every_s=2
    )
    before = {decision: counted(decision) for decision in ("fraud", "legit")}
    served = answers(rules_app)
    flagged = sum(answer["is_fraud"] for answer in served)
    assert 0 < flagged < len(served)
    assert wait_for(
        lambda: (
            counted("fraud") - before["fraud"] == flagged
            and counted("legit") - before["legit"] == len(served) - flagged
        ),
        timeout_s=60,
        every_s=2,
    )
