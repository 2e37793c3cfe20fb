"""How the FraudModel replica groups requests into vectorised model calls, without Ray: a few
rows that find no batch under way are scored at once; rows that arrive while a batch is scored
join the next one; a configured wait for company sends every request through the batch queue.
Whichever way, each request gets its own rows' answers."""

import asyncio
import threading
import types
from pathlib import Path

import numpy as np
import pytest

from fraud_model.artifact import load_artifact
from serve_app import model
from serve_app.model import INLINE_MAX_ROWS, FraudModel
from tests.helpers import random_transactions
from tests.unit.test_challenger_replica import Recorder

BIG_CALL_STARTED = threading.Event()
BIG_CALL_RELEASED = threading.Event()


@pytest.fixture
def replica_and_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[object, list[int]]:
    """A FraudModel replica as Serve would construct it, and the row count of each vectorised
    model call it makes. A call of more than INLINE_MAX_ROWS rows (scored in a worker thread)
    holds on until BIG_CALL_RELEASED is set."""
    from ray import serve
    from ray.serve import metrics

    for kind in ("Counter", "Gauge", "Histogram"):
        monkeypatch.setattr(metrics, kind, Recorder)
    context = types.SimpleNamespace(
        deployment="FraudModel", _deployment_config=types.SimpleNamespace(max_ongoing_requests=64)
    )
    monkeypatch.setattr(serve, "get_replica_context", lambda: context)
    monkeypatch.setattr(model, "replica_cpus", lambda: 1)  # Ray's runtime context would start Ray
    calls: list[int] = []
    scored = model.predictions

    def counted(serving: model.ServingModel, rows: model.FeatureRows) -> list[model.Answer]:
        calls.append(len(rows))
        if len(rows) > INLINE_MAX_ROWS:
            BIG_CALL_STARTED.set()
            assert BIG_CALL_RELEASED.wait(timeout=30)
        return scored(serving, rows)

    monkeypatch.setattr(model, "predictions", counted)
    return FraudModel.func_or_class(role="champion"), calls


def test_requests_are_scored_at_once_or_batched_and_each_gets_its_own_answers(
    replica_and_calls: tuple[object, list[int]], artifact_dir: Path
) -> None:
    # One scenario, one event loop: @serve.batch keeps its queue on the first event loop it ran
    # in, one per process.
    replica, calls = replica_and_calls
    artifact = load_artifact(artifact_dir)
    rows = random_transactions(3 * INLINE_MAX_ROWS, seed=5)
    rows[::7, 13] -= 4.0
    expected = artifact.fraud_probability(rows).tolist()
    small = [rows[i : i + 1].tolist() for i in range(4)]
    big = rows[4 : 4 + 2 * INLINE_MAX_ROWS].tolist()

    def probabilities(answers: list[model.Answer]) -> list[float]:
        return [answer["fraud_probability"] for answer in answers]

    async def scenario() -> None:
        await replica.reconfigure({"artifact_uri": str(artifact_dir)})

        # No batch under way: each small request is scored as it comes, even together.
        answers = await asyncio.gather(*(replica.score_many(one) for one in small[:2]))
        assert calls == [1, 1]
        assert [probabilities(a) for a in answers] == [expected[0:1], expected[1:2]]

        # A big request goes to the batch queue and is scored in a thread; the small ones that
        # arrive meanwhile wait for it and then leave together, in one call.
        calls.clear()
        scoring_big = asyncio.ensure_future(replica.score_many(big))
        assert await asyncio.to_thread(BIG_CALL_STARTED.wait, 30)
        scoring_small = [asyncio.ensure_future(replica.score_many(one)) for one in small[2:]]
        await asyncio.sleep(0)  # both are in the batch queue
        BIG_CALL_RELEASED.set()
        answers = await asyncio.gather(*scoring_small)
        assert probabilities(await scoring_big) == expected[4 : 4 + len(big)]
        assert calls == [len(big), 2]
        assert [probabilities(a) for a in answers] == [expected[2:3], expected[3:4]]

        # A configured wait for company: every request goes through the batch queue.
        calls.clear()
        await replica.reconfigure({"artifact_uri": str(artifact_dir), "batch_wait_timeout_s": 0.05})
        answers = await asyncio.gather(*(replica.score_many(one) for one in small[:2]))
        assert calls == [2]
        assert [probabilities(a) for a in answers] == [expected[0:1], expected[1:2]]

    asyncio.run(scenario())
    assert np.isfinite(expected).all()
