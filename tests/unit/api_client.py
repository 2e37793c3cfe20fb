"""The API around a real model scored in-process (no Ray): for the unit tests of the HTTP layer."""

from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from fraud_model.artifact import load_artifact
from fraud_model.features import FEATURE_NAMES
from ledger.settings import LedgerSettings
from ledger.writer import LedgerWriter
from serve_app.api import create_api
from serve_app.config import AppArgs
from serve_app.decision_log import DecisionLog
from serve_app.model import (
    ServingModel,
    column_scores,
    columnar_answer,
    explained_predictions,
    predictions,
)
from serve_app.refusals import Refusals
from serve_app.schemas import Answer, ColumnarAnswer, FeatureRows
from serve_app.settings import ServiceSettings


class InProcessModel:
    """Stands in for the FraudModel deployment (serve_app.scoring.ModelHandle), scored here."""

    def __init__(self, artifact_dir: Path) -> None:
        artifact = load_artifact(artifact_dir)
        self.serving = ServingModel(
            str(artifact_dir),
            None,
            artifact,
            artifact.metadata.threshold,
            artifact.load_explainer(),
        )

    async def score(self, row: list[float]) -> Answer:
        return predictions(self.serving, [row])[0]

    async def score_many(self, rows: FeatureRows) -> list[Answer]:
        return predictions(self.serving, rows)

    async def score_columns(self, rows: np.ndarray) -> ColumnarAnswer:
        return columnar_answer(self.serving, *column_scores(self.serving, rows))

    async def explain_many(self, rows: FeatureRows, top_k: int) -> list[Answer]:
        return explained_predictions(self.serving, rows, top_k)

    async def describe(self) -> dict[str, Any]:
        return {"model_version": self.serving.artifact.metadata.model_version}


TRANSACTION = {name: 0.5 for name in FEATURE_NAMES}


def client(
    artifact_dir: Path,
    args: AppArgs | None = None,
    decisions: DecisionLog | None = None,
    **settings: object,
) -> TestClient:
    """The API on a real model; anonymous unless `args` or keys in `settings` say otherwise;
    decisions and refusals recorded in `decisions` if given."""
    args = args if args is not None else AppArgs(allow_anonymous=True)
    api = create_api(
        InProcessModel(artifact_dir),
        ServiceSettings(**settings),
        args,
        refusals=Refusals(decisions=decisions),
        decisions=decisions,
    )
    return TestClient(api)


def ledger_in(directory: Path, **settings: object) -> DecisionLog:
    """A decision log writing a ledger in `directory` (call `.writer.flush()` before reading)."""
    return DecisionLog(LedgerWriter(LedgerSettings(location=str(directory), **settings)))
