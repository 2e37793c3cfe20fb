"""The FraudModel deployment: one loaded artifact per replica, scoring requests in batches."""

import asyncio
import logging
from pathlib import Path
from typing import Any

import numpy as np
import ray
from pydantic import BaseModel, ConfigDict, Field
from ray import serve

from fraud_model.artifact import LoadedArtifact, load_artifact
from fraud_model.engines import EngineName
from fraud_model.features import FEATURE_DTYPE

# Serve writes the "ray.serve" logger tree to the replica logs (with request ids): log under it.
logger = logging.getLogger(f"ray.serve.{__name__}")

DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_BATCH_WAIT_TIMEOUT_S = 0.0


class ModelTuning(BaseModel):
    """FraudModel's `user_config`: applied by reconfigure(), so changing it restarts nothing."""

    model_config = ConfigDict(extra="forbid")

    threshold: float | None = Field(
        None, ge=0, le=1, description="Decision threshold; null = the artifact's own."
    )
    max_batch_size: int = Field(DEFAULT_MAX_BATCH_SIZE, ge=1, le=4096)
    batch_wait_timeout_s: float = Field(DEFAULT_BATCH_WAIT_TIMEOUT_S, ge=0, le=1)


@serve.deployment(ray_actor_options={"num_cpus": 1})
class FraudModel:
    def __init__(self, artifact_path: str, engine: EngineName = "onnx") -> None:
        # A bad artifact raises here, so the replica never reports healthy without a model.
        self._artifact: LoadedArtifact | None = load_artifact(
            Path(artifact_path), engine=engine, threads=replica_cpus()
        )
        self._threshold = self._artifact.metadata.threshold
        logger.info(
            "Loaded model %s from %s with the %s engine",
            self._artifact.metadata.model_version,
            artifact_path,
            engine,
        )

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        tuning = ModelTuning.model_validate(user_config)
        artifact = self._require_artifact()
        self._threshold = (
            artifact.metadata.threshold if tuning.threshold is None else tuning.threshold
        )
        self.score.set_max_batch_size(tuning.max_batch_size)
        self.score.set_batch_wait_timeout_s(tuning.batch_wait_timeout_s)
        logger.info(
            "Threshold %.6f, batches of up to %d requests waiting up to %.1f ms",
            self._threshold,
            tuning.max_batch_size,
            tuning.batch_wait_timeout_s * 1000,
        )

    @serve.batch(
        max_batch_size=DEFAULT_MAX_BATCH_SIZE, batch_wait_timeout_s=DEFAULT_BATCH_WAIT_TIMEOUT_S
    )
    async def score(self, rows: list[list[float]]) -> list[dict[str, Any]]:
        """Score a batch of feature rows (contract order) in one vectorised call."""
        # Tree traversal is CPU-bound: run it off the event loop so the replica keeps
        # accepting requests (and filling the next batch) meanwhile.
        return await asyncio.to_thread(predictions, self._require_artifact(), self._threshold, rows)

    async def score_many(self, rows: list[list[float]]) -> list[dict[str, Any]]:
        """Score the rows of one batch request together, in one vectorised call."""
        return await asyncio.to_thread(predictions, self._require_artifact(), self._threshold, rows)

    def check_health(self) -> None:
        self._require_artifact()

    def _require_artifact(self) -> LoadedArtifact:
        if self._artifact is None:
            raise RuntimeError("FraudModel replica has no model loaded")
        return self._artifact


def predictions(
    artifact: LoadedArtifact, threshold: float, rows: list[list[float]]
) -> list[dict[str, Any]]:
    """The API's answer for each feature row, from one vectorised model call."""
    probabilities = artifact.fraud_probability(np.asarray(rows, dtype=FEATURE_DTYPE))
    version = artifact.metadata.model_version
    return [
        {
            "fraud_probability": float(p),
            "is_fraud": bool(p >= threshold),
            "threshold": threshold,
            "model_version": version,
        }
        for p in probabilities
    ]


def replica_cpus() -> int:
    """CPUs Ray reserved for this replica: the engine's thread budget."""
    return max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
