"""The bundled default model is a valid artifact, traceable to the data it was trained on."""

import joblib
import numpy as np
import pandas as pd

from fraud_model.artifact import load_artifact, read_metadata, sha256_file
from fraud_model.features import FEATURE_NAMES
from tests.helpers import PROJECT_ROOT

BUNDLED = PROJECT_ROOT / "artifacts" / "default"


def test_bundled_model_verifies_and_names_its_training_data() -> None:
    metadata = read_metadata(BUNDLED)  # checks the schema, the features and every file's sha256
    data_file = PROJECT_ROOT / "data" / metadata.data.source
    assert sha256_file(data_file) == metadata.data.sha256
    assert (metadata.data.rows, metadata.data.fraud_count) == (19_501, 492)
    assert metadata.calibration.production_prior == 0.00172
    assert metadata.metrics["test"]["pr_auc"] > 0.85


def test_bundled_model_is_small_enough_for_git() -> None:
    size = sum(file.stat().st_size for file in BUNDLED.iterdir())
    assert size < 10 * 1024 * 1024


def test_bundled_report_and_trees_belong_to_the_bundled_forest() -> None:
    artifact = load_artifact(BUNDLED)
    metadata = artifact.metadata
    assert metadata.report_file == "report.md"
    report = (BUNDLED / "report.md").read_text()
    assert f"{metadata.threshold:.6f}" in report and metadata.data.sha256 in report
    assert sum(name.endswith(".png") for name in metadata.files) == 5
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
