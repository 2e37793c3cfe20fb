import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from ray import serve

from fraud_model.features import FEATURE_NAMES
from serve_app.app import AppArgs, build_app
from tests.conftest import PROJECT_ROOT


def as_json(row: np.ndarray) -> dict[str, float]:
    return {name: float(value) for name, value in zip(FEATURE_NAMES, row, strict=True)}


def shipped_config() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "configs" / "serve_config.yaml").read_text())


def shipped_app_args(**overrides: object) -> AppArgs:
    """The args of configs/serve_config.yaml, as Serve would validate them, with overrides."""
    (application,) = shipped_config()["applications"]
    return AppArgs.model_validate(application["args"] | overrides)


@pytest.fixture(scope="session")
def fraud_app(serve_url: str, session_artifact: Path) -> Iterator[str]:
    """The application as the shipped config builds it, on a tiny artifact; yields its base URL."""
    serve.run(
        build_app(shipped_app_args(artifact_uri=str(session_artifact))),
        name="fraud",
        route_prefix="/",
        logging_config=shipped_config()["logging_config"],
    )
    yield serve_url
    serve.delete("fraud")


@pytest.fixture(scope="session")
def client(fraud_app: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fraud_app, timeout=30) as http:
        yield http


def deploy_app(
    name: str, args: dict, model_config: dict | None = None, *, wait: bool = True
) -> str:
    """Apply a Serve config for one more app, as `serve deploy` (and KubeRay) would; returns
    its route prefix. `model_config` is FraudModel's entry in `deployments:`."""
    from ray.serve.context import _get_global_client  # the client `serve deploy` ends up in
    from ray.serve.schema import ServeDeploySchema

    app = {
        "name": name,
        "route_prefix": f"/{name}",
        "import_path": "serve_app.app:build_app",
        "args": args,
        "deployments": [{"name": "FraudModel", **(model_config or {})}],
    }
    config = ServeDeploySchema.model_validate({"applications": [app]})
    _get_global_client().deploy_apps(config, _blocking=wait)
    return f"/{name}"


def wait_for(condition, timeout_s: float = 60, every_s: float = 1):
    """Polls `condition` until it is truthy or the time is up; returns its last result."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(every_s)


def metrics_text() -> str:
    """Ray's Prometheus metrics endpoint on the test cluster's node."""
    import ray

    port = ray._private.worker._global_node.metrics_export_port
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text


def metric_value(name: str, **tags: str) -> float:
    """The sum of a metric's samples whose labels include `tags` (0 if none is exported yet)."""
    wanted = [f'{key}="{value}"' for key, value in tags.items()]
    total = 0.0
    for line in metrics_text().splitlines():
        if line.startswith(f"{name}{{") and all(tag in line for tag in wanted):
            total += float(line.rsplit(" ", 1)[1])
    return total


def replica_names(app: str, deployment: str = "FraudModel") -> set[str]:
    import ray

    actors = ray.util.list_named_actors(all_namespaces=True)
    return {actor["name"] for actor in actors if f"{app}#{deployment}" in actor["name"]}
