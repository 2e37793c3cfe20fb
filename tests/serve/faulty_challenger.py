"""A challenger deployment that fails on purpose, for the Serve tests of what a bad challenger
does to the answers (nothing). A module of its own: the replica imports it by name."""

import asyncio
from typing import Any

from ray import serve


@serve.deployment(
    ray_actor_options={"num_cpus": 0},
    # Few slots and a short queue, as a busy challenger would have: the rest is shed at once.
    max_ongoing_requests=2,
    max_queued_requests=2,
)
class FaultyChallenger:
    """Every scoring call raises, or hangs until cancelled: its user_config's `behaviour`,
    changed in place. It describes itself, as a model does."""

    def __init__(self) -> None:
        self.behaviour = "raise"

    def reconfigure(self, config: dict[str, Any]) -> None:
        self.behaviour = config["behaviour"]

    async def score_many(self, rows: Any) -> list[dict[str, Any]]:
        if self.behaviour == "hang":
            await asyncio.sleep(3600)
        raise RuntimeError("the faulty challenger fails on purpose")

    def describe(self) -> dict[str, Any]:
        return {"model_version": "faulty", "behaviour": self.behaviour}
