"""The app builder validates its config args and the artifact before anything is deployed."""

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from fraud_model.artifact import ArtifactHashMismatchError, ArtifactNotFoundError
from serve_app.app import AppArgs, build_app
from serve_app.loading import PROJECT_ROOT, resolve_local
from serve_app.model import ModelTuning


def test_unknown_config_args_are_refused() -> None:
    with pytest.raises(ValidationError, match="artifact_path"):
        AppArgs.model_validate({"artifact_path": "artifacts/default"})


def test_remote_artifacts_are_left_to_the_replicas_to_verify() -> None:
    app = build_app(AppArgs(artifact_uri="s3://models-bucket/fraud/v7"))
    model = app._bound_deployment.init_args[0]._bound_deployment
    assert model.init_kwargs["artifact_uri"] == "s3://models-bucket/fraud/v7"


@pytest.mark.parametrize(
    "tuning", [{"threshold": 1.5}, {"max_batch_size": 0}, {"batch_wait_timeout_s": -1}, {"x": 1}]
)
def test_out_of_range_tuning_is_refused(tuning: dict) -> None:
    with pytest.raises(ValidationError):
        ModelTuning.model_validate(tuning)


def test_shipped_config_tunes_the_model_consistently() -> None:
    config = yaml.safe_load((PROJECT_ROOT / "configs" / "serve_config.yaml").read_text())
    (application,) = config["applications"]
    AppArgs.model_validate(application["args"])
    model = next(d for d in application["deployments"] if d["name"] == "FraudModel")
    tuning = ModelTuning.model_validate(model["user_config"])
    # Serve caps a batch at max_ongoing_requests: leave room for a second batch to fill.
    assert model["max_ongoing_requests"] >= 2 * tuning.max_batch_size


def test_relative_artifact_paths_are_taken_from_the_project_root(tmp_path: Path) -> None:
    assert resolve_local("artifacts/default") == PROJECT_ROOT / "artifacts" / "default"
    assert resolve_local(str(tmp_path)) == tmp_path
    assert resolve_local(f"file://{tmp_path}") == tmp_path


def test_missing_artifact_fails_the_build(tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFoundError, match="No model artifact directory"):
        build_app(AppArgs(artifact_uri=str(tmp_path / "missing")))


def test_corrupt_artifact_fails_the_build(artifact_dir: Path) -> None:
    (artifact_dir / "model.joblib").write_bytes(b"corrupt")
    with pytest.raises(ArtifactHashMismatchError):
        build_app(AppArgs(artifact_uri=str(artifact_dir)))


def test_model_replicas_hold_two_default_batches(artifact_dir: Path) -> None:
    app = build_app(AppArgs(artifact_uri=str(artifact_dir)))
    # Serve has no public accessor for a bound graph's nodes; the deployments themselves are public.
    model = app._bound_deployment.init_args[0]._bound_deployment
    assert model.name == "FraudModel"
    assert model.max_ongoing_requests == 2 * ModelTuning().max_batch_size
    assert model.user_config == ModelTuning().model_dump()
