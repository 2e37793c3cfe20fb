import json
import pickle
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from fraud_model.artifact import (
    METADATA_FILE,
    ArtifactFileMissingError,
    ArtifactHashMismatchError,
    ArtifactMetadataError,
    ArtifactNotFoundError,
    ArtifactParityError,
    ArtifactPinMismatchError,
    FeatureMismatchError,
    UnsupportedArtifactVersionError,
    load_artifact,
    sha256_file,
)
from fraud_model.decision import ALERT_CURVE_FILE, AlertCurve, DecisionRule
from fraud_model.explain import TREES_FILE
from fraud_model.features import FEATURE_NAMES
from fraud_model.metadata import ScoreBins
from fraud_model.prior import adjust_to_prior
from tests.helpers import random_transactions, write_artifact
from training.data import Dataset
from training.export import forest_to_onnx
from training.save import MODEL_FILES, PROBE_FILE, save_artifact

ONNX, JOBLIB = MODEL_FILES["onnx"], MODEL_FILES["sklearn"]

# Refused before the drift reference matters.
ANY_BINS = ScoreBins(edges=[0.5], shares=[0.5, 0.5])


def edit_metadata(artifact: Path, **changes: object) -> None:
    path = artifact / METADATA_FILE
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


def rehash(artifact: Path) -> None:
    """Re-sign the files after a test changed one: only the content is wrong, not the hashes."""
    files = {name: sha256_file(artifact / name) for name in json.loads(
        (artifact / METADATA_FILE).read_text())["files"]}  # fmt: skip
    edit_metadata(artifact, files=files)


def test_round_trip_keeps_metadata_and_the_engine_scores_as_the_forest(
    artifact_dir: Path, tiny_forest: RandomForestClassifier, tiny_dataset: Dataset
) -> None:
    x = random_transactions(300)
    expected = adjust_to_prior(tiny_forest.predict_proba(x)[:, 1], tiny_dataset.fraud_rate, 0.00172)
    loaded = load_artifact(artifact_dir)
    assert loaded.engine.name == "onnx"
    np.testing.assert_allclose(loaded.fraud_probability(x), expected, rtol=1e-5, atol=1e-7)
    # The joblib copy is the same forest, for notebooks; serving never reads it.
    np.testing.assert_array_equal(
        joblib.load(artifact_dir / JOBLIB).predict_proba(x), tiny_forest.predict_proba(x)
    )
    assert loaded.metadata_sha256 == sha256_file(artifact_dir / METADATA_FILE)

    meta = loaded.metadata
    assert meta.format_version == 4
    assert meta.features == list(FEATURE_NAMES)
    assert set(meta.files) == {ONNX, JOBLIB, PROBE_FILE, TREES_FILE}
    assert len(meta.score_bins.shares) == len(meta.score_bins.edges) + 1
    assert meta.files[ONNX] == sha256_file(artifact_dir / ONNX)
    assert meta.model_version.endswith(meta.files[ONNX][:8])
    assert meta.parity.rows == 200 and meta.parity.max_abs_diff <= 1e-5
    assert meta.data.rows == 2_000 and meta.data.fraud_count == 100
    assert set(meta.library_versions) >= {"python", "scikit-learn", "onnxruntime", "ray"}


def test_loading_never_unpickles(artifact_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("unpickled")

    monkeypatch.setattr(joblib, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    loaded = load_artifact(artifact_dir)
    assert loaded.fraud_probability(random_transactions(3)).shape == (3,)


def test_a_pinned_artifact_loads_and_any_other_is_refused_before_its_files_are_read(
    artifact_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pin = sha256_file(artifact_dir / METADATA_FILE)
    assert load_artifact(artifact_dir, metadata_sha256=pin).metadata_sha256 == pin

    edit_metadata(artifact_dir, threshold=0.9)  # same files, another decision rule
    hashed = []
    monkeypatch.setattr("fraud_model.artifact.sha256_file", lambda path: hashed.append(path))
    with pytest.raises(ArtifactPinMismatchError, match=f"the config pins {pin}"):
        load_artifact(artifact_dir, metadata_sha256=pin)
    assert hashed == []  # refused on metadata.json alone


def test_existing_artifact_is_not_overwritten_by_default(
    artifact_dir: Path, tiny_forest: RandomForestClassifier, tiny_dataset: Dataset
) -> None:
    with pytest.raises(FileExistsError):
        write_artifact(artifact_dir, tiny_forest, tiny_dataset)


def test_failed_write_leaves_no_artifact_behind(
    tmp_path: Path,
    tiny_forest: RandomForestClassifier,
    tiny_dataset: Dataset,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(joblib, "dump", crash)
    with pytest.raises(OSError, match="disk full"):
        write_artifact(tmp_path / "model", tiny_forest, tiny_dataset)
    assert list(tmp_path.iterdir()) == []  # neither the artifact nor its staging directory


def test_export_that_disagrees_with_sklearn_is_not_written(
    tmp_path: Path, tiny_forest: RandomForestClassifier, tiny_dataset: Dataset
) -> None:
    other = RandomForestClassifier(n_estimators=5, max_depth=6, random_state=1)
    other.fit(tiny_dataset.features, tiny_dataset.labels)
    from fraud_model.metadata import Calibration

    with pytest.raises(ArtifactParityError, match="ONNX export differs from sklearn"):
        save_artifact(
            tmp_path / "model", tiny_forest, forest_to_onnx(other), tiny_dataset.features[:100],
            threshold=0.5, threshold_strategy="test",
            calibration=Calibration(training_prior=0.05, production_prior=0.00172),
            training_params={}, data=tiny_dataset.fingerprint, metrics={}, score_bins=ANY_BINS,
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_engine_that_drifted_from_the_recorded_scores_is_refused(artifact_dir: Path) -> None:
    with np.load(artifact_dir / PROBE_FILE) as probe:
        features, scores = probe["features"], probe["sklearn_scores"]
    np.savez(artifact_dir / PROBE_FILE, features=features, sklearn_scores=scores + 0.01)
    rehash(artifact_dir)
    with pytest.raises(ArtifactParityError, match="onnx engine scores the probe rows"):
        load_artifact(artifact_dir)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFoundError, match="No model artifact directory"):
        load_artifact(tmp_path / "nope")


def test_missing_metadata(artifact_dir: Path) -> None:
    (artifact_dir / METADATA_FILE).unlink()
    with pytest.raises(ArtifactFileMissingError, match=r"metadata\.json is missing"):
        load_artifact(artifact_dir)


@pytest.mark.parametrize("name", [ONNX, JOBLIB, PROBE_FILE, TREES_FILE])
def test_missing_file(artifact_dir: Path, name: str) -> None:
    (artifact_dir / name).unlink()
    with pytest.raises(ArtifactFileMissingError, match=f"{name} is listed"):
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
    edit_metadata(artifact_dir, format_version=1)
    with pytest.raises(UnsupportedArtifactVersionError, match="format_version 1"):
        load_artifact(artifact_dir)


@pytest.mark.parametrize("name", [ONNX, JOBLIB])
def test_hash_mismatch_is_caught_before_any_model_is_read(
    artifact_dir: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (artifact_dir / name).open("ab") as handle:
        handle.write(b"tampered")
    opened = []
    monkeypatch.setattr("fraud_model.artifact.OnnxEngine", lambda *a, **k: opened.append(a))
    with pytest.raises(ArtifactHashMismatchError, match=f"{name} has sha256"):
        load_artifact(artifact_dir)
    assert opened == []


def test_corrupt_onnx_file_with_a_matching_hash(artifact_dir: Path) -> None:
    (artifact_dir / ONNX).write_bytes(b"not a protobuf")
    rehash(artifact_dir)
    with pytest.raises(ArtifactMetadataError, match="not a loadable ONNX model"):
        load_artifact(artifact_dir)


def test_feature_list_that_differs_from_the_contract(artifact_dir: Path) -> None:
    edit_metadata(artifact_dir, features=[*FEATURE_NAMES[:-1], "Time"])
    with pytest.raises(FeatureMismatchError, match=r"missing \['Amount'\], unexpected \['Time'\]"):
        load_artifact(artifact_dir)


def test_feature_order_that_differs_from_the_contract(artifact_dir: Path) -> None:
    edit_metadata(artifact_dir, features=list(reversed(FEATURE_NAMES)))
    with pytest.raises(FeatureMismatchError, match="order"):
        load_artifact(artifact_dir)


def test_model_trained_on_other_features_is_not_saved(
    tmp_path: Path, tiny_dataset: Dataset
) -> None:
    narrow = RandomForestClassifier(n_estimators=2, random_state=0).fit(
        tiny_dataset.features[:, :10], tiny_dataset.labels
    )
    with pytest.raises(FeatureMismatchError, match="expects 10 features"):
        write_artifact(tmp_path / "model", narrow, tiny_dataset, score_bins=ANY_BINS)


def test_model_trained_on_other_features_is_not_loaded(
    artifact_dir: Path, tiny_dataset: Dataset
) -> None:
    narrow = RandomForestClassifier(n_estimators=2, random_state=0).fit(
        tiny_dataset.features[:, :10], tiny_dataset.labels
    )
    joblib.dump(narrow, artifact_dir / JOBLIB)
    (artifact_dir / ONNX).write_bytes(forest_to_onnx(narrow))
    rehash(artifact_dir)
    with pytest.raises(FeatureMismatchError, match="cannot score 29-feature rows"):
        load_artifact(artifact_dir)


def test_file_names_cannot_escape_the_artifact(artifact_dir: Path) -> None:
    files = json.loads((artifact_dir / METADATA_FILE).read_text())["files"]
    edit_metadata(artifact_dir, files=files | {"../secret": "0" * 64})
    with pytest.raises(ArtifactMetadataError, match="not a plain name"):
        load_artifact(artifact_dir)


def test_report_files_are_hashed_and_checked_like_the_model(
    tmp_path: Path, tiny_forest: RandomForestClassifier, tiny_dataset: Dataset
) -> None:
    report = {"report.md": b"# Training report\n![ROC](report_roc.png)\n", "report_roc.png": b"png"}
    metadata = write_artifact(
        tmp_path / "model", tiny_forest, tiny_dataset, extra_files=report, report_file="report.md"
    )
    assert metadata.report_file == "report.md"
    for name, content in report.items():
        assert (tmp_path / "model" / name).read_bytes() == content
        assert metadata.files[name] == sha256_file(tmp_path / "model" / name)
    (tmp_path / "model" / "report_roc.png").write_bytes(b"another picture")
    with pytest.raises(ArtifactHashMismatchError, match=r"report_roc\.png has sha256"):
        load_artifact(tmp_path / "model")


def test_a_report_file_without_a_hash_is_refused(artifact_dir: Path) -> None:
    edit_metadata(artifact_dir, report_file="report.md")
    with pytest.raises(ArtifactMetadataError, match=r"\['report.md'\] have no sha256"):
        load_artifact(artifact_dir)


def test_the_trees_file_is_hash_checked_and_explains_the_saved_forest(
    artifact_dir: Path, tiny_forest: RandomForestClassifier
) -> None:
    loaded = load_artifact(artifact_dir)
    rows = random_transactions(50)
    explanation = loaded.load_explainer().raw(rows)
    np.testing.assert_allclose(
        explanation.base + explanation.contributions.sum(axis=1),
        tiny_forest.predict_proba(rows)[:, 1],
        atol=1e-9,
    )
    with (artifact_dir / TREES_FILE).open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ArtifactHashMismatchError, match=f"{TREES_FILE} has sha256"):
        load_artifact(artifact_dir)


CURVE = AlertCurve(
    source="test rows",
    thresholds=[0.9, 0.5, 0.1],
    alerts_per_10k=[0.0, 10.0, 50.0],
    false_positive_rate=[0.0, 0.0005, 0.004],
)


def test_the_alert_curve_is_hash_checked_and_loaded_without_unpickling(
    tmp_path: Path, tiny_forest: RandomForestClassifier, tiny_dataset: Dataset
) -> None:
    rule = DecisionRule(rule="alert_budget", threshold=0.5, alerts_per_10k=10.0)
    write_artifact(tmp_path / "model", tiny_forest, tiny_dataset, alert_curve=CURVE, decision=rule)
    loaded = load_artifact(tmp_path / "model")
    assert loaded.alert_curve == CURVE
    assert loaded.metadata.decision_rule == rule
    assert loaded.metadata.files[ALERT_CURVE_FILE] == sha256_file(
        tmp_path / "model" / ALERT_CURVE_FILE
    )
    (tmp_path / "model" / ALERT_CURVE_FILE).write_text(CURVE.model_copy(
        update={"thresholds": [0.9, 0.5, 0.01]}).model_dump_json())  # fmt: skip
    with pytest.raises(ArtifactHashMismatchError, match=ALERT_CURVE_FILE):
        load_artifact(tmp_path / "model")


def test_an_alert_curve_the_metadata_names_but_does_not_hash_is_refused(
    tmp_path: Path, tiny_forest: RandomForestClassifier, tiny_dataset: Dataset
) -> None:
    write_artifact(tmp_path / "model", tiny_forest, tiny_dataset, alert_curve=CURVE)
    metadata = json.loads((tmp_path / "model" / METADATA_FILE).read_text())
    del metadata["files"][ALERT_CURVE_FILE]
    (tmp_path / "model" / METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(ArtifactMetadataError, match="have no sha256"):
        load_artifact(tmp_path / "model")


def test_an_artifact_of_format_3_still_loads_and_decides_by_its_threshold(
    artifact_dir: Path,
) -> None:
    edit_metadata(artifact_dir, format_version=3)
    loaded = load_artifact(artifact_dir)
    assert loaded.metadata.calibration.method == "prior_shift"
    assert loaded.metadata.decision_rule == DecisionRule(
        rule="fixed_threshold", threshold=loaded.metadata.threshold
    )
    assert loaded.alert_curve is None
