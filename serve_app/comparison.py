"""Champion against challenger, on the same rows: decision agreement, score differences, and
the challenger's latency, added up in this process (no Ray here; serve_app.challenger sends the
same counts to Prometheus)."""

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from serve_app.schemas import Answer

# Each model decides by its own threshold, as it would if it served.
DECISIONS = ("both_flag", "both_pass", "only_champion_flags", "only_challenger_flags")
# challenger - champion fraud_probability: most rows differ by little, and the decisions are
# made far from 0, so the bounds are fine near 0 and symmetric.
DIFFERENCE_BUCKETS = [
    *(-bound for bound in (0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.001, 0.0001)),
    0.0,
    *(0.0001, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5),
]
DIFFERENCE_LABELS = [f"{bound:g}" for bound in DIFFERENCE_BUCKETS]
LATENCY_BUCKETS_MS = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0]
LATENCY_LABELS = [f"{bound:g}" for bound in LATENCY_BUCKETS_MS]


def cumulative_counts(
    values: Sequence[float], bounds: Sequence[float], labels: Sequence[str]
) -> list[tuple[str, int]]:
    """(le, how many values are <= le) for every bound and "+Inf", as Prometheus histogram
    buckets count them; zero counts included."""
    ordered = sorted(values)
    counts = [bisect_right(ordered, bound) for bound in bounds]
    return list(zip([*labels, "+Inf"], [*counts, len(ordered)], strict=True))


def bucket_index(value: float, bounds: Sequence[float]) -> int:
    """The first bucket `value` counts in (len(bounds) for +Inf only)."""
    return bisect_left(bounds, value)


def cumulative(counts: Sequence[int], labels: Sequence[str]) -> list[tuple[str, int]]:
    """Counts per bucket (non-cumulative, the last one +Inf's) as cumulative (le, count)."""
    return list(zip([*labels, "+Inf"], accumulate(counts), strict=True))


@dataclass(frozen=True)
class Comparison:
    """One call's rows scored by both models (one version pair)."""

    champion_version: str
    challenger_version: str
    transactions: int
    decisions: dict[str, int]  # every key of DECISIONS
    difference_buckets: list[tuple[str, int]]  # cumulative, every DIFFERENCE_LABELS and +Inf
    difference_sum: float
    abs_difference_sum: float
    max_abs_difference: float


def compare(champion: Sequence[Answer], challenger: Sequence[Answer]) -> list[Comparison]:
    """The two models' answers for the same rows, in the same order, compared row by row; one
    Comparison per pair of model versions (one, unless a model was swapped within the call).
    Plain Python: most calls are a single row, for which numpy's set-up costs more than this."""
    if len(champion) != len(challenger):
        raise ValueError(
            f"the challenger answered {len(challenger)} rows for the champion's {len(champion)}"
        )
    groups: dict[tuple[str, str], list[tuple[Answer, Answer]]] = {}
    for mine, theirs in zip(champion, challenger, strict=True):
        pair = (mine["model_version"], theirs["model_version"])
        groups.setdefault(pair, []).append((mine, theirs))
    comparisons = []
    for (champion_version, challenger_version), rows in groups.items():
        decisions = dict.fromkeys(DECISIONS, 0)
        differences = []
        for mine, theirs in rows:
            decisions[DECISION_OF[mine["is_fraud"], theirs["is_fraud"]]] += 1
            differences.append(theirs["fraud_probability"] - mine["fraud_probability"])
        largest = max(differences, key=abs)
        comparisons.append(
            Comparison(
                champion_version=champion_version,
                challenger_version=challenger_version,
                transactions=len(rows),
                decisions=decisions,
                difference_buckets=cumulative_counts(
                    differences, DIFFERENCE_BUCKETS, DIFFERENCE_LABELS
                ),
                difference_sum=math.fsum(differences),
                abs_difference_sum=math.fsum(map(abs, differences)),
                max_abs_difference=abs(largest),
            )
        )
    return comparisons


# (champion flags, challenger flags) -> its name in DECISIONS
DECISION_OF = {
    (True, True): "both_flag",
    (False, False): "both_pass",
    (True, False): "only_champion_flags",
    (False, True): "only_challenger_flags",
}


@dataclass
class PairTotals:
    """Everything compared so far for one (champion, challenger) pair of versions."""

    requests: int = 0
    transactions: int = 0
    decisions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DECISIONS, 0))
    difference_buckets: list[int] = field(
        default_factory=lambda: [0] * (len(DIFFERENCE_BUCKETS) + 1)
    )  # cumulative, in the order of DIFFERENCE_LABELS and +Inf
    difference_sum: float = 0.0
    abs_difference_sum: float = 0.0
    max_abs_difference: float = 0.0

    def add(self, comparison: Comparison) -> None:
        self.requests += 1
        self.transactions += comparison.transactions
        for decision, count in comparison.decisions.items():
            self.decisions[decision] += count
        for index, (_, count) in enumerate(comparison.difference_buckets):
            self.difference_buckets[index] += count
        self.difference_sum += comparison.difference_sum
        self.abs_difference_sum += comparison.abs_difference_sum
        self.max_abs_difference = max(self.max_abs_difference, comparison.max_abs_difference)

    def summary(self) -> dict[str, Any]:
        agreeing = self.decisions["both_flag"] + self.decisions["both_pass"]
        n = self.transactions
        labels = [*DIFFERENCE_LABELS, "+Inf"]
        return {
            "requests": self.requests,
            "transactions": n,
            "decisions": dict(self.decisions),
            "agreement": agreeing / n if n else None,
            "score_difference": {
                "of": "challenger - champion fraud_probability",
                "mean": self.difference_sum / n if n else None,
                "mean_abs": self.abs_difference_sum / n if n else None,
                "max_abs": self.max_abs_difference if n else None,
                # Cumulative, as Prometheus buckets: transactions whose difference is <= le.
                "buckets": dict(zip(labels, self.difference_buckets, strict=True)),
            },
        }


@dataclass
class LatencyTotals:
    """The challenger's answer times (one per call), for one challenger version."""

    calls: int = 0
    sum_ms: float = 0.0
    max_ms: float = 0.0
    # Per bucket, not cumulative (one increment per call); the last one is +Inf's.
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))

    def add(self, latency_ms: float) -> None:
        self.calls += 1
        self.sum_ms += latency_ms
        self.max_ms = max(self.max_ms, latency_ms)
        self.counts[bucket_index(latency_ms, LATENCY_BUCKETS_MS)] += 1

    def summary(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "mean_ms": self.sum_ms / self.calls if self.calls else None,
            "max_ms": self.max_ms if self.calls else None,
            "buckets": dict(cumulative(self.counts, LATENCY_LABELS)),
        }


@dataclass
class ChallengerTotals:
    """What one Ingress replica saw of its challenger since it started."""

    pairs: dict[tuple[str, str], PairTotals] = field(default_factory=dict)
    latency: dict[str, LatencyTotals] = field(default_factory=dict)  # by challenger version

    def compared(self, comparisons: Sequence[Comparison]) -> None:
        for comparison in comparisons:
            key = (comparison.champion_version, comparison.challenger_version)
            self.pairs.setdefault(key, PairTotals()).add(comparison)

    def answered(self, challenger_version: str, latency_ms: float) -> None:
        self.latency.setdefault(challenger_version, LatencyTotals()).add(latency_ms)

    def summary(self) -> dict[str, Any]:
        return {
            "comparisons": [
                {"champion_version": champion, "challenger_version": challenger} | totals.summary()
                for (champion, challenger), totals in self.pairs.items()
            ],
            "latency": [
                {"challenger_version": version} | totals.summary()
                for version, totals in self.latency.items()
            ],
        }
