"""Fixtures of the Serve tier: the application on a tiny artifact, and a client for it."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ray import serve

from serve_app.app import build_graph
from serve_app.model import ModelConfig
from tests.serve.serving import shipped_app_args, shipped_config


@pytest.fixture(scope="session")
def serve_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the `fraud_app` replicas write their logs."""
    return tmp_path_factory.mktemp("serve-logs")


@pytest.fixture(scope="session")
def serve_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the `fraud_app` (and the challenger tests' app) keep their decision ledger."""
    return tmp_path_factory.mktemp("ledger")


@pytest.fixture(scope="session")
def fraud_app(
    serve_url: str, session_artifact: Path, serve_logs: Path, serve_ledger: Path
) -> Iterator[str]:
    """The application with the shipped config's args, on a tiny artifact; yields its URL.

    Run from Python (`serve.run`), so that the apps the tests deploy from configs, each of
    which replaces the config-deployed apps before it, leave it running."""
    serve.run(
        build_graph(
            shipped_app_args(ledger=serve_ledger),
            ModelConfig(artifact_uri=str(session_artifact)),
        ),
        name="fraud",
        route_prefix="/",
        # Serve's line per request on, which the shipped config turns off: a user may turn it
        # on, and test_observability checks that nothing logged, that line included, holds a
        # transaction's values (the lines of the requests sent are its proof they were written).
        logging_config=shipped_config()["logging_config"]
        | {"logs_dir": str(serve_logs), "enable_access_log": True},
    )
    yield serve_url
    serve.delete("fraud")


@pytest.fixture(scope="session")
def client(fraud_app: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fraud_app, timeout=30) as http:
        yield http
