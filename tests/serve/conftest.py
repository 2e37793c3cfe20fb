from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from ray import serve

from serve_app.app import AppArgs, build_app
from tests.conftest import PROJECT_ROOT


def shipped_app_args(**overrides: object) -> AppArgs:
    """The args of configs/serve_config.yaml, as Serve would validate them, with overrides."""
    config = yaml.safe_load((PROJECT_ROOT / "configs" / "serve_config.yaml").read_text())
    (application,) = config["applications"]
    return AppArgs.model_validate(application["args"] | overrides)


@pytest.fixture(scope="session")
def fraud_app(serve_url: str, session_artifact: Path) -> Iterator[str]:
    """The application as the shipped config builds it, on a tiny artifact; yields its base URL."""
    serve.run(
        build_app(shipped_app_args(artifact_path=str(session_artifact))),
        name="fraud",
        route_prefix="/",
    )
    yield serve_url
    serve.delete("fraud")


@pytest.fixture(scope="session")
def client(fraud_app: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fraud_app, timeout=30) as http:
        yield http
