"""Confidence intervals that a reviewer can recompute: exact binomial ones on rates, and the
live precision derived from them.

- Rates (recall, false-positive rate) get Clopper-Pearson intervals. With unequal design weights
  the count is replaced by the weighted share times Kish's effective sample size (Korn and
  Graubard 1998), which is the plain Clopper-Pearson interval when the weights are equal. Zero
  events still bound the rate: the upper end is 1 - (alpha/2)^(1/n), never 0.
- Precision at the production fraud rate pi is pi R / (pi R + (1 - pi) F): it rises with the
  recall R and falls with the false-positive rate F. Its interval takes R's and F's ends, each at
  level 1 - alpha/2 so that both hold together with probability at least 1 - alpha (Bonferroni).
  No false positive among the test rows therefore gives a lower bound below 1, as it must.
- The alert rate pi R + (1 - pi) F rises with both: its interval takes their lower ends and their
  upper ends, at the same levels.
"""

from dataclasses import dataclass

import numpy as np
from scipy.stats import beta

LEVEL = 0.95


@dataclass(frozen=True)
class RateInterval:
    estimate: float
    low: float
    high: float
    events: float  # effective count of events (the count itself when weights are equal)
    trials: float  # effective number of rows

    def as_list(self) -> list[float]:
        return [self.low, self.high]


def clopper_pearson(events: float, trials: float, level: float = LEVEL) -> tuple[float, float]:
    """Exact two-sided interval of a binomial proportion (`events` may be non-integer: an
    effective count)."""
    if trials <= 0:
        return 0.0, 1.0
    tail = (1.0 - level) / 2.0
    low = 0.0 if events <= 0 else float(beta.ppf(tail, events, trials - events + 1))
    high = 1.0 if events >= trials else float(beta.ppf(1.0 - tail, events + 1, trials - events))
    return low, high


def effective_size(weights: np.ndarray) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2: the rows' worth as a simple sample."""
    weights = np.asarray(weights, dtype=np.float64)
    squares = float(np.sum(weights**2))
    return float(weights.sum() ** 2 / squares) if squares > 0 else 0.0


def rate_interval(
    hits: np.ndarray, weights: np.ndarray | None = None, level: float = LEVEL
) -> RateInterval:
    """The (weighted) share of `hits` with its exact interval."""
    hits = np.asarray(hits, dtype=bool)
    weights = np.ones(len(hits)) if weights is None else np.asarray(weights, dtype=np.float64)
    total = float(weights.sum())
    estimate = float(weights[hits].sum() / total) if total > 0 else 0.0
    trials = effective_size(weights)
    events = estimate * trials
    low, high = clopper_pearson(events, trials, level)
    return RateInterval(estimate, low, high, events, trials)


def precision_at_rate(recall: float, false_positive_rate: float, rate: float) -> float:
    caught = rate * recall
    flagged = caught + (1.0 - rate) * false_positive_rate
    return caught / flagged if flagged > 0 else 0.0


@dataclass(frozen=True)
class DecisionIntervals:
    """Recall, false-positive rate, live precision and alert rate of a decision, with intervals."""

    recall: RateInterval
    false_positive_rate: RateInterval
    precision: tuple[float, float, float]  # estimate, low, high
    alert_rate: tuple[float, float, float]  # estimate, low, high: flagged share of live traffic


def decision_intervals(
    labels: np.ndarray,
    flagged: np.ndarray,
    design: np.ndarray | None,
    rate: float,
    level: float = LEVEL,
) -> DecisionIntervals:
    """Intervals of a decision's rates at the production fraud rate `rate`. `design`: the rows'
    design weights (the legitimate rows' false-positive rate is a weighted share)."""
    fraud = labels == 1
    design = np.ones(len(labels)) if design is None else np.asarray(design, dtype=np.float64)
    joint = 1.0 - (1.0 - level) / 2.0  # each of the two at this level: both hold at `level`
    recall = rate_interval(flagged[fraud], design[fraud], joint)
    fpr = rate_interval(flagged[~fraud], design[~fraud], joint)
    precision = (
        precision_at_rate(recall.estimate, fpr.estimate, rate),
        precision_at_rate(recall.low, fpr.high, rate),
        precision_at_rate(recall.high, fpr.low, rate),
    )
    alert_rate = (
        rate * recall.estimate + (1.0 - rate) * fpr.estimate,
        rate * recall.low + (1.0 - rate) * fpr.low,
        rate * recall.high + (1.0 - rate) * fpr.high,
    )
    return DecisionIntervals(recall, fpr, precision, alert_rate)


def percentile_interval(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0 * 100
    return float(np.percentile(samples, tail)), float(np.percentile(samples, 100 - tail))
