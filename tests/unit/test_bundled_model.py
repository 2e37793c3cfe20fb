"""The bundled default model is a valid artifact, traceable to the data it was trained on."""

from fraud_model.artifact import read_metadata, sha256_file
from tests.conftest import PROJECT_ROOT

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
