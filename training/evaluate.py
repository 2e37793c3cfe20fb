"""Evaluation for rare-event scoring, and the choice of a fixed decision threshold.

Held-out data here may hold far more fraud than live traffic (the bundled real subset: 2.5 %
against 0.172 %), and its rows need not be a uniform sample (training.weights). Every metric "at
the production rate" therefore weighs each row by the live transactions it stands for
(`production_weights`: design weights, legitimate rows scaled to the production fraud rate).

Intervals: exact ones on rates, live precision derived from them (training.intervals); PR-AUC and
ROC-AUC over bootstrap resamples of the rows, frauds and legitimate rows resampled separately.
"""

from typing import Any, NotRequired, TypedDict

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    roc_auc_score,
)

from training.intervals import decision_intervals, percentile_interval, rate_interval
from training.options import DEFAULT_REVIEW_COST, ThresholdStrategy


class ConfusionCounts(TypedDict):
    """Weighted counts when the metrics are at a target rate: "per this many live transactions"."""

    tn: float
    fp: float
    fn: float
    tp: float


class Intervals(TypedDict):
    """95 % intervals, [low, high]: exact for recall and the false-positive rate, derived from
    them for precision and the alert rate, bootstrap for PR-AUC and ROC-AUC."""

    pr_auc: list[float]
    roc_auc: list[float]
    precision: list[float]
    recall: list[float]
    false_positive_rate: list[float]
    alerts_per_10k: list[float]


class SplitMetrics(TypedDict):
    rows: int
    frauds: int
    fraud_rate: float
    pr_auc: float
    roc_auc: float
    threshold: float  # the decision rule's cut (see fraud_model.decision)
    precision: float
    recall: float
    f1: float
    false_positive_rate: float
    alerts_per_10k: float
    confusion_matrix: ConfusionCounts
    ci95: NotRequired[Intervals]


class TrainingMetrics(TypedDict):
    """The `metrics` of an artifact's metadata.json, as training writes them. `test` and
    `test_at_production_rate` are the shipped decision rule on the headline split's test rows."""

    test: SplitMetrics
    test_at_production_rate: SplitMetrics
    expected_cost_per_transaction: float
    review_cost: float
    train_seconds: float
    split_rows: dict[str, int]
    headline_split: NotRequired[str]
    decision_rule: NotRequired[str]
    splits: NotRequired[dict[str, Any]]
    calibration: NotRequired[dict[str, Any]]
    stability: NotRequired[dict[str, Any]]
    warnings: NotRequired[list[str]]


def evaluate(
    labels: np.ndarray,
    scores: np.ndarray,
    flagged: np.ndarray,
    *,
    cut: float,
    weights: np.ndarray | None = None,
    design: np.ndarray | None = None,
    rate: float | None = None,
    intervals: bool = True,
    seed: int = 0,
) -> SplitMetrics:
    """PR-AUC, ROC-AUC and the decision metrics of `flagged` (the rule's decisions, whose cut
    is `cut`). `weights`: production weights (None: the rows as they are); `design`: the design
    weights the exact intervals use; `rate`: the fraud share the weights give (None: the rows')."""
    fraud_rate = float(labels.mean()) if rate is None else rate
    matrix = confusion_matrix(labels, flagged, labels=[0, 1], sample_weight=weights)
    (tn, fp), (fn, tp) = matrix
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    metrics: SplitMetrics = {
        "rows": len(labels),
        "frauds": int(labels.sum()),
        "fraud_rate": fraud_rate,
        "pr_auc": float(average_precision_score(labels, scores, sample_weight=weights)),
        "roc_auc": float(roc_auc_score(labels, scores, sample_weight=weights)),
        "threshold": float(cut),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "false_positive_rate": float(fp / (fp + tn)) if fp + tn else 0.0,
        "alerts_per_10k": float((tp + fp) / (tn + fp + fn + tp) * 10_000),
        # Counts are weighted at the production rate: "per this many live transactions".
        "confusion_matrix": {"tn": float(tn), "fp": float(fp), "fn": float(fn), "tp": float(tp)},
    }
    if intervals:
        metrics["ci95"] = split_intervals(
            labels, scores, flagged, weights=weights, design=design, rate=fraud_rate, seed=seed
        )
    return metrics


def split_intervals(
    labels: np.ndarray,
    scores: np.ndarray,
    flagged: np.ndarray,
    *,
    weights: np.ndarray | None,
    design: np.ndarray | None,
    rate: float,
    resamples: int = 400,
    seed: int = 0,
) -> Intervals:
    exact = decision_intervals(labels, flagged, design, rate)
    ranking = ranking_intervals(labels, scores, weights, resamples=resamples, seed=seed)
    design = np.ones(len(labels)) if design is None else design
    fraud = labels == 1
    return Intervals(
        pr_auc=ranking["pr_auc"],
        roc_auc=ranking["roc_auc"],
        precision=[exact.precision[1], exact.precision[2]],
        # Recall and the false-positive rate on their own at 95 % (the derived ones above take
        # each at 97.5 %).
        recall=rate_interval(flagged[fraud], design[fraud]).as_list(),
        false_positive_rate=rate_interval(flagged[~fraud], design[~fraud]).as_list(),
        alerts_per_10k=[exact.alert_rate[1] * 10_000, exact.alert_rate[2] * 10_000],
    )


def ranking_intervals(
    labels: np.ndarray,
    scores: np.ndarray,
    weights: np.ndarray | None,
    *,
    resamples: int = 400,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Percentile intervals of PR-AUC and ROC-AUC over bootstrap resamples of the rows. Frauds
    and legitimate rows are resampled separately (as counts of draws), and each class's weights
    rescaled to its total, so every resample keeps the fraud rate the weights give."""
    rng = np.random.default_rng(seed)
    weights = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64)
    fraud = labels == 1
    counts = np.zeros((resamples, len(labels)))
    for members in (np.flatnonzero(fraud), np.flatnonzero(~fraud)):
        drawn = rng.multinomial(len(members), np.full(len(members), 1 / len(members)), resamples)
        resampled = drawn * weights[members]
        counts[:, members] = resampled * weights[members].sum() / resampled.sum(axis=1)[:, None]
    pr_auc, roc_auc = ranking_metrics(labels, scores, counts)
    return {
        "pr_auc": list(percentile_interval(pr_auc)),
        "roc_auc": list(percentile_interval(roc_auc)),
    }


def ranking_metrics(
    labels: np.ndarray, scores: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted average precision and ROC-AUC (as scikit-learn defines them, ties included) for
    each row of `weights` (resamples x rows), all at once."""
    order = np.argsort(-scores, kind="stable")
    ordered = scores[order]
    last_of_run = np.r_[ordered[1:] != ordered[:-1], True]
    fraud = labels[order] == 1
    w = weights[:, order]
    true_positives = np.cumsum(np.where(fraud, w, 0.0), axis=1)[:, last_of_run]
    false_positives = np.cumsum(np.where(fraud, 0.0, w), axis=1)[:, last_of_run]
    positives, negatives = true_positives[:, -1:], false_positives[:, -1:]
    recall = true_positives / positives
    flagged = true_positives + false_positives
    precision = np.divide(true_positives, flagged, out=np.ones_like(flagged), where=flagged > 0)
    steps = np.diff(np.concatenate([np.zeros((len(w), 1)), recall], axis=1), axis=1)
    average_precision = np.sum(steps * precision, axis=1)
    tpr = np.concatenate([np.zeros((len(w), 1)), recall], axis=1)
    fpr = np.concatenate([np.zeros((len(w), 1)), false_positives / negatives], axis=1)
    roc_auc = np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2, axis=1)
    return average_precision, roc_auc


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


def cost_curve(
    labels: np.ndarray,
    scores: np.ndarray,
    amounts: np.ndarray,
    review_cost: float,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Expected cost per transaction of flagging `score >= t`, for every candidate t.

    A missed fraud costs its amount; every flagged transaction costs `review_cost` (someone looks
    at it, fraud or not). The unit is the currency of `Amount` per transaction scored; with
    production `weights`, per live transaction.

    Returns (thresholds, costs), thresholds strictly decreasing: first, if every score is below
    1, the next float above the highest score (flags nothing, yet is still a valid probability
    threshold), then every distinct score.
    """
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
    flagged: np.ndarray,
    amounts: np.ndarray,
    review_cost: float,
    weights: np.ndarray | None = None,
) -> float:
    """Expected cost per transaction of the decisions `flagged` (unit: see cost_curve)."""
    weights = np.ones(len(labels)) if weights is None else weights
    missed = (labels == 1) & ~flagged
    total = np.sum(weights * amounts * missed) + review_cost * np.sum(weights * flagged)
    return float(total / weights.sum())


def choose_threshold(
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    strategy: ThresholdStrategy = "best_f1",
    target_precision: float | None = None,
    weights: np.ndarray | None = None,
    amounts: np.ndarray | None = None,
    review_cost: float = DEFAULT_REVIEW_COST,
) -> float:
    """Pick a fixed threshold on validation scores (`weights`: production weights).

    best_f1: the threshold with the highest F1. target_precision: the lowest threshold (so the
    highest recall) whose precision reaches `target_precision`, or the most precise one if none
    does. min_cost: the lowest expected cost (see cost_curve; needs `amounts`), the highest
    such threshold on a tie. Always a threshold in [0, 1].
    """
    if strategy == "min_cost":
        if amounts is None:
            raise ValueError("strategy 'min_cost' needs the transactions' amounts")
        thresholds, costs = cost_curve(labels, scores, amounts, review_cost, weights)
        return float(thresholds[int(np.argmin(costs))])
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
