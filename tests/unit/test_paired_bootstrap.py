"""The paired bootstrap of training.compare: a known difference is recovered and covered, two
identical models differ by exactly nothing, and the alert budget's recall counts whole runs."""

import numpy as np
import pytest

from training.paired_bootstrap import (
    Difference,
    ModelScores,
    paired_bootstrap,
    recall_at_budget,
    resample_weights,
    verdict,
)

RATE = 0.02


def expected_log_loss(truth: np.ndarray, predicted: np.ndarray) -> float:
    """The log loss a model predicting `predicted` has on rows whose fraud probability is
    `truth`, in expectation over their labels."""
    return float(np.mean(-(truth * np.log(predicted) + (1 - truth) * np.log1p(-predicted))))


def population(rows: int, seed: int) -> np.ndarray:
    """Each row's true fraud probability: a logistic score, about RATE on average."""
    score = np.random.default_rng(seed).normal(size=rows)
    truth: np.ndarray = 1 / (1 + np.exp(-(np.log(RATE / (1 - RATE)) - 0.8 + 1.5 * score)))
    return truth


def models_on(truth: np.ndarray, labels: np.ndarray) -> tuple[ModelScores, ModelScores]:
    """A: the true probabilities; B: three times too high (the same ranking, worse log loss)."""
    overconfident = np.clip(3 * truth, 0, 0.999)
    return (
        ModelScores(truth, truth >= 0.1),
        ModelScores(overconfident, overconfident >= 0.1),
    )


def compare(
    truth: np.ndarray, labels: np.ndarray, a: ModelScores, b: ModelScores, seed: int = 0
) -> dict[str, Difference]:
    amounts = np.full(len(labels), 100.0)
    differences = paired_bootstrap(
        labels, amounts, np.ones(len(labels)), a, b, review_cost=5.0, alerts_per_10k=200.0,
        resamples=500, seed=seed,
    )  # fmt: skip
    return {difference.metric: difference for difference in differences}


def test_a_known_log_loss_difference_is_recovered_and_covered() -> None:
    # The difference over a million rows, in expectation: the truth a sample estimates.
    truth_population = population(1_000_000, seed=1)
    a, b = models_on(truth_population, truth_population)
    known = expected_log_loss(truth_population, b.probabilities) - expected_log_loss(
        truth_population, a.probabilities
    )
    # A test set of 5,000 rows of that population, their labels drawn from the truth.
    truth = population(5_000, seed=2)
    labels = (np.random.default_rng(3).random(len(truth)) < truth).astype(np.int64)
    a, b = models_on(truth, labels)
    log_loss = compare(truth, labels, a, b)["log_loss"]
    assert known > 0.005  # B is worse by a clear margin
    assert log_loss.low <= known <= log_loss.high
    assert log_loss.low > 0  # and the interval says so
    assert log_loss.difference == pytest.approx(known, rel=0.3)
    assert log_loss.winner == "A"


def test_identical_models_differ_by_exactly_zero_on_every_metric() -> None:
    truth = population(3_000, seed=4)
    labels = (np.random.default_rng(5).random(len(truth)) < truth).astype(np.int64)
    a, _ = models_on(truth, labels)
    for difference in compare(truth, labels, a, a).values():
        assert difference.difference == difference.low == difference.high == 0.0
        assert difference.winner == "tie"
    assert verdict(list(compare(truth, labels, a, a).values())).startswith("tie")


def test_two_models_of_equal_quality_give_an_interval_around_zero() -> None:
    """A and B each see the truth through noise of the same size: neither is better."""
    truth = population(5_000, seed=6)
    labels = (np.random.default_rng(7).random(len(truth)) < truth).astype(np.int64)
    noise = np.random.default_rng(8).normal(scale=0.3, size=(2, len(truth)))
    logit = np.log(truth / (1 - truth))
    a, b = (ModelScores(p, p >= 0.1) for p in 1 / (1 + np.exp(-(logit + noise))))
    differences = compare(truth, labels, a, b)
    for name in ("log_loss", "pr_auc", "recall_at_alert_budget"):
        assert differences[name].low < 0 < differences[name].high, name


def test_resamples_keep_each_class_total() -> None:
    labels = np.array([1, 1, 0, 0, 0, 0])
    weights = np.array([1.0, 1.0, 50.0, 50.0, 10.0, 10.0])
    drawn = resample_weights(labels, weights, resamples=200, seed=0)
    np.testing.assert_allclose(drawn[:, labels == 1].sum(axis=1), 2.0)
    np.testing.assert_allclose(drawn[:, labels == 0].sum(axis=1), 120.0)


def test_recall_at_budget_flags_the_top_within_the_budget_and_runs_whole() -> None:
    labels = np.array([1, 0, 1, 0, 1, 0, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    w = np.ones((1, 10))
    # 3,000 per 10,000 of 10 rows: the top 3, which hold 2 of the 3 frauds.
    assert recall_at_budget(labels, scores, 3_000, w)[0] == pytest.approx(2 / 3)
    # Rows 3 and 4 tie: the run would cross the budget of 4 rows, so neither is flagged.
    tied = scores.copy()
    tied[4] = tied[3]
    assert recall_at_budget(labels, tied, 4_000, w)[0] == pytest.approx(2 / 3)
    assert recall_at_budget(labels, tied, 5_000, w)[0] == pytest.approx(1.0)
