"""The app builder and the two config models it reads: the app's args and FraudModel's
user_config (which names the model)."""

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from fraud_model.store import LocalLocation, parse_location
from serve_app.app import AppArgs, build_app
from serve_app.loading import PROJECT_ROOT
from serve_app.model import ModelConfig


def test_unknown_config_args_are_refused() -> None:
    # The model moved to FraudModel's user_config: an old config naming it in args fails loudly.
    with pytest.raises(ValidationError, match="artifact_uri"):
        AppArgs.model_validate({"artifact_uri": "artifacts/default"})


@pytest.mark.parametrize(
    "model",
    [
        {"threshold": 1.5},
        {"max_batch_size": 0},
        {"batch_wait_timeout_s": -1},
        {"x": 1},
        {"artifact_uri": ""},
        {"metadata_sha256": "abc123"},  # not a sha256
        {"metadata_sha256": "A" * 64},  # upper case is not how sha256sum or publish print it
    ],
)
def test_out_of_range_model_config_is_refused(model: dict) -> None:
    with pytest.raises(ValidationError):
        ModelConfig.model_validate(model)


def test_the_default_model_is_the_bundled_one_unpinned() -> None:
    default = ModelConfig()
    assert parse_location(default.artifact_uri, PROJECT_ROOT) == LocalLocation(
        PROJECT_ROOT / "artifacts" / "default"
    )
    assert default.metadata_sha256 is None


def test_shipped_config_tunes_the_model_consistently() -> None:
    config = yaml.safe_load((PROJECT_ROOT / "configs" / "serve_config.yaml").read_text())
    (application,) = config["applications"]
    AppArgs.model_validate(application["args"])
    model = next(d for d in application["deployments"] if d["name"] == "FraudModel")
    tuning = ModelConfig.model_validate(model.get("user_config", {}))
    # Serve caps a batch at max_ongoing_requests: leave room for a second batch to fill.
    assert model["max_ongoing_requests"] >= 2 * tuning.max_batch_size


def test_relative_artifact_paths_are_taken_from_the_project_root(tmp_path: Path) -> None:
    assert (
        parse_location("artifacts/default", PROJECT_ROOT).path == PROJECT_ROOT / "artifacts/default"
    )
    assert parse_location(str(tmp_path), PROJECT_ROOT).path == tmp_path
    assert parse_location(f"file://{tmp_path}", PROJECT_ROOT).path == tmp_path


def test_the_model_deployment_gets_its_model_from_user_config_only() -> None:
    app = build_app(AppArgs())
    # Serve has no public accessor for a bound graph's nodes; the deployments themselves are public.
    ingress = app._bound_deployment
    model = ingress.init_args[0]._bound_deployment
    assert model.name == "FraudModel"
    assert model.init_args == () and model.init_kwargs == {}
    assert model.user_config == ModelConfig().model_dump()
    assert model.max_ongoing_requests == 2 * ModelConfig().max_batch_size
    assert ingress.init_args[1] == AppArgs()
