"""Evaluation for rare-event scoring, and the choice of the decision threshold.

Held-out data here may hold far more fraud than live traffic (the bundled real subset: 2.5 %
against 0.172 %). Precision depends on that rate, so every metric can also be computed with the
non-fraud rows re-weighted to the production rate: what precision the model would have live.
"""

from typing import NotRequired, TypedDict

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    roc_auc_score,
)

from training.options import DEFAULT_REVIEW_COST, ThresholdStrategy


class ConfusionCounts(TypedDict):
    """Weighted counts when the metrics are at a target rate: "per this many live transactions"."""

    tn: float
    fp: float
    fn: float
    tp: float


class Intervals(TypedDict):
    """95 % bootstrap intervals, [low, high]."""

    pr_auc: list[float]
    precision: list[float]
    recall: list[float]


class SplitMetrics(TypedDict):
    rows: int
    frauds: int
    fraud_rate: float
    pr_auc: float
    roc_auc: float
    threshold: float
    precision: float
    recall: float
    f1: float
    confusion_matrix: ConfusionCounts
    ci95: NotRequired[Intervals]


class TrainingMetrics(TypedDict):
    """The `metrics` of an artifact's metadata.json, as training writes them."""

    test: SplitMetrics
    test_at_production_rate: SplitMetrics
    expected_cost_per_transaction: float
    review_cost: float
    train_seconds: float
    split_rows: dict[str, int]
    warnings: NotRequired[list[str]]


def prevalence_weights(labels: np.ndarray, target_rate: float | None) -> np.ndarray | None:
    """Weights for non-fraud rows that make the weighted fraud share equal `target_rate`."""
    if target_rate is None:
        return None
    n_fraud = int(labels.sum())
    n_normal = len(labels) - n_fraud
    normal_weight = n_fraud * (1.0 - target_rate) / (target_rate * n_normal)
    return np.where(labels == 1, 1.0, normal_weight)


def evaluate(
    labels: np.ndarray, scores: np.ndarray, threshold: float, *, target_rate: float | None = None
) -> SplitMetrics:
    """PR-AUC, ROC-AUC and the decision metrics at `threshold` (flag when score >= threshold)."""
    weights = prevalence_weights(labels, target_rate)
    flagged = scores >= threshold
    matrix = confusion_matrix(labels, flagged, labels=[0, 1], sample_weight=weights)
    (tn, fp), (fn, tp) = matrix
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "rows": len(labels),
        "frauds": int(labels.sum()),
        "fraud_rate": float(target_rate if target_rate is not None else labels.mean()),
        "pr_auc": float(average_precision_score(labels, scores, sample_weight=weights)),
        "roc_auc": float(roc_auc_score(labels, scores)),
        "threshold": float(threshold),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        # Counts are weighted when target_rate is set: "per this many live transactions".
        "confusion_matrix": {"tn": float(tn), "fp": float(fp), "fn": float(fn), "tp": float(tp)},
    }


# Below this many frauds in the test split, a few rows more or less move every metric a lot.
MIN_TEST_FRAUDS = 50


def small_test_warning(labels: np.ndarray) -> str | None:
    """A plain warning when the test split holds too few frauds for its metrics to mean much."""
    frauds = int(labels.sum())
    if frauds >= MIN_TEST_FRAUDS:
        return None
    return (
        f"The test split holds only {frauds} frauds (fewer than {MIN_TEST_FRAUDS}): each "
        "metric is very uncertain; read its 95 % interval, and train on more data if you can."
    )


def bootstrap_intervals(
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    *,
    target_rate: float | None = None,
    resamples: int = 400,
    level: float = 0.95,
    seed: int = 0,
) -> Intervals:
    """Percentile intervals of PR-AUC, precision and recall over bootstrap resamples of the
    test rows. Frauds and legitimate rows are resampled separately, so every resample keeps the
    split's class counts (and so its re-weighting to `target_rate`)."""
    rng = np.random.default_rng(seed)
    fraud_rows, normal_rows = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    samples: dict[str, list[float]] = {"pr_auc": [], "precision": [], "recall": []}
    for _ in range(resamples):
        rows = np.concatenate([
            rng.choice(fraud_rows, len(fraud_rows)),
            rng.choice(normal_rows, len(normal_rows)),
        ])  # fmt: skip
        metrics = evaluate(labels[rows], scores[rows], threshold, target_rate=target_rate)
        samples["pr_auc"].append(metrics["pr_auc"])
        samples["precision"].append(metrics["precision"])
        samples["recall"].append(metrics["recall"])
    tail = (1 - level) / 2 * 100

    def interval(values: list[float]) -> list[float]:
        return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]

    return Intervals(
        pr_auc=interval(samples["pr_auc"]),
        precision=interval(samples["precision"]),
        recall=interval(samples["recall"]),
    )


def cost_curve(
    labels: np.ndarray,
    scores: np.ndarray,
    amounts: np.ndarray,
    review_cost: float,
    target_rate: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Expected cost per transaction of flagging `score >= t`, for every candidate t.

    A missed fraud costs its amount; every flagged transaction costs `review_cost` (someone looks
    at it, fraud or not). The unit is the currency of `Amount` per transaction scored. With
    `target_rate`, non-fraud rows are re-weighted to that fraud rate (prevalence_weights), so it
    is the cost per live transaction.

    Returns (thresholds, costs), thresholds strictly decreasing: first, if every score is below
    1, the next float above the highest score (flags nothing, yet is still a valid probability
    threshold), then every distinct score.
    """
    weights = prevalence_weights(labels, target_rate)
    weights = np.ones(len(labels)) if weights is None else weights
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    caught = np.cumsum(np.where(labels[order] == 1, amounts[order] * weights[order], 0.0))
    flagged = np.cumsum(weights[order])
    # Only the last row of each run of equal scores is a distinct threshold.
    last_of_run = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    total_fraud = caught[-1]
    costs = (total_fraud - caught[last_of_run]) + review_cost * flagged[last_of_run]
    thresholds = sorted_scores[last_of_run].astype(np.float64)
    if thresholds[0] < 1.0:
        thresholds = np.r_[np.nextafter(thresholds[0], np.inf), thresholds]
        costs = np.r_[total_fraud, costs]
    return thresholds, costs / weights.sum()


def expected_cost(
    labels: np.ndarray,
    scores: np.ndarray,
    amounts: np.ndarray,
    threshold: float,
    review_cost: float,
    target_rate: float | None = None,
) -> float:
    """Expected cost per transaction of flagging `score >= threshold` (unit: see cost_curve)."""
    weights = prevalence_weights(labels, target_rate)
    weights = np.ones(len(labels)) if weights is None else weights
    flagged = scores >= threshold
    missed = (labels == 1) & ~flagged
    total = np.sum(weights * amounts * missed) + review_cost * np.sum(weights * flagged)
    return float(total / weights.sum())


def choose_threshold(
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    strategy: ThresholdStrategy = "best_f1",
    target_precision: float | None = None,
    target_rate: float | None = None,
    amounts: np.ndarray | None = None,
    review_cost: float = DEFAULT_REVIEW_COST,
) -> float:
    """Pick a threshold on validation scores.

    best_f1: the threshold with the highest F1. target_precision: the lowest threshold (so the
    highest recall) whose precision reaches `target_precision`, or the most precise one if none
    does. min_cost: the lowest expected cost (see cost_curve; needs `amounts`), the highest
    such threshold on a tie. Always a threshold in [0, 1].
    """
    if strategy == "min_cost":
        if amounts is None:
            raise ValueError("strategy 'min_cost' needs the transactions' amounts")
        thresholds, costs = cost_curve(labels, scores, amounts, review_cost, target_rate)
        return float(thresholds[int(np.argmin(costs))])
    weights = prevalence_weights(labels, target_rate)
    precision, recall, thresholds = precision_recall_curve(labels, scores, sample_weight=weights)
    # The curve's last point (precision 1, recall 0) has no threshold.
    precision, recall = precision[:-1], recall[:-1]
    if strategy == "best_f1":
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
        return float(thresholds[int(np.argmax(f1))])
    if strategy == "target_precision":
        if target_precision is None or not 0.0 < target_precision <= 1.0:
            raise ValueError("strategy 'target_precision' needs target_precision in (0, 1]")
        reaching = np.flatnonzero(precision >= target_precision)
        if reaching.size == 0:
            return float(thresholds[int(np.argmax(precision))])
        return float(thresholds[reaching[0]])
    raise ValueError(f"Unknown threshold strategy {strategy!r}")
