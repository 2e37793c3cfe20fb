"""The FraudModel deployment: one loaded artifact per replica, scoring requests in batches."""

import asyncio
import logging
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray import serve

from fraud_model.artifact import LoadedArtifact, load_artifact
from fraud_model.engines import EngineName
from fraud_model.features import FEATURE_DTYPE

# Serve writes the "ray.serve" logger tree to the replica logs (with request ids): log under it.
logger = logging.getLogger(f"ray.serve.{__name__}")

DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_BATCH_WAIT_TIMEOUT_S = 0.005


@serve.deployment(ray_actor_options={"num_cpus": 1})
class FraudModel:
    def __init__(
        self,
        artifact_path: str,
        engine: EngineName = "onnx",
        threshold: float | None = None,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        batch_wait_timeout_s: float = DEFAULT_BATCH_WAIT_TIMEOUT_S,
    ) -> None:
        # A bad artifact raises here, so the replica never reports healthy without a model.
        self._artifact: LoadedArtifact | None = load_artifact(
            Path(artifact_path), engine=engine, threads=replica_cpus()
        )
        metadata = self._artifact.metadata
        self._threshold = metadata.threshold if threshold is None else threshold
        self.score.set_max_batch_size(max_batch_size)
        self.score.set_batch_wait_timeout_s(batch_wait_timeout_s)
        logger.info(
            "Loaded model %s from %s with the %s engine (threshold %.6f, batches of up to %d)",
            metadata.model_version,
            artifact_path,
            engine,
            self._threshold,
            max_batch_size,
        )

    @serve.batch(
        max_batch_size=DEFAULT_MAX_BATCH_SIZE, batch_wait_timeout_s=DEFAULT_BATCH_WAIT_TIMEOUT_S
    )
    async def score(self, rows: list[list[float]]) -> list[dict[str, Any]]:
        """Score a batch of feature rows (contract order) in one vectorised call."""
        # Tree traversal is CPU-bound: run it off the event loop so the replica keeps
        # accepting requests (and filling the next batch) meanwhile.
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
