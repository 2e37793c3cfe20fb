import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from training.evaluate import (
    MIN_TEST_FRAUDS,
    choose_threshold,
    cost_curve,
    evaluate,
    expected_cost,
    ranking_intervals,
    ranking_metrics,
    small_test_warning,
)
from training.weights import production_weights

LABELS = np.array([0, 0, 0, 0, 0, 0, 1, 0, 1, 1])
SCORES = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])


def test_best_f1_threshold() -> None:
    # Flagging >= 0.6 catches all 3 frauds with 1 false alarm: F1 = 0.857, the best.
    assert choose_threshold(LABELS, SCORES, strategy="best_f1") == pytest.approx(0.6)


def test_target_precision_takes_the_lowest_threshold_that_reaches_it() -> None:
    assert choose_threshold(
        LABELS, SCORES, strategy="target_precision", target_precision=0.75
    ) == pytest.approx(0.6)
    assert choose_threshold(
        LABELS, SCORES, strategy="target_precision", target_precision=1.0
    ) == pytest.approx(0.8)


def test_target_precision_needs_a_target() -> None:
    with pytest.raises(ValueError, match="target_precision"):
        choose_threshold(LABELS, SCORES, strategy="target_precision")


def test_metrics_at_a_threshold() -> None:
    metrics = evaluate(LABELS, SCORES, SCORES >= 0.6, cut=0.6)
    assert metrics["confusion_matrix"] == {"tn": 6, "fp": 1, "fn": 0, "tp": 3}
    assert metrics["precision"] == pytest.approx(0.75)
    assert metrics["recall"] == pytest.approx(1.0)
    assert metrics["f1"] == pytest.approx(6 / 7)
    assert 0 < metrics["pr_auc"] <= 1 and 0 < metrics["roc_auc"] <= 1


def test_precision_at_production_rate_counts_false_alarms_as_live_traffic_would() -> None:
    # At a 1 % fraud rate the one false alarm stands for many more live non-fraud rows.
    weights = production_weights(LABELS, 0.01)
    metrics = evaluate(LABELS, SCORES, SCORES >= 0.6, cut=0.6, weights=weights, rate=0.01)
    fp = metrics["confusion_matrix"]["fp"]
    assert fp == pytest.approx(3 * 0.99 / 0.01 / 7)
    assert metrics["precision"] == pytest.approx(3 / (3 + fp))
    assert metrics["recall"] == pytest.approx(1.0)
    assert metrics["alerts_per_10k"] == pytest.approx((3 + fp) / (3 / 0.01) * 10_000)
    assert metrics["roc_auc"] == pytest.approx(
        evaluate(LABELS, SCORES, SCORES >= 0.6, cut=0.6)["roc_auc"]
    )
    # One false alarm among 7 legitimate rows: precision's interval is far from degenerate.
    low, high = metrics["ci95"]["precision"]
    assert low < metrics["precision"] <= high


def test_cost_curve_on_a_hand_computed_example() -> None:
    labels = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.3, 0.1])
    amounts = np.array([100.0, 50.0, 20.0, 10.0])
    thresholds, costs = cost_curve(labels, scores, amounts, review_cost=5.0)
    # First "flag nothing": just above the top score, so still a valid threshold.
    np.testing.assert_array_equal(thresholds, [np.nextafter(0.9, 1), 0.9, 0.8, 0.3, 0.1])
    # Flag nothing: miss 120; t=0.9: miss the 20 fraud, review 1 -> 25; t=0.8: 20 + 10;
    # t=0.3: 0 + 15; t=0.1: 20. Per transaction (4 rows):
    np.testing.assert_allclose(costs, np.array([120, 25, 30, 15, 20]) / 4)
    threshold = choose_threshold(
        labels, scores, strategy="min_cost", amounts=amounts, review_cost=5.0
    )
    assert threshold == 0.3
    for candidate, curve_cost in zip(thresholds, costs, strict=True):
        flagged = scores >= candidate
        assert expected_cost(labels, flagged, amounts, 5.0) == pytest.approx(curve_cost)


def test_cost_at_the_production_rate_counts_each_false_alarm_as_many_live_ones() -> None:
    labels = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.3, 0.1])
    amounts = np.array([100.0, 50.0, 20.0, 10.0])
    # At a 10 % fraud rate the 2 non-fraud rows stand for 18 transactions (weight 9 each).
    weights = production_weights(labels, 0.1)
    thresholds, costs = cost_curve(labels, scores, amounts, review_cost=5.0, weights=weights)
    # t=0.8: miss 20, review 1 fraud + 1 non-fraud of weight 9 -> 70, over 20 transactions.
    assert costs[thresholds == 0.8][0] == pytest.approx((20 + 5 * (1 + 9)) / 20)
    assert expected_cost(labels, scores >= 0.8, amounts, 5.0, weights) == pytest.approx(
        costs[thresholds == 0.8][0]
    )


def test_min_cost_may_flag_nothing_and_still_gives_a_probability() -> None:
    # Reviews cost more than any fraud: the cheapest rule flags nothing.
    labels, scores, amounts = np.array([1, 0]), np.array([0.7, 0.2]), np.array([3.0, 1.0])
    threshold = choose_threshold(
        labels, scores, strategy="min_cost", amounts=amounts, review_cost=50.0
    )
    assert 0.7 < threshold <= 1.0
    assert not np.any(scores >= threshold)
    # Scores of exactly 1 leave no threshold in [0, 1] above them: no such candidate.
    thresholds, _ = cost_curve(np.array([1, 0]), np.array([1.0, 0.2]), amounts, 50.0)
    assert thresholds.max() == 1.0


def test_min_cost_beats_best_f1_on_expected_cost() -> None:
    """Frauds vary in amount; the cost-aware threshold catches the expensive ones."""
    rng = np.random.default_rng(11)
    n = 20_000
    labels = (rng.random(n) < 0.02).astype(int)
    amounts = rng.lognormal(3.5, 1.2, size=n)
    # A noisy score, a little higher for expensive frauds (as real fraud often is).
    scores = np.clip(rng.normal(0.2 + 0.35 * labels, 0.15) + 0.02 * np.log(amounts), 0, 1)
    validation, test = slice(0, n // 2), slice(n // 2, n)
    chosen = {
        strategy: choose_threshold(
            labels[validation],
            scores[validation],
            strategy=strategy,
            amounts=amounts[validation],
            review_cost=2.0,
        )
        for strategy in ("best_f1", "min_cost")
    }

    def cost(threshold: float) -> float:
        return expected_cost(labels[test], scores[test] >= threshold, amounts[test], 2.0)

    assert cost(chosen["min_cost"]) < cost(chosen["best_f1"])


def test_ranking_metrics_are_scikit_learn_s_for_every_resample_at_once() -> None:
    rng = np.random.default_rng(4)
    labels = (rng.random(2_000) < 0.05).astype(int)
    scores = np.round(rng.random(2_000) * 0.5 + 0.4 * labels, 2)  # many ties
    weights = rng.random((3, 2_000)) * 10
    pr_auc, roc_auc = ranking_metrics(labels, scores, weights)
    for row in range(3):
        w = weights[row]
        expected = average_precision_score(labels, scores, sample_weight=w)
        assert pr_auc[row] == pytest.approx(expected)
        assert roc_auc[row] == pytest.approx(roc_auc_score(labels, scores, sample_weight=w))


def test_ranking_intervals_hold_the_estimate_and_narrow_with_more_frauds() -> None:
    rng = np.random.default_rng(3)

    def scored(frauds: int, normals: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.r_[np.ones(frauds), np.zeros(normals)].astype(int)
        scores = np.clip(rng.normal(0.3 + 0.4 * labels, 0.2), 0, 1)
        return labels, scores

    widths = []
    for frauds in (8, 400):
        labels, scores = scored(frauds, 20 * frauds)
        point = evaluate(labels, scores, scores >= 0.5, cut=0.5, intervals=False)
        intervals = ranking_intervals(labels, scores, None, resamples=300, seed=1)
        for name, (low, high) in intervals.items():
            assert low <= point[name] <= high, name  # type: ignore[literal-required]
        widths.append(intervals["pr_auc"][1] - intervals["pr_auc"][0])
    assert widths[1] < widths[0] / 3  # 50 times the frauds: a much narrower interval
    # The same seed gives the same intervals.
    assert ranking_intervals(labels, scores, None, resamples=50, seed=2) == ranking_intervals(
        labels, scores, None, resamples=50, seed=2
    )


def test_few_test_frauds_get_a_plain_warning() -> None:
    warning = small_test_warning(np.r_[np.ones(7), np.zeros(500)])
    assert warning is not None and "only 7 frauds" in warning and "uncertain" in warning
    assert small_test_warning(np.r_[np.ones(MIN_TEST_FRAUDS), np.zeros(500)]) is None
