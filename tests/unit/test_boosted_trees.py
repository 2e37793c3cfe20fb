"""Gradient-boosted trees, the challenger family: trained on a tiny real sample, exported to ONNX,
loaded through the serving engine, and explained; their ONNX scores are scikit-learn's."""

import dataclasses
import json
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from fraud_model.artifact import (
    METADATA_FILE,
    ArtifactMetadataError,
    load_artifact,
    parse_metadata,
    read_metadata,
)
from fraud_model.engines import PARITY_TOLERANCE, OnnxEngine
from fraud_model.explain import top_reasons
from serve_app.model import ServingModel, explained_predictions
from tests.helpers import real_sample_csv
from training.data import Dataset, load_transactions
from training.export import boosted_trees_to_onnx
from training.options import BoostingParams, ForestParams, TrainingOptions
from training.pipeline import train_and_export

OPTIONS = TrainingOptions(model_family="hist_gradient_boosting", split="temporal", stability_runs=0)
SMALL = BoostingParams(max_iter=40)


@pytest.fixture(scope="module")
def real_sample(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return load_transactions(real_sample_csv(tmp_path_factory.mktemp("real") / "sample.csv"))


@pytest.fixture(scope="module")
def boosted(tmp_path_factory: pytest.TempPathFactory, real_sample: Dataset) -> Path:
    path = tmp_path_factory.mktemp("boosted") / "model"
    train_and_export(real_sample, ForestParams(), OPTIONS, path, boosting=SMALL)
    return path


def sklearn_model(path: Path) -> HistGradientBoostingClassifier:
    model: HistGradientBoostingClassifier = joblib.load(path / "model.joblib")  # tests may
    return model


def test_the_artifact_is_format_5_and_says_its_family(boosted: Path) -> None:
    metadata = read_metadata(boosted)
    assert (metadata.format_version, metadata.model_family) == (5, "hist_gradient_boosting")
    assert metadata.calibration.method == "platt_log_odds"
    assert metadata.training_params["boosting"]["max_iter"] == SMALL.max_iter
    assert "forest" not in metadata.training_params
    assert sklearn_model(boosted).n_iter_ == SMALL.max_iter
    report = (boosted / "report.md").read_text()
    assert "**Boosted trees:** learning_rate=0.05" in report
    assert "expit(intercept + slope * log-odds), the log-odds the boosted trees give" in report


def test_onnx_scores_are_sklearns_on_real_rows(boosted: Path, real_sample: Dataset) -> None:
    artifact = load_artifact(boosted)  # the serving path: hashes, parity probe, ONNX engine
    model = sklearn_model(boosted)
    rows = real_sample.features
    log_odds = artifact.engine.raw_fraud_scores(rows)
    np.testing.assert_allclose(log_odds, model.decision_function(rows), atol=PARITY_TOLERANCE)
    probability = 1 / (1 + np.exp(-log_odds))
    np.testing.assert_allclose(probability, model.predict_proba(rows)[:, 1], atol=1e-6)
    served = artifact.fraud_probability(rows)
    assert np.all((served > 0) & (served < 1))
    # The calibration is monotone: it keeps the model's ranking.
    assert np.array_equal(np.argsort(served, kind="stable"), np.argsort(log_odds, kind="stable"))


def test_rows_on_either_side_of_a_threshold_go_where_sklearn_sends_them(boosted: Path) -> None:
    """Rows reaching a split with its feature at the threshold, or one float32 step either side
    of it, take the branch scikit-learn takes (x <= threshold, compared in double)."""
    model = sklearn_model(boosted)
    engine = OnnxEngine(boosted_trees_to_onnx(model))
    rows = []
    for (predictor,) in model._predictors[:10]:
        nodes = predictor.nodes
        for target in np.flatnonzero(nodes["is_leaf"] == 0):
            nearest = np.float32(nodes["num_threshold"][target])
            for value in (np.nextafter(nearest, np.float32(-np.inf)), nearest,
                          np.nextafter(nearest, np.float32(np.inf))):  # fmt: skip
                row = row_reaching(nodes, int(target), value)
                if row is not None:
                    rows.append(row)
    x = np.asarray(rows, dtype=np.float32)
    assert len(x) > 100
    np.testing.assert_allclose(engine.raw_fraud_scores(x), model.decision_function(x), atol=1e-5)


def row_reaching(nodes: np.ndarray, target: int, value: np.float32) -> np.ndarray | None:
    """A row that reaches node `target` of one tree with `value` in the node's feature, or None
    when the splits above it rule that value out."""
    parent = {}
    for node in np.flatnonzero(nodes["is_leaf"] == 0):
        parent[int(nodes["left"][node])] = (node, "left")
        parent[int(nodes["right"][node])] = (node, "right")
    low = np.full(29, -np.inf)
    high = np.full(29, np.inf)  # the row reaches `target` when low < x <= high, per feature
    node = target
    while node in parent:
        node, side = parent[node]
        feature, threshold = nodes["feature_idx"][node], nodes["num_threshold"][node]
        if side == "left":
            high[feature] = min(high[feature], threshold)
        else:
            low[feature] = max(low[feature], threshold)
    feature = nodes["feature_idx"][target]
    if not low[feature] < float(value) <= high[feature]:
        return None
    row = np.zeros(29, dtype=np.float32)
    for column in range(29):
        candidate = np.float32(min(max(0.0, low[column]), high[column]))
        while candidate > high[column]:
            candidate = np.nextafter(candidate, np.float32(-np.inf))
        while candidate <= low[column]:
            candidate = np.nextafter(candidate, np.float32(np.inf))
        if not low[column] < candidate <= high[column]:
            return None
        row[column] = candidate
    row[feature] = value
    return row


def test_reason_codes_add_up_to_the_log_odds_and_to_the_served_probability(
    boosted: Path, real_sample: Dataset
) -> None:
    artifact = load_artifact(boosted)
    explainer = artifact.load_explainer()
    assert explainer.family == "hist_gradient_boosting"
    rows = real_sample.features[:300]
    raw = explainer.raw(rows)
    np.testing.assert_allclose(
        raw.base + raw.contributions.sum(axis=1),
        sklearn_model(boosted).decision_function(rows),
        atol=1e-9,
    )
    served, probability = explainer.served(rows, artifact.metadata.calibration)
    np.testing.assert_allclose(
        served.base + served.contributions.sum(axis=1), artifact.fraud_probability(rows),
        atol=1e-6,
    )  # fmt: skip
    np.testing.assert_allclose(probability, artifact.fraud_probability(rows), atol=1e-6)
    # Through the serving code's explain path (what ?explain=true answers).
    serving = ServingModel(str(boosted), None, artifact, 0.5, explainer=explainer)
    answers = explained_predictions(serving, rows[:3].tolist(), top_k=3)  # type: ignore[arg-type]
    for answer, row in zip(answers, top_reasons(served, rows, k=3), strict=False):
        assert answer["explanation"]["contributions"] == row["contributions"]


def test_a_trees_file_of_another_family_is_refused(boosted: Path) -> None:
    artifact = load_artifact(boosted)
    as_forest = artifact.metadata.model_copy(update={"model_family": "random_forest"})
    mislabelled = dataclasses.replace(artifact, metadata=as_forest)
    with pytest.raises(ArtifactMetadataError, match="holds hist_gradient_boosting trees"):
        mislabelled.load_explainer()


def test_boosted_trees_cannot_pass_for_format_4(boosted: Path) -> None:
    """A format-4 reader would serve any model as a forest: a boosted one must say format 5."""
    raw = json.loads((boosted / METADATA_FILE).read_text()) | {"format_version": 4}
    with pytest.raises(ArtifactMetadataError, match="needs format_version 5"):
        parse_metadata(json.dumps(raw).encode(), "edited")


def test_a_family_with_another_family_s_calibration_is_refused(boosted: Path) -> None:
    """The forest's calibration on boosted trees' log-odds would serve wrong probabilities."""
    raw = json.loads((boosted / METADATA_FILE).read_text())
    raw["calibration"] |= {"method": "platt", "trees": 40, "pseudo_count": 0.5}
    with pytest.raises(ArtifactMetadataError, match="calibrated by platt_log_odds, not platt"):
        parse_metadata(json.dumps(raw).encode(), "edited")


def test_a_forest_is_still_written_as_format_4_without_a_family(pristine_artifact: Path) -> None:
    raw = json.loads((pristine_artifact / METADATA_FILE).read_text())
    assert raw["format_version"] == 4 and "model_family" not in raw
    assert read_metadata(pristine_artifact).model_family == "random_forest"
