"""The service's graph with a model that does no work: what Ray Serve itself costs per request.

Same Ingress, same handle calls and batching; only the forest is replaced by a constant.
"""

from typing import Any

from ray import serve
from ray.serve import Application

from serve_app.app import deployment
from serve_app.config import AppArgs
from serve_app.ingress import Ingress
from serve_app.model import DEFAULT_BATCH_WAIT_TIMEOUT_S, DEFAULT_MAX_BATCH_SIZE
from serve_app.schemas import FeatureRows

NOOP_ANSWER = {
    "fraud_probability": 0.0,
    "is_fraud": False,
    "threshold": 0.5,
    "model_version": "noop",
}


@serve.deployment(
    ray_actor_options={"num_cpus": 1}, max_ongoing_requests=2 * DEFAULT_MAX_BATCH_SIZE
)
class NoopModel:
    @serve.batch(
        max_batch_size=DEFAULT_MAX_BATCH_SIZE, batch_wait_timeout_s=DEFAULT_BATCH_WAIT_TIMEOUT_S
    )
    async def score_many(self, requests: list[FeatureRows]) -> list[list[dict[str, Any]]]:
        return [[NOOP_ANSWER] * len(rows) for rows in requests]


def build_noop_app(args: AppArgs) -> Application:
    """The same Ingress, with the same args as the shipped config gives it, on the no-op model."""
    return deployment(Ingress).bind(deployment(NoopModel).bind(), args)
