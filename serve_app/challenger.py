"""A challenger model beside the champion: shadow scoring and canary answers in the Ingress.

`ShadowingModelHandle` is the model handle the API awaits (serve_app.data_plane.ModelHandle),
wrapped around the champion's. In shadow mode it returns the champion's answers untouched and, for a
share of requests, sends the same rows to the challenger from a background task once the
champion has answered: the request never waits for the challenger, which is cancelled after
its own timeout. In canary mode the challenger answers a share of requests, with the champion
scoring the same rows beside it as the fallback. Either way, when both answered, their answers
are compared row by row and counted (serve_app.comparison), in Prometheus and in
the challenger endpoint, and the decision ledger gets the other model's decisions as records
of their own, joined to the served ones by request id and position.
"""

import asyncio
import logging
import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
from ray.serve.exceptions import BackPressureError

from serve_app.comparison import (
    LATENCY_BUCKETS_MS,
    LATENCY_LABELS,
    ChallengerTotals,
    Comparison,
    bucket_index,
    compare,
    cumulative,
)
from serve_app.config import ChallengerConfig
from serve_app.data_plane import ModelHandle, as_columns
from serve_app.decision_log import DecisionLog
from serve_app.metrics import FLUSH_EVERY_S, tag_keys
from serve_app.request_context import deciding
from serve_app.schemas import Answer, ColumnarAnswer, FeatureRows

# One model's scoring of a request's rows, started when awaited.
ModelCall = Callable[[], Awaitable[list[Answer]]]
logger = logging.getLogger(f"ray.serve.{__name__}")

# What became of each challenger call: `ok`, or why it gave nothing.
# `not_ready`: not sent, as the challenger had not answered yet since it was configured (its
# first replica may still be starting).
OUTCOMES = ("ok", "not_ready", "dropped", "overloaded", "timeout", "error")
# How long one readiness check may wait: a first replica takes seconds to start (it is called
# for, and started, by the check itself).
READY_CHECK_TIMEOUT_S = 30.0
READY_CHECK_EVERY_S = 1.0
# A failing challenger fails every call: log why once in a while, and count every one.
ERROR_LOG_EVERY_S = 60.0
UNKNOWN_VERSION = "unknown"  # the challenger's version, until it first answers


class ChallengerRecorder:
    """The Prometheus side: counts added up per call and sent at most once a second (and at
    each Ingress health check), like the model's own metrics (serve_app.metrics)."""

    def __init__(self) -> None:
        from ray.serve import metrics

        self._metrics = {
            "calls": metrics.Counter(
                "fraud_challenger_calls",
                description="Challenger calls by outcome: ok, dropped (the Ingress replica's cap "
                "on calls in flight), overloaded (the Challenger's queue was full), timeout, "
                "error. challenger_version is the version it last answered with.",
                tag_keys=tag_keys("mode", "challenger_version", "outcome"),
            ),
            "requests": metrics.Counter(
                "fraud_challenger_compared_requests",
                description="Requests scored by both models and compared.",
                tag_keys=tag_keys("champion_version", "challenger_version"),
            ),
            "decisions": metrics.Counter(
                "fraud_challenger_compared_transactions",
                description="Transactions scored by both models, by the two decisions: "
                "both_flag, both_pass, only_champion_flags, only_challenger_flags.",
                tag_keys=tag_keys("champion_version", "challenger_version", "decisions"),
            ),
            "difference": metrics.Counter(
                "fraud_challenger_score_difference_bucket",
                description="Compared transactions whose challenger - champion fraud_probability "
                "is <= le (cumulative, like a histogram's buckets; le='+Inf' counts them all).",
                tag_keys=tag_keys("champion_version", "challenger_version", "le"),
            ),
            "latency": metrics.Counter(
                "fraud_challenger_latency_ms_bucket",
                description="Challenger calls that answered within le milliseconds (cumulative).",
                tag_keys=tag_keys("mode", "challenger_version", "le"),
            ),
            "latency_sum": metrics.Counter(
                "fraud_challenger_latency_ms_sum",
                description="Milliseconds the challenger took, summed over its answered calls.",
                tag_keys=tag_keys("mode", "challenger_version"),
            ),
        }
        # (metric, tags) -> amount not yet sent (milliseconds for latency_sum, else a count).
        self._pending: defaultdict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(
            float
        )
        # (mode, challenger version) -> calls per latency bucket, made cumulative when sent.
        self._latency: dict[tuple[str, str], list[int]] = {}
        self._flushed_at = time.monotonic()

    def call(self, mode: str, challenger_version: str, outcome: str) -> None:
        tags = (("mode", mode), ("challenger_version", challenger_version), ("outcome", outcome))
        self._pending[("calls", tags)] += 1

    def answered(self, mode: str, challenger_version: str, latency_ms: float) -> None:
        tags = (("mode", mode), ("challenger_version", challenger_version))
        key = (mode, challenger_version)
        counts = self._latency.setdefault(key, [0] * (len(LATENCY_BUCKETS_MS) + 1))  # and +Inf
        counts[bucket_index(latency_ms, LATENCY_BUCKETS_MS)] += 1
        self._pending[("latency_sum", tags)] += latency_ms

    def compared(self, comparisons: Sequence[Comparison]) -> None:
        for comparison in comparisons:
            pair = (
                ("champion_version", comparison.champion_version),
                ("challenger_version", comparison.challenger_version),
            )
            self._pending[("requests", pair)] += 1
            for decision, count in comparison.decisions.items():
                self._pending[("decisions", (*pair, ("decisions", decision)))] += count
            for le, count in comparison.difference_buckets:
                self._pending[("difference", (*pair, ("le", le)))] += count

    def flush_if_due(self) -> None:
        """Flush, if the last flush is a second old: called once per call recorded, so that
        all the counts of one call go out together."""
        if time.monotonic() - self._flushed_at >= FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        """Send what was added up since the last flush."""
        pending, self._pending = self._pending, defaultdict(float)
        latency, self._latency = self._latency, {}
        self._flushed_at = time.monotonic()
        for (mode, version), counts in latency.items():
            for le, count in cumulative(counts, LATENCY_LABELS):
                labels = (("mode", mode), ("challenger_version", version), ("le", le))
                pending[("latency", labels)] += count
        for (name, tags), amount in pending.items():
            if amount > 0:  # Counter.inc refuses 0
                self._metrics[name].inc(amount, tags=dict(tags))


class ShadowingModelHandle:
    """The champion's model handle with a challenger beside it (see the module's docstring).
    Implements serve_app.data_plane.ModelHandle; `describe_challenger` answers the challenger
    endpoint.
    Without a challenger config (`configure(None)`, the start) every call is the champion's own.
    """

    def __init__(
        self,
        champion: ModelHandle,
        challenger: ModelHandle,
        recorder: ChallengerRecorder | None = None,
        *,
        decisions: DecisionLog | None = None,
        budget_s: float | None = None,
        rng: random.Random | None = None,
        check_ready: bool = True,
    ) -> None:
        self._champion = champion
        self._challenger = challenger
        self._config: ChallengerConfig | None = None
        self._recorder = recorder
        self._decisions = decisions
        self._budget_s = budget_s  # the request's own timeout; describe_challenger takes half
        self._rng = rng if rng is not None else random.Random()
        # Strong references: the event loop keeps only weak ones to tasks, and a shadow call
        # that nobody awaits could otherwise be collected mid-flight.
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        self._challenger_version = UNKNOWN_VERSION
        self._outcomes: Counter[str] = Counter()
        self._sent = 0
        self._totals = ChallengerTotals()
        self._errors_logged_at = -ERROR_LOG_EVERY_S
        self._errors_since_logged = 0
        # Sent nothing until it has answered a readiness check (check_ready=False: from the
        # start, for tests of what happens once it is up).
        self._check_ready = check_ready
        self._ready = not check_ready
        self._ready_check: asyncio.Task[None] | None = None

    def configure(self, config: ChallengerConfig | None) -> None:
        """Use the challenger this way from the next request on (calls under way finish as they
        began); None stops using it, and forgets what was counted. It is sent nothing until it
        has answered: a check starts now, in the background."""
        if config is None:
            self._outcomes, self._sent, self._totals = Counter(), 0, ChallengerTotals()
            self._challenger_version = UNKNOWN_VERSION
            if self._ready_check is not None:
                self._ready_check.cancel()
            self._ready, self._ready_check = not self._check_ready, None
        self._config = config
        if config is not None:
            self._start_ready_check()

    def _start_ready_check(self) -> None:
        if self._ready or (self._ready_check is not None and not self._ready_check.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # configured outside the event loop: checked at the first request
            return
        self._ready_check = loop.create_task(self._wait_until_ready())

    async def _wait_until_ready(self) -> None:
        """Ask the challenger what it serves until it says (the call also starts its first
        replica, where it has none)."""
        while not self._ready:
            try:
                model = await asyncio.wait_for(self._challenger.describe(), READY_CHECK_TIMEOUT_S)
            except Exception:
                model = {}
            if model.get("model_version"):
                self._ready = True
                logger.info("Challenger %s is ready", model["model_version"])
                return
            await asyncio.sleep(READY_CHECK_EVERY_S)

    # The ModelHandle protocol. A request outside the share goes to the champion exactly as
    # without a challenger: the same awaitable, not even wrapped.

    def score(self, row: list[float]) -> Awaitable[Answer]:
        config = self._chosen()
        if config is None:
            return self._champion.score(row)
        return self._score_with_challenger(config, row)

    def score_many(self, rows: FeatureRows) -> Awaitable[list[Answer]]:
        config = self._chosen()
        if config is None:
            return self._champion.score_many(rows)
        return self._with_challenger(
            config,
            lambda: self._champion.score_many(rows),
            lambda: self._challenger.score_many(rows),
        )

    def score_columns(self, rows: np.ndarray) -> Awaitable[ColumnarAnswer]:
        config = self._chosen()
        if config is None:
            return self._champion.score_columns(rows)
        return self._columns_with_challenger(config, rows)

    def explain_many(self, rows: FeatureRows, top_k: int) -> Awaitable[list[Answer]]:
        # Reason codes explain the serving model's decision: always the champion's.
        return self._champion.explain_many(rows, top_k)

    def describe(self) -> Awaitable[dict[str, Any]]:
        return self._champion.describe()

    async def describe_challenger(self) -> dict[str, Any] | None:
        """The mode, the challenger model and what this Ingress replica counted so far; None
        without a challenger."""
        config = self._config
        if config is None:
            return None
        self._start_ready_check()
        model: dict[str, Any] | None = None
        unavailable = None
        # The counts are answered even when the challenger is not, within the request's time.
        timeout_s = min(config.timeout_s, self._budget_s / 2 if self._budget_s else math.inf)
        try:
            model = await asyncio.wait_for(self._challenger.describe(), timeout_s)
        except BackPressureError:
            unavailable = "overloaded"
        except TimeoutError:
            unavailable = "timeout"
        except Exception as error:  # the comparison is still worth showing
            unavailable = f"error: {error!r}"
        return {
            **config.model_dump(),
            "state": "ready" if self._ready else "starting: sent nothing until it answers",
            "scope": f"Ingress replica {replica_name()}, since the challenger was configured "
            "(another GET may reach another replica); the fleet's counts are the sum of the "
            "ray_fraud_challenger_* counters, and every decision is in the decision ledger "
            "(docs/OBSERVABILITY.md)",
            "model": model,
            "model_unavailable": unavailable,
            # `sent` = every outcome + in_flight (a shadow call is sent once the champion has
            # answered; a dropped one is counted as sent and dropped).
            "calls": {
                "sent": self._sent,
                **{outcome: self._outcomes[outcome] for outcome in OUTCOMES},
                "in_flight": self._in_flight,
            },
            **self._totals.summary(),
        }

    def flush(self) -> None:
        """Send the metrics added up so far (the Ingress's health check calls this, so that
        the last second of traffic is counted when it stops)."""
        if self._recorder is not None:
            self._recorder.flush()

    # Sampling and the two modes. A request keeps the config it was chosen with.

    def _chosen(self) -> ChallengerConfig | None:
        """The config, if this request goes to the challenger too: `share` of them, at random,
        once the challenger is ready (before, a chosen request is counted as not_ready)."""
        config = self._config
        if config is None or self._rng.random() >= config.share:
            return None
        if not self._ready:
            self._sent += 1
            self._outcome(config, "not_ready")
            self._start_ready_check()
            return None
        return config

    async def _columns_with_challenger(
        self, config: ChallengerConfig, rows: np.ndarray
    ) -> ColumnarAnswer:
        """A columnar request as a batch one: compared (and in canary mode answered) row by
        row, and answered as columns again."""
        answers = await self._with_challenger(
            config,
            lambda: as_answers(self._champion.score_columns(rows)),
            lambda: as_answers(self._challenger.score_columns(rows)),
        )
        return as_columns(answers)

    async def _score_with_challenger(self, config: ChallengerConfig, row: list[float]) -> Answer:
        async def champion() -> list[Answer]:
            return [await self._champion.score(row)]

        async def challenger() -> list[Answer]:
            return [await self._challenger.score(row)]

        (answer,) = await self._with_challenger(config, champion, challenger)
        return answer

    async def _with_challenger(
        self,
        config: ChallengerConfig,
        champion: ModelCall,
        challenger: ModelCall,
    ) -> list[Answer]:
        decided = deciding.get()
        if decided is not None:  # the champion's record says a challenger took part
            decided.mode = config.mode
        if config.mode == "canary":
            return await self._canary(config, champion, challenger)
        answers = await champion()
        # Only once the champion has answered, and without awaiting it: the shadow call cannot
        # delay this request, and when the champion failed there is nothing to compare.
        if self._reserve(config):
            self._spawn(self._shadow(config, challenger, answers))
        return answers

    def _reserve(self, config: ChallengerConfig) -> bool:
        """Count a challenger call in flight, unless the cap is reached (then it is dropped)."""
        self._sent += 1
        if self._in_flight >= config.max_in_flight:
            self._outcome(config, "dropped")
            return False
        self._in_flight += 1
        return True

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shadow(
        self,
        config: ChallengerConfig,
        challenger: ModelCall,
        champion_answers: list[Answer],
    ) -> None:
        try:
            started = time.perf_counter()
            answers = await self._call_challenger(config, challenger)
        finally:
            self._in_flight -= 1
        if answers is not None:
            self._answered(config, champion_answers, answers, elapsed_ms(started))

    async def _canary(
        self,
        config: ChallengerConfig,
        champion: ModelCall,
        challenger: ModelCall,
    ) -> list[Answer]:
        if not self._reserve(config):
            return await champion()
        # The champion scores the same rows beside the challenger: its answer is there at once
        # if the challenger fails, and is compared with the challenger's if it does not.
        fallback = asyncio.ensure_future(champion())
        try:
            started = time.perf_counter()
            answers = await self._call_challenger(config, challenger)
        except BaseException:  # this request was cancelled (its own timeout, a disconnect)
            fallback.cancel()
            raise
        finally:
            self._in_flight -= 1
        if answers is None:
            return await fallback
        decided = deciding.get()
        if decided is not None:
            decided.served_by = "challenger"
        self._spawn(self._compare_with(config, fallback, answers, elapsed_ms(started)))
        return answers

    async def _compare_with(
        self,
        config: ChallengerConfig,
        champion: "asyncio.Future[list[Answer]]",
        answers: list[Answer],
        latency_ms: float,
    ) -> None:
        try:
            champion_answers = await asyncio.wait_for(champion, config.timeout_s)
        except Exception:  # the champion's own failures are counted where it serves
            self._count_answered(config, answers, latency_ms)
            if self._recorder is not None:
                self._recorder.flush_if_due()
            return
        self._answered(config, champion_answers, answers, latency_ms)

    async def _call_challenger(
        self, config: ChallengerConfig, challenger: ModelCall
    ) -> list[Answer] | None:
        """The challenger's answers within its timeout, or None, its failure counted."""
        try:
            return await asyncio.wait_for(challenger(), config.timeout_s)
        except BackPressureError:  # its queue is full: shed, never retried
            self._outcome(config, "overloaded")
        except TimeoutError:
            self._outcome(config, "timeout")
        except Exception as error:
            self._outcome(config, "error")
            self._log_error(error)
        return None

    # Recording.

    def _outcome(self, config: ChallengerConfig, outcome: str, done: bool = True) -> None:
        """Count a call's outcome; `done`: nothing more of the call is to be recorded."""
        self._outcomes[outcome] += 1
        if self._recorder is not None:
            self._recorder.call(config.mode, self._challenger_version, outcome)
            if done:
                self._recorder.flush_if_due()

    def _count_answered(
        self, config: ChallengerConfig, answers: list[Answer], latency_ms: float
    ) -> None:
        if answers:
            self._challenger_version = answers[0]["model_version"]
        self._outcome(config, "ok", done=False)
        self._totals.answered(self._challenger_version, latency_ms)
        if self._recorder is not None:
            self._recorder.answered(config.mode, self._challenger_version, latency_ms)

    def _answered(
        self,
        config: ChallengerConfig,
        champion: list[Answer],
        challenger: list[Answer],
        latency_ms: float,
    ) -> None:
        try:
            comparisons = compare(champion, challenger)
        except Exception as error:  # an answer of another shape: the challenger's fault
            self._outcome(config, "error")
            self._log_error(error)
            return
        self._count_answered(config, challenger, latency_ms)
        self._totals.compared(comparisons)
        if self._recorder is not None:
            self._recorder.compared(comparisons)
            self._recorder.flush_if_due()
        self._record_unserved(config, champion, challenger, latency_ms)

    def _record_unserved(
        self,
        config: ChallengerConfig,
        champion: list[Answer],
        challenger: list[Answer],
        latency_ms: float,
    ) -> None:
        """The decisions of the model that did not answer, in the ledger beside the served ones
        (which the data plane records): the challenger's in shadow mode, the champion's in
        canary mode."""
        decided = deciding.get()  # this task's copy of the request's context
        if self._decisions is None or decided is None:
            return
        if config.mode == "shadow":
            answers, role, latency = challenger, "challenger", latency_ms
        else:
            answers, role, latency = champion, "champion", None
        self._decisions.decided(
            decided.request,
            as_columns(answers),
            decided.rows,
            role=role,
            served=False,
            mode=config.mode,
            latency_ms=latency,
        )

    def _log_error(self, error: Exception) -> None:
        self._errors_since_logged += 1
        now = time.monotonic()
        if now - self._errors_logged_at >= ERROR_LOG_EVERY_S:
            logger.warning(
                "Challenger call failed (%d since the last such line; the next one in %g s at "
                "the earliest; the answer was not affected): %r",
                self._errors_since_logged,
                ERROR_LOG_EVERY_S,
                error,
            )
            self._errors_logged_at, self._errors_since_logged = now, 0


async def as_answers(columns: Awaitable[ColumnarAnswer]) -> list[Answer]:
    answer = await columns
    common: Answer = {
        "fraud_probability": 0.0,
        "is_fraud": False,
        "threshold": answer["threshold"],
        "model_version": answer["model_version"],
    }
    if "decision_rule" in answer:
        common["decision_rule"] = answer["decision_rule"]
    return [
        common | {"fraud_probability": probability, "is_fraud": flag}
        for probability, flag in zip(answer["fraud_probability"], answer["is_fraud"], strict=True)
    ]


def replica_name() -> str:
    """This replica's id, where Serve runs it."""
    from ray import serve

    try:
        return str(serve.get_replica_context().replica_id.unique_id)
    except Exception:  # outside Serve (the unit tests)
        return "(not in Serve)"


def elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
