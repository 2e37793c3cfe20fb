"""The bundled default model is a valid artifact, traceable to the data it was trained on, and
the README quotes its answer."""

import json
import re

import joblib
import numpy as np
import pandas as pd

from fraud_model.artifact import load_artifact, read_metadata, sha256_file
from fraud_model.features import FEATURE_NAMES
from serve_app.model import ModelConfig, ServingModel, predictions, rule_of
from tests.helpers import PROJECT_ROOT

BUNDLED = PROJECT_ROOT / "artifacts" / "default"


def test_bundled_model_verifies_and_names_its_training_data() -> None:
    metadata = read_metadata(BUNDLED)  # checks the schema, the features and every file's sha256
    data_file = PROJECT_ROOT / "data" / metadata.data.source
    assert sha256_file(data_file) == metadata.data.sha256
    assert (metadata.data.rows, metadata.data.fraud_count) == (19_501, 492)
    assert "creditcard_real_subset.strata.json" in (metadata.data.sampling or "")
    assert metadata.calibration.production_prior == 0.00172
    assert metadata.metrics["test"]["pr_auc"] > 0.85


def test_bundled_model_is_measured_as_docs_model_md_says() -> None:
    """Weights, grouped splits, both splits, the new calibration, the rules compared."""
    metadata = read_metadata(BUNDLED)
    metrics = metadata.metrics
    assert metadata.format_version == 4 and metadata.calibration.method == "platt"
    assert metrics["headline_split"] == "temporal" and set(metrics["splits"]) == {
        "temporal", "random"
    }  # fmt: skip
    for split in metrics["splits"].values():
        assert (split["duplicate_groups"], split["duplicate_rows"]) == (137, 376)
        assert split["groups_across_parts"] == 0
        assert set(split["rules_on_test"]) == {"fixed_threshold", "alert_budget", "expected_cost"}
    assert metrics["decision_rule"] == metadata.decision_rule.describe()
    assert metadata.alert_curve_file in metadata.files
    # No interval anywhere in the metrics is degenerate.
    for low, high in _intervals(metrics):
        assert low < high
    model_md = (PROJECT_ROOT / "docs" / "MODEL.md").read_text()
    live = metrics["test_at_production_rate"]
    assert f"{live['pr_auc']:.3f}" in model_md and metadata.model_version in model_md


def _intervals(value: object) -> list[tuple[float, float]]:
    """Every [low, high] pair under a key ending in ci95 (or named ci95's fields)."""
    found: list[tuple[float, float]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith("ci95") and isinstance(item, list):
                found.append((item[0], item[1]))
            elif key == "ci95" and isinstance(item, dict):
                found += [(pair[0], pair[1]) for pair in item.values()]
            else:
                found += _intervals(item)
    elif isinstance(value, list):
        for item in value:
            found += _intervals(item)
    return found


def test_no_bundled_row_is_served_a_probability_of_exactly_0_or_1() -> None:
    artifact = load_artifact(BUNDLED)
    frame = pd.read_csv(PROJECT_ROOT / "data" / artifact.metadata.data.source)
    served = artifact.fraud_probability(frame[list(FEATURE_NAMES)].to_numpy(dtype=np.float32))
    assert served.min() > 0 and served.max() < 1


def test_bundled_model_is_small_enough_for_git() -> None:
    size = sum(file.stat().st_size for file in BUNDLED.iterdir())
    assert size < 10 * 1024 * 1024


def test_bundled_report_and_trees_belong_to_the_bundled_forest() -> None:
    artifact = load_artifact(BUNDLED)
    metadata = artifact.metadata
    assert metadata.report_file == "report.md"
    report = (BUNDLED / "report.md").read_text()
    assert metadata.decision_rule.describe() in report and metadata.data.sha256 in report
    assert sum(name.endswith(".png") for name in metadata.files) == 6
    # Reason codes from trees.npz add up to the committed forest's own predict_proba.
    frame = pd.read_csv(PROJECT_ROOT / "data" / metadata.data.source, nrows=300)
    rows = frame[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    forest = joblib.load(BUNDLED / metadata.engines["sklearn"])  # hash-checked above
    explainer = artifact.load_explainer()
    raw = explainer.raw(rows)
    np.testing.assert_allclose(
        raw.base + raw.contributions.sum(axis=1), forest.predict_proba(rows)[:, 1], atol=1e-9
    )
    explanation, served = explainer.served(rows, metadata.calibration)
    np.testing.assert_allclose(
        explanation.base + explanation.contributions.sum(axis=1), served, atol=1e-9
    )
    # ...and to what the ONNX engine serves, within the engines' parity tolerance.
    np.testing.assert_allclose(
        served, artifact.fraud_probability(rows), atol=metadata.parity.tolerance
    )


def readme_curl_row() -> dict[str, float]:
    """The transaction of the README's curl example."""
    found = re.search(r"-d '(\{.*?\})'", (PROJECT_ROOT / "README.md").read_text(), re.S)
    assert found, "README.md has no curl example"
    return {name: float(value) for name, value in json.loads(found.group(1)).items()}


def readme_answer() -> dict[str, object]:
    """The answer the README quotes for its curl example."""
    text = (PROJECT_ROOT / "README.md").read_text()
    found = re.search(r'^```json\n(\{"fraud_probability".*?\})\n```', text, re.M | re.S)
    assert found, "README.md quotes no answer"
    answer: dict[str, object] = json.loads(found.group(1))
    return answer


def test_the_readme_quotes_the_bundled_model_s_answer_to_its_curl_row() -> None:
    """Scored through FraudModel's code path with the bundled config (no user_config)."""
    artifact = load_artifact(BUNDLED)
    rule = rule_of(ModelConfig(), artifact)
    serving = ServingModel(str(BUNDLED), None, artifact, rule.cut, rule=rule)
    row = readme_curl_row()
    (answer,) = predictions(serving, [[row[name] for name in FEATURE_NAMES]])
    assert dict(answer) == readme_answer()
