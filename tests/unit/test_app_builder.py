"""The app builder and the config models it reads: the app's args, FraudModel's (and the
Challenger's) user_config, which names the model, and the Ingress's, which names what it does
with the challenger."""

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from fraud_model.store import LocalLocation, parse_location
from k8s.render import production_config
from serve_app.app import (
    CHALLENGER_MAX_QUEUED_REQUESTS,
    AppArgs,
    build_app,
    build_graph,
    challenger_deployment,
)
from serve_app.config import (
    ChallengerAutoscaling,
    ChallengerConfig,
    IngressConfig,
    ModelAutoscaling,
)
from serve_app.ingress import Ingress
from serve_app.loading import PROJECT_ROOT
from serve_app.model import FraudModel, ModelConfig


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


BASE_CONFIG = PROJECT_ROOT / "configs" / "serve_config.yaml"
DEPLOYMENTS = {"FraudModel": FraudModel, "Challenger": challenger_deployment(), "Ingress": Ingress}


def restated_defaults(application: dict, base: dict | None = None) -> list[str]:
    """Keys of a config's application that only repeat the code's own default (or, for an
    overrides file, the value the base config already sets)."""
    base_args = (base or {}).get("args", {})
    restated = [
        f"args.{key}"
        for key, value in application.get("args", {}).items()
        if base_args.get(key, AppArgs.model_fields[key].default) == value
    ]
    for options in application.get("deployments", []):
        name, code = options["name"], DEPLOYMENTS[options["name"]]
        user_config = options.get("user_config", {})
        if name == "Ingress":
            challenger = user_config.get("challenger")
            if "challenger" in user_config and challenger is None:
                restated.append(f"{name}.user_config.challenger")
            restated += [
                f"{name}.user_config.challenger.{key}"
                for key, value in (challenger or {}).items()
                if ChallengerConfig.model_fields[key].default == value
            ]
        else:
            restated += [
                f"{name}.user_config.{key}"
                for key, value in user_config.items()
                if ModelConfig.model_fields[key].default == value
            ]
        autoscaling = ChallengerAutoscaling if name == "Challenger" else ModelAutoscaling
        for key, value in options.get("autoscaling_config", {}).items():
            if autoscaling.model_fields[key].default == value:
                restated.append(f"{name}.autoscaling_config.{key}")
        for key, value in options.items():
            if key not in ("name", "user_config") and getattr(code, key, object()) == value:
                restated.append(f"{name}.{key}")
    return restated


def test_configs_list_only_what_differs_from_the_code_s_defaults() -> None:
    (base,) = yaml.safe_load(BASE_CONFIG.read_text())["applications"]
    assert restated_defaults(base) == []
    overrides = yaml.safe_load((PROJECT_ROOT / "k8s" / "overrides.yaml").read_text())
    (production,) = overrides["applications"]
    assert restated_defaults(production, base) == []


def test_the_restated_defaults_check_finds_a_restated_default() -> None:
    application = {
        "args": {"request_timeout_s": 2.0, "allow_anonymous": True},
        "deployments": [
            {"name": "FraudModel", "user_config": {"max_batch_size": 32, "threshold": 0.2},
             "autoscaling_config": {"max_replicas": 2, "min_replicas": 3},
             "max_queued_requests": 128},
            {"name": "Ingress", "num_replicas": 2, "max_ongoing_requests": 100},
        ],
    }  # fmt: skip
    assert restated_defaults(application, {"args": {"allow_anonymous": True}}) == [
        "args.request_timeout_s",
        "args.allow_anonymous",
        "FraudModel.user_config.max_batch_size",
        "FraudModel.autoscaling_config.max_replicas",
        "FraudModel.max_queued_requests",
        "Ingress.num_replicas",
    ]


def test_the_model_replica_holds_two_default_batches() -> None:
    # Serve caps a batch at max_ongoing_requests: leave room for a second batch to fill.
    assert FraudModel.max_ongoing_requests >= 2 * ModelConfig().max_batch_size


def test_production_autoscaling_is_completed_from_the_code_s_defaults() -> None:
    (application,) = production_config()["applications"]
    model = next(d for d in application["deployments"] if d["name"] == "FraudModel")
    overrides = yaml.safe_load((PROJECT_ROOT / "k8s" / "overrides.yaml").read_text())
    partial = overrides["applications"][0]["deployments"][0]["autoscaling_config"]
    assert model["autoscaling_config"] == ModelAutoscaling().model_dump() | partial
    # Left to Serve, a partial mapping would fall back to Ray's target of 2 ongoing requests.
    assert model["autoscaling_config"]["target_ongoing_requests"] == 16


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
    assert model.init_args == () and model.init_kwargs == {"role": "champion"}
    assert model.user_config == ModelConfig().model_dump()
    assert model.max_ongoing_requests == 2 * ModelConfig().max_batch_size
    assert ingress.init_args[1] == AppArgs()


def test_a_challenger_is_a_second_deployment_of_the_model_class_idle_by_default() -> None:
    ingress = build_app(AppArgs())._bound_deployment
    model, args, challenger = ingress.init_args
    model, challenger = model._bound_deployment, challenger._bound_deployment
    assert args == AppArgs()
    assert challenger.name == "Challenger" and model.name == "FraudModel"
    assert challenger.func_or_class is model.func_or_class
    # Each is told what it is, by its constructor argument, never by its name.
    assert challenger.init_kwargs == {"role": "challenger"}
    assert model.init_kwargs == {"role": "champion"}
    # No model unless the config's Challenger entry names one, and the Ingress sends it nothing:
    # no replica runs (Serve scales it to zero) and nothing changes until a config says so.
    assert challenger.user_config == {}
    assert ingress.user_config == IngressConfig().model_dump()
    assert ingress.user_config == {"challenger": None, "local_scoring": True}
    autoscaling = challenger._deployment_config.autoscaling_config
    assert autoscaling.min_replicas == 0 and autoscaling.initial_replicas in (None, 0)
    # Shed first: its queue is short beside the champion's.
    assert challenger.max_queued_requests == CHALLENGER_MAX_QUEUED_REQUESTS
    assert model.max_queued_requests > CHALLENGER_MAX_QUEUED_REQUESTS
    # Otherwise the champion's options: its own replicas, scaled the same way.
    assert challenger.max_ongoing_requests == model.max_ongoing_requests
    assert autoscaling.max_replicas == model._deployment_config.autoscaling_config.max_replicas


def test_from_python_the_challenger_and_its_use_are_given_with_the_models() -> None:
    challenger_model = ModelConfig(artifact_uri="somewhere/else")
    use = IngressConfig(challenger=ChallengerConfig(share=0.25))
    ingress = build_graph(AppArgs(), ModelConfig(), challenger_model, use)._bound_deployment
    assert ingress.init_args[2]._bound_deployment.user_config == challenger_model.model_dump()
    assert ingress.user_config == use.model_dump()


def test_the_example_challenger_configs_of_the_docs_restate_no_default() -> None:
    text = (PROJECT_ROOT / "docs" / "CHALLENGER.md").read_text()
    examples = [yaml.safe_load(block.split("```", 1)[0]) for block in text.split("```yaml\n")[1:]]
    applications = [e for e in examples if isinstance(e, dict) and "deployments" in e]
    assert len(applications) >= 3  # shadow, watch-and-canary, promoted
    for application in applications:
        assert restated_defaults(application) == []
        for options in application["deployments"]:
            if options["name"] == "Ingress":
                IngressConfig.model_validate(
                    options["user_config"], context={"request_timeout_s": 2.0}
                )
            elif "user_config" in options:
                ModelConfig.model_validate(options["user_config"])


def test_a_production_challenger_gets_the_code_s_autoscaling_defaults_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import k8s.render

    overrides = yaml.safe_load((PROJECT_ROOT / "k8s" / "overrides.yaml").read_text())
    (application,) = overrides["applications"]
    application["deployments"].append(
        {"name": "Challenger", "user_config": {"artifact_uri": "s3://b/fraud/v2",
                                               "metadata_sha256": "0" * 64},
         "autoscaling_config": {"min_replicas": 1}}
    )  # fmt: skip
    ingress_overrides = next(d for d in application["deployments"] if d["name"] == "Ingress")
    ingress_overrides["user_config"] = {"challenger": {"share": 0.1}}
    with_challenger = tmp_path / "overrides.yaml"
    with_challenger.write_text(yaml.safe_dump(overrides))
    monkeypatch.setattr(k8s.render, "OVERRIDES", with_challenger)
    (rendered,) = production_config()["applications"]
    challenger = next(d for d in rendered["deployments"] if d["name"] == "Challenger")
    expected = ChallengerAutoscaling().model_dump() | {"min_replicas": 1}
    assert challenger["autoscaling_config"] == expected
    ingress = next(d for d in rendered["deployments"] if d["name"] == "Ingress")
    assert ingress["max_replicas_per_node"] == 1  # the production options kept
    assert ingress["user_config"] == {"challenger": {"share": 0.1}}
