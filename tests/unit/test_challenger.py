"""The ShadowingModelHandle with fake async models (no Ray): the champion's answers untouched in
shadow mode whatever the challenger does, the challenger's load shed, canary shares and fallback,
and what is counted, sent to Prometheus and logged."""

import asyncio
import math
import random
import time
from pathlib import Path
from typing import Any

import pytest
from ray.serve.exceptions import BackPressureError

from serve_app.access import ANONYMOUS
from serve_app.challenger import OUTCOMES, ChallengerRecorder, ShadowingModelHandle
from serve_app.config import ChallengerConfig, IngressConfig
from serve_app.data_plane import DataPlane
from serve_app.decision_log import DecisionLog
from serve_app.request_context import Request
from serve_app.schemas import batch_request_model
from tests.helpers import ledger_rows
from tests.unit.api_client import TRANSACTION, ledger_in
from tests.unit.recorded_metrics import RecordedMetric


class FakeModel:
    """A ModelHandle whose score for a row is `row[0] * factor`; `behaviour` makes its scoring
    calls raise, hang (until cancelled), or fail as a full Serve queue does."""

    def __init__(
        self, version: str, threshold: float = 0.5, factor: float = 1.0, behaviour: str = "ok"
    ) -> None:
        self.version, self.threshold, self.factor = version, threshold, factor
        self.behaviour = behaviour
        self.rows_scored = 0
        self.cancelled = 0

    def _answer(self, row: list[float]) -> dict[str, Any]:
        score = row[0] * self.factor
        return {
            "fraud_probability": score,
            "is_fraud": score >= self.threshold,
            "threshold": self.threshold,
            "model_version": self.version,
        }

    async def _behave(self) -> None:
        await asyncio.sleep(0)  # a real call always yields to the event loop
        if self.behaviour == "raise":
            raise RuntimeError("the challenger broke")
        if self.behaviour == "overloaded":
            raise BackPressureError(num_queued_requests=8, max_queued_requests=8)
        if self.behaviour == "hang":
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise

    async def score(self, row: list[float]) -> dict[str, Any]:
        await self._behave()
        self.rows_scored += 1
        return self._answer(row)

    async def score_many(self, rows: list[list[float]]) -> list[dict[str, Any]]:
        await self._behave()
        self.rows_scored += len(rows)
        return [self._answer(row) for row in rows]

    async def explain_many(self, rows: list[list[float]], top_k: int) -> list[dict[str, Any]]:
        return [self._answer(row) | {"explanation": {"top_k": top_k}} for row in rows]

    async def describe(self) -> dict[str, Any]:
        return {"model_version": self.version}


def shadowing(
    champion: FakeModel,
    challenger: FakeModel,
    recorder: ChallengerRecorder | None = None,
    seed: int = 0,
    decisions: DecisionLog | None = None,
    **args: Any,
) -> ShadowingModelHandle:
    handle = ShadowingModelHandle(
        champion,
        challenger,
        recorder,
        rng=random.Random(seed),
        decisions=decisions,
        check_ready=False,  # up from the start: the readiness check has tests of its own
    )
    handle.configure(ChallengerConfig.model_validate({"share": 1.0, "timeout_s": 0.05} | args))
    return handle


async def settled(handle: ShadowingModelHandle, timeout_s: float = 5) -> dict[str, Any]:
    """The handle's description once no challenger call is in flight (polled, never slept on)."""
    deadline = time.monotonic() + timeout_s
    while True:
        info = await handle.describe_challenger()
        if info["calls"]["in_flight"] == 0 or time.monotonic() > deadline:
            return info
        await asyncio.sleep(0.005)


ROWS = [[0.9], [0.6], [0.4], [0.1], [0.35], [0.0001], [0.7], [0.2]]


def test_in_shadow_the_client_gets_the_champion_s_own_answers() -> None:
    champion, challenger = FakeModel("champ"), FakeModel("chall", threshold=0.3, factor=0.9)
    handle = shadowing(champion, challenger)

    async def scenario() -> None:
        expected = [champion._answer(row) for row in ROWS]
        for row, answer in zip(ROWS, expected, strict=True):
            assert await handle.score(row) == answer
        assert await handle.score_many(ROWS) == expected
        info = await settled(handle)
        assert info["calls"]["ok"] == info["calls"]["sent"] == len(ROWS) + 1
        (pair,) = info["comparisons"]
        assert pair["requests"] == len(ROWS) + 1 and pair["transactions"] == 2 * len(ROWS)
        assert challenger.rows_scored == 2 * len(ROWS)

    asyncio.run(scenario())


def test_the_answer_object_is_the_champion_s_untouched() -> None:
    answer = {"fraud_probability": 0.2, "is_fraud": False, "threshold": 0.5, "model_version": "c"}

    class Champion(FakeModel):
        async def score(self, row: list[float]) -> dict[str, Any]:
            return answer

    handle = shadowing(Champion("c"), FakeModel("chall", factor=3.0))

    async def scenario() -> None:
        got = await handle.score([0.2])
        await settled(handle)
        assert got is answer
        assert answer == {
            "fraud_probability": 0.2,
            "is_fraud": False,
            "threshold": 0.5,
            "model_version": "c",
        }

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("behaviour", "outcome"),
    [("raise", "error"), ("hang", "timeout"), ("overloaded", "overloaded")],
)
def test_a_failing_challenger_never_changes_an_answer(behaviour: str, outcome: str) -> None:
    champion, challenger = FakeModel("champ"), FakeModel("chall", behaviour=behaviour)
    handle = shadowing(champion, challenger, timeout_s=0.05)

    async def scenario() -> None:
        for row in ROWS:
            assert await handle.score(row) == champion._answer(row)
        assert await handle.score_many(ROWS) == [champion._answer(row) for row in ROWS]
        # Answered while the challenger's calls are still under way (a hanging one for 50 ms).
        info = await settled(handle)
        assert info["calls"]["sent"] == len(ROWS) + 1
        assert info["calls"][outcome] == len(ROWS) + 1
        assert info["comparisons"] == []
        if behaviour == "hang":
            assert challenger.cancelled == len(ROWS) + 1  # cut off at its timeout, not left

    asyncio.run(scenario())


def test_the_answer_does_not_wait_for_a_hanging_challenger() -> None:
    champion, challenger = FakeModel("champ"), FakeModel("chall", behaviour="hang")
    handle = shadowing(champion, challenger, timeout_s=30)

    async def scenario() -> None:
        # Bounded: were the answer to wait for the challenger, this would time out.
        answer = await asyncio.wait_for(handle.score([0.7]), 1)
        assert answer == champion._answer([0.7])
        assert (await handle.describe_challenger())["calls"]["in_flight"] == 1

    asyncio.run(scenario())


@pytest.mark.parametrize("behaviour", ["ok", "raise", "hang", "overloaded"])
def test_answers_never_wait_for_the_challenger(behaviour: str) -> None:
    """Whatever the challenger does, each answer is the champion's and is returned while the
    challenger's call may still be under way. (What shadowing costs in time is measured by
    benchmarks/shadow_cost.py, not here.)"""
    champion, challenger = FakeModel("champ"), FakeModel("chall", behaviour=behaviour)
    handle = shadowing(champion, challenger, timeout_s=60.0)

    async def scenario() -> dict[str, Any]:
        for row in ROWS:
            # A liveness bound, far above a call's cost: a wait for the hanging challenger's
            # 60 s timeout would exceed it.
            assert await asyncio.wait_for(handle.score(row), 5) == champion._answer(row)
        during = await handle.describe_challenger()
        assert during is not None
        return during

    during = asyncio.run(scenario())
    if behaviour == "hang":  # every shadow call still waits for the challenger
        assert during["calls"]["in_flight"] == len(ROWS)


def test_calls_beyond_the_cap_are_dropped_and_counted() -> None:
    champion, challenger = FakeModel("champ"), FakeModel("chall", behaviour="hang")
    handle = shadowing(champion, challenger, timeout_s=0.1, max_in_flight=3)

    async def scenario() -> None:
        answers = await asyncio.gather(*(handle.score(row) for row in ROWS))
        assert answers == [champion._answer(row) for row in ROWS]
        during = await handle.describe_challenger()
        assert during["calls"]["in_flight"] == 3 and during["calls"]["dropped"] == 5
        after = await settled(handle)
        assert after["calls"]["timeout"] == 3 and after["calls"]["sent"] == len(ROWS)

    asyncio.run(scenario())


def binomial_bounds(n: int, p: float, sigmas: float = 4.0) -> tuple[float, float]:
    spread = sigmas * math.sqrt(n * p * (1 - p))
    return n * p - spread, n * p + spread


@pytest.mark.parametrize("share", [0.0, 0.1, 0.3, 1.0])
def test_shares_are_exact_at_the_ends_and_binomial_between(share: float) -> None:
    champion, challenger = FakeModel("champ"), FakeModel("chall", factor=0.5)
    n = 2000

    for mode in ("shadow", "canary"):
        handle = shadowing(champion, challenger, seed=42, share=share, mode=mode)

        async def scenario(handle: ShadowingModelHandle = handle) -> tuple[int, dict]:
            answers = [await handle.score([0.4]) for _ in range(n)]
            return sum(a["model_version"] == "chall" for a in answers), await settled(handle)

        by_challenger, info = asyncio.run(scenario())
        sent = info["calls"]["sent"]
        if share in (0.0, 1.0):
            assert sent == share * n
        else:
            low, high = binomial_bounds(n, share)
            assert low <= sent <= high, (mode, sent, (low, high))
        # Only canary answers with the challenger, exactly on the requests sent to it.
        assert by_challenger == (sent if mode == "canary" else 0)


def test_the_seed_makes_the_share_reproducible() -> None:
    def sent(seed: int) -> int:
        handle = shadowing(FakeModel("a"), FakeModel("b"), seed=seed, share=0.5)

        async def scenario() -> int:
            for _ in range(200):
                await handle.score([0.1])
            return int((await settled(handle))["calls"]["sent"])

        return asyncio.run(scenario())

    assert sent(7) == sent(7)


def test_canary_answers_carry_the_challenger_s_version_and_are_compared() -> None:
    champion, challenger = FakeModel("champ"), FakeModel("chall", threshold=0.3, factor=0.9)
    handle = shadowing(champion, challenger, mode="canary")

    async def scenario() -> None:
        assert await handle.score_many(ROWS) == [challenger._answer(row) for row in ROWS]
        assert await handle.score([0.5]) == challenger._answer([0.5])
        info = await settled(handle)
        assert info["calls"]["ok"] == 2
        (pair,) = info["comparisons"]
        assert pair["transactions"] == len(ROWS) + 1
        assert champion.rows_scored == len(ROWS) + 1  # the fallback, scored beside it

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("behaviour", "outcome"),
    [("raise", "error"), ("hang", "timeout"), ("overloaded", "overloaded")],
)
def test_a_failing_canary_is_answered_by_the_champion_within_the_timeout(
    behaviour: str, outcome: str
) -> None:
    champion, challenger = FakeModel("champ"), FakeModel("chall", behaviour=behaviour)
    handle = shadowing(champion, challenger, mode="canary", timeout_s=0.05)

    async def scenario() -> None:
        assert await handle.score_many(ROWS) == [champion._answer(row) for row in ROWS]
        assert await handle.score([0.5]) == champion._answer([0.5])
        info = await settled(handle)
        assert info["calls"][outcome] == 2 and info["calls"]["ok"] == 0
        # A hanging canary was given up at its timeout and cancelled, not waited for: the
        # champion's answer came without it.
        assert challenger.cancelled == (2 if behaviour == "hang" else 0)

    asyncio.run(scenario())


def test_canary_mode_must_leave_the_champion_time_to_answer() -> None:
    budget = {"request_timeout_s": 2.0}  # the app's args, which the Ingress validates against
    canary = {"challenger": {"mode": "canary", "share": 0.1, "timeout_s": 2}}
    with pytest.raises(ValueError, match=r"challenger.timeout_s \(2\) must be below"):
        IngressConfig.model_validate(canary, context=budget)
    # In shadow mode the challenger may take longer than a request may: nobody waits for it.
    IngressConfig.model_validate({"challenger": {"share": 0.1, "timeout_s": 5}}, context=budget)


@pytest.mark.parametrize(
    "challenger",
    [
        {"share": 1.5},
        {"share": -0.1},
        {},  # the share is required
        {"share": 0.1, "mode": "blue-green"},
        {"share": 0.1, "timeout_s": 0},
        {"share": 0.1, "max_in_flight": 0},
        {"share": 0.1, "artifact_uri": "s3://x"},  # the model is the Challenger's user_config
    ],
)
def test_bad_challenger_configs_are_refused_naming_the_field(challenger: dict) -> None:
    with pytest.raises(ValueError, match="challenger"):
        IngressConfig.model_validate({"challenger": challenger})


def test_explain_and_describe_are_the_champion_s() -> None:
    champion, challenger = FakeModel("champ"), FakeModel("chall", factor=2)
    handle = shadowing(champion, challenger)

    async def scenario() -> None:
        (explained,) = await handle.explain_many([[0.3]], 3)
        assert explained["model_version"] == "champ" and explained["explanation"] == {"top_k": 3}
        assert await handle.describe() == {"model_version": "champ"}
        info = await handle.describe_challenger()
        assert info["model"] == {"model_version": "chall"} and info["calls"]["sent"] == 0

    asyncio.run(scenario())


def test_the_challenger_description_keeps_its_counts_when_the_challenger_does_not_answer() -> None:
    class Unreachable(FakeModel):
        async def describe(self) -> dict[str, Any]:
            await asyncio.Event().wait()
            return {}

    handle = shadowing(FakeModel("champ"), Unreachable("chall"), timeout_s=0.05)

    async def scenario() -> dict[str, Any]:
        await handle.score([0.9])
        return await settled(handle)

    info = asyncio.run(scenario())
    assert info["model"] is None and info["model_unavailable"] == "timeout"
    assert info["calls"]["ok"] == 1 and info["comparisons"][0]["transactions"] == 1
    assert set(info["calls"]) == {"sent", "in_flight", *OUTCOMES}


def test_metrics_are_added_up_per_call_and_sent_together(
    recorded: dict[str, RecordedMetric],
) -> None:
    champion, challenger = FakeModel("champ"), FakeModel("chall", threshold=0.3, factor=0.9)
    recorder = ChallengerRecorder()
    handle = shadowing(champion, challenger, recorder)

    async def scenario() -> None:
        await handle.score_many(ROWS * 100)  # 800 rows in one request
        await handle.score([0.9])
        await settled(handle)

    asyncio.run(scenario())
    assert all(metric.calls == [] for metric in recorded.values())  # within the flush interval
    handle.flush()
    pair = {"champion_version": "champ", "challenger_version": "chall"}
    decisions = {
        tags["decisions"]: value
        for _, value, tags in recorded["fraud_challenger_compared_transactions"].calls
    }
    # ROWS: the champion flags 0.9, 0.6 and 0.7 (>= 0.5); the challenger scores 0.9 times
    # each and also flags 0.4 and 0.35 (0.36 and 0.315 >= 0.3). No count of 0 is sent.
    assert decisions == {
        "both_flag": 3 * 100 + 1,
        "both_pass": 3 * 100,
        "only_challenger_flags": 2 * 100,
    }
    for _, _, tags in recorded["fraud_challenger_compared_transactions"].calls:
        assert tags.items() >= pair.items()
    requests = recorded["fraud_challenger_compared_requests"].calls
    assert requests == [("inc", 2, pair)]  # one record for both requests
    buckets = {tags["le"]: value for _, value, tags in recorded[
        "fraud_challenger_score_difference_bucket"].calls}  # fmt: skip
    assert buckets["+Inf"] == 801
    calls = recorded["fraud_challenger_calls"].calls
    assert calls == [("inc", 2, {"mode": "shadow", "challenger_version": "chall", "outcome": "ok"})]
    latency = {tags["le"]: value for _, value, tags in recorded[
        "fraud_challenger_latency_ms_bucket"].calls}  # fmt: skip
    assert latency["+Inf"] == 2
    handle.flush()  # nothing new: nothing sent
    assert len(recorded["fraud_challenger_calls"].calls) == 1


def test_both_models_decisions_are_in_the_ledger_joined_by_request_and_position(
    tmp_path: Path,
) -> None:
    """Shadow: the champion's served decisions and the challenger's unserved ones; canary: the
    challenger's served ones and the champion's unserved ones; each with the request's id."""
    log = ledger_in(tmp_path / "ledger")
    rows = [TRANSACTION | {"V1": 0.8, "Amount": 10.0}, TRANSACTION | {"V1": 0.1, "Amount": 20.0}]
    batch = batch_request_model(10).model_validate({"transactions": rows})

    async def scenario() -> None:
        for mode, request_id in (("shadow", "r-shadow"), ("canary", "r-canary")):
            champion = FakeModel("champ")
            challenger = FakeModel("chall", threshold=0.3, factor=0.5)
            handle = shadowing(champion, challenger, decisions=log, mode=mode, timeout_s=1.0)
            plane = DataPlane(handle, 5, decisions=log)
            await plane.predict_batch(batch, Request("/batch", request_id, ANONYMOUS))
            await settled(handle)

    asyncio.run(scenario())
    assert log.writer.flush(timeout_s=10)
    recorded = ledger_rows(tmp_path / "ledger")
    by = {(r["request_id"], r["role"], r["position"]): r for r in recorded}
    assert len(recorded) == 8
    cases = (("r-shadow", "shadow", "champion"), ("r-canary", "canary", "challenger"))
    for request_id, mode, served_role in cases:
        for position, (score, amount) in enumerate(((0.8, 10.0), (0.1, 20.0))):
            champion_row = by[(request_id, "champion", position)]
            challenger_row = by[(request_id, "challenger", position)]
            assert champion_row["score"] == pytest.approx(score)
            assert challenger_row["score"] == pytest.approx(score * 0.5)
            assert champion_row["amount"] == challenger_row["amount"] == amount
            assert champion_row["mode"] == challenger_row["mode"] == mode
            assert (champion_row["served"], challenger_row["served"]) == (
                served_role == "champion",
                served_role == "challenger",
            )
            assert champion_row["time"] == challenger_row["time"]  # the same day's partition
            assert challenger_row["model_version"] == "chall"


def test_without_a_config_nothing_goes_to_the_challenger_and_the_endpoint_has_nothing() -> None:
    champion, challenger = FakeModel("champ"), FakeModel("chall")
    handle = ShadowingModelHandle(champion, challenger)

    async def scenario() -> None:
        assert await handle.score([0.9]) == champion._answer([0.9])
        assert await handle.score_many(ROWS) == [champion._answer(row) for row in ROWS]
        assert await handle.describe_challenger() is None
        assert challenger.rows_scored == 0

    asyncio.run(scenario())


def test_a_new_config_applies_to_the_next_requests_and_none_forgets_the_counts() -> None:
    champion, challenger = FakeModel("champ"), FakeModel("chall")
    handle = shadowing(champion, challenger, share=1.0)

    async def scenario() -> None:
        await handle.score([0.9])
        assert (await settled(handle))["calls"]["ok"] == 1
        handle.configure(ChallengerConfig(share=1.0, mode="canary"))
        assert (await handle.score([0.9]))["model_version"] == "chall"
        info = await settled(handle)
        assert info["mode"] == "canary" and info["calls"]["ok"] == 2  # counts carried over
        handle.configure(None)
        assert (await handle.score([0.9]))["model_version"] == "champ"
        handle.configure(ChallengerConfig(share=0.0))
        assert (await settled(handle))["calls"] == dict.fromkeys(
            ["sent", *OUTCOMES, "in_flight"], 0
        )

    asyncio.run(scenario())
