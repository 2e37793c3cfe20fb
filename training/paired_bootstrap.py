"""Two models on the same held-out rows: the difference of their headline metrics, with a paired
bootstrap interval.

Paired: every resample draws the rows once and scores both models on the same draw, so the
difference's spread is that of the difference (the rows both models find hard move both
metrics together), not of two independent measurements. As training.evaluate's ranking
intervals, frauds and legitimate rows are drawn separately (counts of draws per row) and each
class's production weights rescaled to its total: every resample keeps the production fraud
rate, which is set, not measured. The interval is the percentile interval of the resampled
differences (training.intervals.percentile_interval: numpy's linear percentiles).

The metrics, each at production weights (the live transactions the rows stand for):

- cost_per_transaction: under each model's own shipped decision rule; a missed fraud costs its
  Amount, every flagged transaction `review_cost` (training.evaluate.expected_cost). Lower wins.
- recall_at_alert_budget: the share of fraud caught when each model flags its highest-scored
  transactions up to the alert budget (alerts per 10,000) of the rows' live volume, a group of
  equal scores all in or all out. A ranking measure: the threshold is set on the rows themselves,
  for both models alike. Higher wins.
- log_loss: of the served fraud_probability. Lower wins.
- pr_auc: weighted average precision of the served fraud_probability. Higher wins.
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np

from fraud_model.decision import PER_10K
from training.evaluate import ranking_metrics
from training.intervals import LEVEL, percentile_interval

METRICS: dict[str, Literal["lower", "higher"]] = {
    "cost_per_transaction": "lower",
    "recall_at_alert_budget": "higher",
    "log_loss": "lower",
    "pr_auc": "higher",
}
# Clipped away from 0 and 1 for the log loss only; served probabilities never reach either.
_EPSILON = 1e-15


@dataclass(frozen=True)
class ModelScores:
    """One model on the rows: its served probabilities and its shipped rule's decisions."""

    probabilities: np.ndarray
    flagged: np.ndarray


@dataclass(frozen=True)
class Difference:
    """`b - a` of one metric: on the rows as they are, and its paired bootstrap interval."""

    metric: str
    a: float
    b: float
    difference: float
    low: float
    high: float
    better: Literal["lower", "higher"]

    @property
    def winner(self) -> Literal["A", "B", "tie"]:
        """The model the interval says is better, or a tie when it holds 0."""
        if self.low <= 0.0 <= self.high:
            return "tie"
        b_higher = self.low > 0.0
        return "B" if b_higher == (self.better == "higher") else "A"


def resample_weights(
    labels: np.ndarray, weights: np.ndarray, resamples: int, seed: int
) -> np.ndarray:
    """(resamples, rows) weights: each class's rows drawn with replacement as many times as it
    has rows, each draw weighing the row's weight, rescaled to the class's total weight."""
    rng = np.random.default_rng(seed)
    result = np.zeros((resamples, len(labels)))
    for members in (np.flatnonzero(labels == 1), np.flatnonzero(labels != 1)):
        if len(members) == 0:
            continue
        drawn = rng.multinomial(len(members), np.full(len(members), 1 / len(members)), resamples)
        resampled = drawn * weights[members]
        result[:, members] = resampled * weights[members].sum() / resampled.sum(axis=1)[:, None]
    return result


def cost_per_transaction(
    labels: np.ndarray, flagged: np.ndarray, amounts: np.ndarray, review_cost: float, w: np.ndarray
) -> np.ndarray:
    """Per row of `w` (resamples x rows): missed frauds' amounts plus reviews, per transaction."""
    missed = (labels == 1) & ~flagged
    per_row = np.where(missed, amounts, 0.0) + review_cost * flagged
    result: np.ndarray = (w @ per_row) / w.sum(axis=1)
    return result


def recall_at_budget(
    labels: np.ndarray, scores: np.ndarray, alerts_per_10k: float, w: np.ndarray
) -> np.ndarray:
    """Per row of `w`: the weighted share of frauds among the top-scored rows whose weight is
    within the budget's share of the total (a run of equal scores counted whole)."""
    order = np.argsort(-scores, kind="stable")
    ordered = scores[order]
    fraud = labels[order] == 1
    weights = w[:, order]
    cumulative = np.cumsum(weights, axis=1)
    # Every row of a run of equal scores takes the cumulative weight at the run's last row.
    last_of_run = np.r_[ordered[1:] != ordered[:-1], True]
    run_end = np.flatnonzero(last_of_run)[_run_index(last_of_run)]
    within = cumulative[:, run_end] <= cumulative[:, -1:] * alerts_per_10k / PER_10K
    caught = np.sum(weights * (within & fraud), axis=1)
    result: np.ndarray = caught / np.sum(weights * fraud, axis=1)
    return result


def _run_index(last_of_run: np.ndarray) -> np.ndarray:
    """For each position, the index (among the runs) of the run of equal scores it belongs to."""
    starts = np.r_[True, last_of_run[:-1]]
    index: np.ndarray = np.cumsum(starts) - 1
    return index


def log_loss(labels: np.ndarray, probabilities: np.ndarray, w: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probabilities, dtype=np.float64), _EPSILON, 1 - _EPSILON)
    per_row = -np.where(labels == 1, np.log(p), np.log1p(-p))
    result: np.ndarray = (w @ per_row) / w.sum(axis=1)
    return result


def metric_values(
    labels: np.ndarray,
    amounts: np.ndarray,
    model: ModelScores,
    w: np.ndarray,
    *,
    review_cost: float,
    alerts_per_10k: float,
) -> dict[str, np.ndarray]:
    """Every metric of one model, per row of `w`."""
    pr_auc, _ = ranking_metrics(labels, model.probabilities, w)
    return {
        "cost_per_transaction": cost_per_transaction(
            labels, model.flagged, amounts, review_cost, w
        ),
        "recall_at_alert_budget": recall_at_budget(labels, model.probabilities, alerts_per_10k, w),
        "log_loss": log_loss(labels, model.probabilities, w),
        "pr_auc": pr_auc,
    }


def paired_bootstrap(
    labels: np.ndarray,
    amounts: np.ndarray,
    weights: np.ndarray,
    a: ModelScores,
    b: ModelScores,
    *,
    review_cost: float,
    alerts_per_10k: float,
    resamples: int,
    seed: int,
    level: float = LEVEL,
) -> list[Difference]:
    """B - A of every metric on these rows (`weights`: production weights), with its paired
    bootstrap percentile interval at `level` over `resamples` resamples drawn from `seed`."""
    labels = np.asarray(labels)
    if labels.min() == labels.max():
        raise ValueError("the rows hold one class only: no metric here compares the models")
    settings = {"review_cost": review_cost, "alerts_per_10k": alerts_per_10k}
    as_they_are = np.asarray(weights, dtype=np.float64)[None, :]
    drawn = resample_weights(labels, as_they_are[0], resamples, seed)
    results = []
    point_a = metric_values(labels, amounts, a, as_they_are, **settings)
    point_b = metric_values(labels, amounts, b, as_they_are, **settings)
    draws_a = metric_values(labels, amounts, a, drawn, **settings)
    draws_b = metric_values(labels, amounts, b, drawn, **settings)
    for metric, better in METRICS.items():
        low, high = percentile_interval(draws_b[metric] - draws_a[metric], level)
        results.append(
            Difference(
                metric=metric,
                a=float(point_a[metric][0]),
                b=float(point_b[metric][0]),
                difference=float(point_b[metric][0] - point_a[metric][0]),
                low=low,
                high=high,
                better=better,
            )
        )
    return results


def verdict(differences: list[Difference]) -> str:
    """ "A" or "B" when that model is better on some metric and worse on none, "tie" when no
    interval excludes 0, "mixed" when each is better on some; then which metric said what."""
    by_winner: dict[str, list[str]] = {"A": [], "B": [], "tie": []}
    for difference in differences:
        by_winner[difference.winner].append(difference.metric)
    if by_winner["A"] and by_winner["B"]:
        overall = "mixed"
    else:
        overall = "A" if by_winner["A"] else "B" if by_winner["B"] else "tie"
    said = [
        f"{'tie' if name == 'tie' else name + ' better'} on {', '.join(metrics)}"
        for name, metrics in by_winner.items()
        if metrics
    ]
    return f"{overall} ({'; '.join(said)})"
