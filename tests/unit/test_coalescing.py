"""The Ingress's grouping of single rows into model calls (serve_app.coalescing)."""

import asyncio

import pytest

from serve_app.coalescing import CoalescingLimits, RowCoalescer
from serve_app.ingress import ChallengerModelHandle, CoalescingModelHandle

pytestmark = pytest.mark.anyio
# Calls held open by a test's gates never count as stalled, however slow the machine.
NEVER = 3600.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class GatedModel:
    """Answers each call with its rows doubled, once the test opens the call's gate."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.calls: list[list[int]] = []
        self.gates: list[asyncio.Event] = []
        self.fail_on = fail_on

    async def send(self, rows: list[int]) -> list[int]:
        self.calls.append(list(rows))
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        if self.fail_on in rows:
            raise ValueError(f"row {self.fail_on} broke the model")
        return [2 * row for row in rows]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def calls_reach(model: GatedModel, count: int) -> None:
    while len(model.calls) < count:
        await asyncio.sleep(0.001)


async def test_a_lone_row_is_sent_at_once() -> None:
    model = GatedModel()
    coalescer = RowCoalescer(model.send, CoalescingLimits(max_calls_in_flight=1, stall_s=NEVER))
    pending = asyncio.ensure_future(coalescer.submit(7))
    await settle()
    assert model.calls == [[7]]
    model.gates[0].set()
    assert await pending == 14


async def test_rows_that_arrive_while_the_calls_are_out_leave_together_in_order() -> None:
    model = GatedModel()
    coalescer = RowCoalescer(model.send, CoalescingLimits(max_calls_in_flight=2, stall_s=NEVER))
    first = [asyncio.ensure_future(coalescer.submit(row)) for row in (1, 2)]
    await settle()
    assert model.calls == [[1], [2]]  # two calls may be out: both went at once
    rest = [asyncio.ensure_future(coalescer.submit(row)) for row in range(10, 20)]
    await settle()
    assert len(model.calls) == 2  # both slots busy: the ten wait
    model.gates[0].set()
    await settle()
    assert model.calls[2] == list(range(10, 20))
    model.gates[1].set()
    model.gates[2].set()
    assert await asyncio.gather(*first, *rest) == [2, 4] + [2 * row for row in range(10, 20)]


async def test_a_call_takes_at_most_max_rows_per_call() -> None:
    model = GatedModel()
    limits = CoalescingLimits(max_rows_per_call=4, max_calls_in_flight=1, stall_s=NEVER)
    coalescer = RowCoalescer(model.send, limits)
    pending = [asyncio.ensure_future(coalescer.submit(row)) for row in range(9)]
    for _ in range(4):
        await settle()
        if model.gates:
            model.gates[-1].set()
    assert await asyncio.gather(*pending) == [2 * row for row in range(9)]
    assert model.calls == [[0], [1, 2, 3, 4], [5, 6, 7, 8]]


async def test_a_failed_call_fails_only_its_own_rows() -> None:
    model = GatedModel(fail_on=3)
    coalescer = RowCoalescer(model.send, CoalescingLimits(max_calls_in_flight=1, stall_s=NEVER))
    lone = asyncio.ensure_future(coalescer.submit(1))
    await settle()
    together = [asyncio.ensure_future(coalescer.submit(row)) for row in (2, 3)]
    later = asyncio.ensure_future(coalescer.submit(4))
    model.gates[0].set()
    await settle()
    assert model.calls[1] == [2, 3, 4]
    model.gates[1].set()
    assert await lone == 2
    for pending in (*together, later):
        with pytest.raises(ValueError, match="row 3 broke the model"):
            await pending
    # The coalescer goes on after a failure.
    after = asyncio.ensure_future(coalescer.submit(5))
    await settle()
    model.gates[2].set()
    assert await after == 10


async def test_a_row_whose_request_gave_up_is_not_sent() -> None:
    model = GatedModel()
    coalescer = RowCoalescer(model.send, CoalescingLimits(max_calls_in_flight=1, stall_s=NEVER))
    first = asyncio.ensure_future(coalescer.submit(1))
    await settle()
    abandoned = asyncio.ensure_future(coalescer.submit(2))
    kept = asyncio.ensure_future(coalescer.submit(3))
    await settle()
    abandoned.cancel()
    model.gates[0].set()
    await settle()
    assert model.calls == [[1], [3]]
    model.gates[1].set()
    assert await asyncio.gather(first, kept) == [2, 6]


async def test_a_stalled_call_stops_holding_back_the_rows_behind_it() -> None:
    model = GatedModel()
    coalescer = RowCoalescer(model.send, CoalescingLimits(max_calls_in_flight=1, stall_s=0.2))
    stalled = asyncio.ensure_future(coalescer.submit(1))
    await settle()
    behind = asyncio.ensure_future(coalescer.submit(2))
    await asyncio.wait_for(calls_reach(model, 2), timeout=10)
    assert model.calls == [[1], [2]]
    # The stalled call returning gives nothing back twice: the second call still holds the one
    # slot, so a new row waits for it.
    model.gates[0].set()
    assert await stalled == 2
    later = asyncio.ensure_future(coalescer.submit(3))
    await settle()
    assert model.calls == [[1], [2]]
    model.gates[1].set()
    await asyncio.wait_for(calls_reach(model, 3), timeout=10)
    assert model.calls[2] == [3]
    model.gates[2].set()
    assert await asyncio.gather(behind, later) == [4, 6]


async def test_a_wrong_number_of_results_fails_the_call_loudly() -> None:
    async def short(rows: list[int]) -> list[int]:
        return rows[:-1]

    coalescer = RowCoalescer(short)
    with pytest.raises(RuntimeError, match="1 rows sent, 0 results back"):
        await coalescer.submit(1)


# The Ingress's handles around it, with fake deployment handles.


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


def test_rows_arriving_together_go_as_one_call() -> None:
    model = FakeDeployment("champion")
    handle = CoalescingModelHandle(model, 2.0)

    async def send() -> list:
        return await asyncio.gather(*(handle.score([float(i)]) for i in range(100)))

    answers = asyncio.run(send())
    assert [answer["fraud_probability"] for answer in answers] == [float(i) for i in range(100)]
    assert sum(model.calls) == 100 and max(model.calls) <= CoalescingLimits().max_rows_per_call
    assert len(model.calls) < 100


def test_two_handles_in_one_process_never_mix_their_rows() -> None:
    # With @serve.batch on the method, both handles shared one queue and every row went to
    # the deployment of whichever handle was called first.
    champion, challenger = FakeDeployment("champion"), FakeDeployment("challenger")
    handles = {
        "champion": CoalescingModelHandle(champion, 2.0),
        "challenger": CoalescingModelHandle(challenger, 2.0),
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
