"""The API around a real model scored in-process (no Ray): for the unit tests of the HTTP layer."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from fraud_model.artifact import load_artifact
from fraud_model.features import FEATURE_NAMES
from serve_app.api import create_api
from serve_app.config import AppArgs
from serve_app.model import ServingModel, explained_predictions, predictions
from serve_app.settings import ServiceSettings


class Remote:
    """`.remote(...)` of one handle method, run right here."""

    def __init__(self, method: Callable[..., Any]) -> None:
        self._method = method

    async def remote(self, *args: Any) -> Any:
        return self._method(*args)


class InProcessModel:
    """Stands in for the FraudModel handle: the same `<method>.remote(...)` calls, run here."""

    def __init__(self, artifact_dir: Path) -> None:
        artifact = load_artifact(artifact_dir)
        self.serving = ServingModel(
            str(artifact_dir),
            None,
            artifact,
            artifact.metadata.threshold,
            artifact.load_explainer(),
        )
        self.score = Remote(lambda row: predictions(self.serving, [row])[0])
        self.score_many = Remote(lambda rows: predictions(self.serving, rows))
        self.explain_many = Remote(
            lambda rows, top_k: explained_predictions(self.serving, rows, top_k)
        )
        self.describe = Remote(lambda: {"model_version": artifact.metadata.model_version})


TRANSACTION = {name: 0.5 for name in FEATURE_NAMES}


def client(artifact_dir: Path, args: AppArgs | None = None, **settings: object) -> TestClient:
    """The API on a real model; anonymous unless `args` or keys in `settings` say otherwise."""
    args = args if args is not None else AppArgs(allow_anonymous=True)
    return TestClient(create_api(InProcessModel(artifact_dir), ServiceSettings(**settings), args))
