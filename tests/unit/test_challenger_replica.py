"""The Challenger deployment's replica (FraudModel's class under the Challenger's name), without
Ray: with no model in its user_config it loads none and says why, and a model that leaves the
config (a promotion) is kept, not refused."""

import asyncio
import types
from pathlib import Path

import pytest

from serve_app import model
from serve_app.config import CHALLENGER
from serve_app.model import NO_CHALLENGER_MODEL, FraudModel

ROW = [0.0] * 29


class Recorder:
    """Stands in for a ray.serve.metrics metric (Ray needs a replica)."""

    def __init__(self, *_: object, **__: object) -> None:
        pass

    def inc(self, *_: object, **__: object) -> None:
        pass

    set = observe = inc


@pytest.fixture
def challenger_replica(monkeypatch: pytest.MonkeyPatch) -> object:
    """A replica of the Challenger deployment, as Serve would construct it."""
    from ray import serve
    from ray.serve import metrics

    for kind in ("Counter", "Gauge", "Histogram"):
        monkeypatch.setattr(metrics, kind, Recorder)
    context = types.SimpleNamespace(
        # Named otherwise on purpose: the replica is told its role, never guesses it by name.
        deployment=f"Second{CHALLENGER}",
        _deployment_config=types.SimpleNamespace(max_ongoing_requests=64),
    )
    monkeypatch.setattr(serve, "get_replica_context", lambda: context)
    monkeypatch.setattr(model, "replica_cpus", lambda: 1)  # Ray's runtime context would start Ray
    return FraudModel.func_or_class(role="challenger")


def test_without_a_model_in_its_config_it_loads_none_and_says_why(
    challenger_replica: object,
) -> None:
    replica = challenger_replica

    async def scenario() -> None:
        await replica.reconfigure({})  # starts: no refusal, no bundled default
        assert replica.describe() == {"model_version": None, "idle": NO_CHALLENGER_MODEL}
        replica.check_health()  # healthy: Serve keeps it
        # What score_many and explain_many check first (score_many itself is not called here:
        # @serve.batch keeps its queue on the first event loop it ran in, one per process).
        with pytest.raises(RuntimeError, match="names no artifact_uri"):
            replica._require_model()

    asyncio.run(scenario())


def test_a_model_that_leaves_the_config_is_kept_until_the_replica_goes(
    challenger_replica: object, artifact_dir: Path
) -> None:
    replica = challenger_replica

    async def scenario() -> None:
        await replica.reconfigure({"artifact_uri": str(artifact_dir)})
        version = replica.describe()["model_version"]
        await replica.reconfigure({})  # promoted: nothing sends to it any more
        assert replica.describe()["model_version"] == version
        assert replica.describe()["last_reload_error"] is None  # not a failed reload
        (answer,) = await replica.score_many([ROW])
        assert answer["model_version"] == version

    asyncio.run(scenario())
