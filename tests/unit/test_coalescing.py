"""The Ingress's coalescing of single transactions, with fake deployment handles (no Ray)."""

import asyncio
import types

import pytest

from serve_app.ingress import COALESCE_MAX_ROWS, ChallengerModelHandle, CoalescingModelHandle


class FakeMethod:
    def __init__(self, call) -> None:
        self.remote = call


class FakeDeployment:
    """Stands in for a DeploymentHandle: `score_many.remote(rows)` answers each row with its
    first feature and this deployment's name, and notes the size of every call."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[int] = []
        self.score_many = FakeMethod(self._score_many)

    async def _score_many(self, rows: list[list[float]]) -> list[dict]:
        self.calls.append(len(rows))
        await asyncio.sleep(0.001)
        return [{"fraud_probability": row[0], "model_version": self.name} for row in rows]


@pytest.fixture(autouse=True)
def replica_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """@serve.batch reads the replica's max_ongoing_requests when its queue starts."""
    from ray import serve

    config = types.SimpleNamespace(max_ongoing_requests=256)
    context = types.SimpleNamespace(_deployment_config=config)
    monkeypatch.setattr(serve, "get_replica_context", lambda: context)


def test_rows_arriving_together_go_as_one_call() -> None:
    model = FakeDeployment("champion")
    handle = CoalescingModelHandle(model)

    async def send() -> list:
        return await asyncio.gather(*(handle.score([float(i)]) for i in range(100)))

    answers = asyncio.run(send())
    assert [answer["fraud_probability"] for answer in answers] == [float(i) for i in range(100)]
    assert sum(model.calls) == 100 and max(model.calls) <= COALESCE_MAX_ROWS
    assert len(model.calls) < 100


def test_two_handles_in_one_process_never_mix_their_rows() -> None:
    # With @serve.batch on the method, both handles shared one queue and every row went to
    # the deployment of whichever handle was called first.
    champion, challenger = FakeDeployment("champion"), FakeDeployment("challenger")
    handles = {
        "champion": CoalescingModelHandle(champion),
        "challenger": CoalescingModelHandle(challenger),
    }

    async def send() -> list[tuple[str, dict]]:
        calls = [
            (name, handle.score([float(i)])) for i in range(40) for name, handle in handles.items()
        ]
        # Bounded: a row scored by the other deployment leaves its own caller waiting.
        answers = await asyncio.wait_for(asyncio.gather(*(call for _, call in calls)), 10)
        return [(name, answer) for (name, _), answer in zip(calls, answers, strict=True)]

    for name, answer in asyncio.run(send()):
        assert answer["model_version"] == name
    assert sum(champion.calls) == 40 and sum(challenger.calls) == 40


class FakeResponse:
    """Stands in for a DeploymentResponse: awaitable once, cancellable."""

    def __init__(self, work) -> None:
        self._work = work
        self.cancelled = False

    def __await__(self):
        return self._work.__await__()

    def cancel(self) -> None:
        self.cancelled = True


class HangingOnce(FakeDeployment):
    """Its first call never answers; the later ones do."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.responses: list[FakeResponse] = []
        self.score_many = FakeMethod(self._respond)

    def _respond(self, rows: list[list[float]]) -> FakeResponse:
        work = asyncio.Event().wait() if not self.responses else self._score_many(rows)
        self.responses.append(FakeResponse(work))
        return self.responses[-1]


def test_a_hung_challenger_call_is_cut_off_cancelled_and_holds_up_no_later_row() -> None:
    challenger = HangingOnce("challenger")
    handle = ChallengerModelHandle(challenger, timeout_s=0.05)

    async def send() -> dict:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(handle.score([1.0]), 5)
        return await asyncio.wait_for(handle.score([2.0]), 5)

    assert asyncio.run(send()) == {"fraud_probability": 2.0, "model_version": "challenger"}
    first, second = challenger.responses
    assert first.cancelled and not second.cancelled
