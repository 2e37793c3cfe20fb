import json
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from fraud_model.artifact import (
    METADATA_FILE,
    MODEL_FILE,
    ArtifactFileMissingError,
    ArtifactHashMismatchError,
    ArtifactMetadataError,
    ArtifactNotFoundError,
    FeatureMismatchError,
    UnsupportedArtifactVersionError,
    load_artifact,
    sha256_file,
)
from fraud_model.features import FEATURE_NAMES
from fraud_model.prior import adjust_to_prior
from tests.conftest import random_transactions, write_artifact
from training.data import Dataset


def edit_metadata(artifact: Path, **changes: object) -> None:
    path = artifact / METADATA_FILE
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


def test_round_trip_keeps_model_metadata_and_scores(
    artifact_dir: Path, tiny_forest: RandomForestClassifier, tiny_dataset: Dataset
) -> None:
    loaded = load_artifact(artifact_dir)
    meta = loaded.metadata
    assert meta.format_version == 1
    assert meta.features == list(FEATURE_NAMES)
    assert meta.files == {MODEL_FILE: sha256_file(artifact_dir / MODEL_FILE)}
    assert meta.data.rows == 2_000 and meta.data.fraud_count == 100
    assert meta.model_version.endswith(meta.files[MODEL_FILE][:8])
    assert set(meta.library_versions) >= {"python", "scikit-learn", "ray", "numpy"}

    x = random_transactions(50)
    expected = adjust_to_prior(tiny_forest.predict_proba(x)[:, 1], tiny_dataset.fraud_rate, 0.00172)
    np.testing.assert_allclose(loaded.fraud_probability(x), expected)


def test_existing_artifact_is_not_overwritten_by_default(
    artifact_dir: Path, tiny_forest: RandomForestClassifier, tiny_dataset: Dataset
) -> None:
    with pytest.raises(FileExistsError):
        write_artifact(artifact_dir, tiny_forest, tiny_dataset)


def test_failed_write_leaves_no_artifact_behind(
    tmp_path: Path, tiny_dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(joblib, "dump", crash)
    with pytest.raises(OSError, match="disk full"):
        write_artifact(tmp_path / "model", RandomForestClassifier(), tiny_dataset)
    assert list(tmp_path.iterdir()) == []  # neither the artifact nor its staging directory


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFoundError, match="No model artifact directory"):
        load_artifact(tmp_path / "nope")


def test_missing_metadata(artifact_dir: Path) -> None:
    (artifact_dir / METADATA_FILE).unlink()
    with pytest.raises(ArtifactFileMissingError, match=r"metadata\.json is missing"):
        load_artifact(artifact_dir)


def test_missing_model_file(artifact_dir: Path) -> None:
    (artifact_dir / MODEL_FILE).unlink()
    with pytest.raises(ArtifactFileMissingError, match=r"model\.joblib is listed"):
        load_artifact(artifact_dir)


def test_metadata_that_is_not_json(artifact_dir: Path) -> None:
    (artifact_dir / METADATA_FILE).write_text("{not json")
    with pytest.raises(ArtifactMetadataError, match="not valid JSON"):
        load_artifact(artifact_dir)


def test_metadata_missing_a_field(artifact_dir: Path) -> None:
    raw = json.loads((artifact_dir / METADATA_FILE).read_text())
    del raw["threshold"]
    (artifact_dir / METADATA_FILE).write_text(json.dumps(raw))
    with pytest.raises(ArtifactMetadataError, match="threshold"):
        load_artifact(artifact_dir)


def test_unsupported_format_version(artifact_dir: Path) -> None:
    edit_metadata(artifact_dir, format_version=99)
    with pytest.raises(UnsupportedArtifactVersionError, match="format_version 99"):
        load_artifact(artifact_dir)


def test_hash_mismatch_is_caught_before_unpickling(
    artifact_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (artifact_dir / MODEL_FILE).open("ab") as handle:
        handle.write(b"tampered")
    unpickled = []
    monkeypatch.setattr(joblib, "load", lambda *a, **k: unpickled.append(a))
    with pytest.raises(ArtifactHashMismatchError, match=r"model\.joblib has sha256"):
        load_artifact(artifact_dir)
    assert unpickled == []


def test_feature_list_that_differs_from_the_contract(artifact_dir: Path) -> None:
    edit_metadata(artifact_dir, features=[*FEATURE_NAMES[:-1], "Time"])
    with pytest.raises(FeatureMismatchError, match=r"missing \['Amount'\], unexpected \['Time'\]"):
        load_artifact(artifact_dir)


def test_feature_order_that_differs_from_the_contract(artifact_dir: Path) -> None:
    edit_metadata(artifact_dir, features=list(reversed(FEATURE_NAMES)))
    with pytest.raises(FeatureMismatchError, match="order"):
        load_artifact(artifact_dir)


def test_model_trained_on_other_features(tmp_path: Path, tiny_dataset: Dataset) -> None:
    narrow = RandomForestClassifier(n_estimators=2, random_state=0).fit(
        tiny_dataset.features[:, :10], tiny_dataset.labels
    )
    write_artifact(tmp_path / "model", narrow, tiny_dataset)
    with pytest.raises(FeatureMismatchError, match="expecting 10 features"):
        load_artifact(tmp_path / "model")


def test_file_names_cannot_escape_the_artifact(artifact_dir: Path) -> None:
    edit_metadata(artifact_dir, files={MODEL_FILE: "0" * 64, "../secret": "0" * 64})
    with pytest.raises(ArtifactMetadataError, match="not a plain file name"):
        load_artifact(artifact_dir)
