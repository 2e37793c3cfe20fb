"""A model trained here, each decision rule served through FraudModel's code path (in-process):
its decisions on the test rows are the ones the training report counted, and the alert budget
holds on those held-out rows."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fraud_model.artifact import load_artifact
from fraud_model.metadata import ArtifactMetadata
from serve_app.model import ModelConfig, ServingModel, predictions, rule_of
from training.data import Dataset, synthetic_dataset
from training.intervals import decision_intervals
from training.options import ForestParams, TrainingOptions
from training.pipeline import make_split, train_and_export
from training.split import duplicate_groups
from training.weights import production_weights

OPTIONS = TrainingOptions(split="temporal", compare_split="random", stability_runs=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Dataset, Path, ArtifactMetadata]:
    dataset = synthetic_dataset(8_000, fraud_rate=0.03, seed=5)
    path = tmp_path_factory.mktemp("rules") / "model"
    metadata = train_and_export(dataset, ForestParams(n_estimators=15, max_depth=8), OPTIONS, path)
    return dataset, path, metadata


RULE_CONFIGS: dict[str, dict[str, Any]] = {
    "fixed_threshold": {},  # the artifact's threshold
    "alert_budget": {"alerts_per_10k": OPTIONS.alerts_per_10k},
    "expected_cost": {"review_cost": OPTIONS.review_cost},
}


def served(
    trained: tuple[Dataset, Path, ArtifactMetadata], rule: str
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """The test rows of the headline split, their labels and the served answers under `rule`."""
    dataset, path, _ = trained
    artifact = load_artifact(path)
    tuning = ModelConfig.model_validate({"decision_rule": rule, **RULE_CONFIGS[rule]})
    decision = rule_of(tuning, artifact)
    serving = ServingModel(str(path), None, artifact, decision.cut, rule=decision)
    split = make_split(dataset, "temporal", OPTIONS, duplicate_groups(dataset.features))
    rows = split.test
    answers: list[dict[str, Any]] = list(predictions(serving, dataset.features[rows]))  # type: ignore[arg-type]
    return rows, dataset.labels[rows], answers


@pytest.mark.parametrize("rule", list(RULE_CONFIGS))
def test_each_rule_decides_in_serving_as_the_report_counted(
    trained: tuple[Dataset, Path, ArtifactMetadata], rule: str
) -> None:
    dataset, _, metadata = trained
    rows, labels, answers = served(trained, rule)
    reported = metadata.metrics["splits"]["temporal"]["rules_on_test"][rule]
    flags = np.array([answer["is_fraud"] for answer in answers])
    amounts = dataset.features[rows, -1].astype(np.float64)
    assert int(flags[labels == 1].sum()) == reported["frauds_caught"]
    assert int(flags[labels == 0].sum()) == reported["false_positives"]
    assert amounts[flags & (labels == 1)].sum() == pytest.approx(reported["amount_caught"])
    assert {answer["decision_rule"] for answer in answers} == {rule}
    assert {answer["threshold"] for answer in answers} == {reported["cut"]}
    assert 0 < reported["frauds_caught"] < reported["frauds"]  # the rule decides something


def test_the_shipped_rule_is_the_one_the_report_names(
    trained: tuple[Dataset, Path, ArtifactMetadata],
) -> None:
    _, path, metadata = trained
    artifact = load_artifact(path)
    shipped = rule_of(ModelConfig(), artifact)
    assert shipped == metadata.decision
    assert metadata.metrics["decision_rule"] == shipped.describe()
    assert metadata.alert_curve_file in metadata.files  # hash-checked with the rest


def test_the_alert_budget_holds_on_held_out_rows_within_its_binomial_interval(
    trained: tuple[Dataset, Path, ArtifactMetadata],
) -> None:
    dataset, _, _ = trained
    rows, labels, answers = served(trained, "alert_budget")
    flags = np.array([answer["is_fraud"] for answer in answers])
    live = production_weights(dataset.labels, OPTIONS.production_fraud_rate)[rows]
    rate = float(live[labels == 1].sum() / live.sum())
    _, low, high = decision_intervals(labels, flags, None, rate).alert_rate
    assert low * 10_000 <= OPTIONS.alerts_per_10k <= high * 10_000
