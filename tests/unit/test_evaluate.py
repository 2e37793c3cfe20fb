import numpy as np
import pytest

from training.evaluate import choose_threshold, evaluate, prevalence_weights

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
    metrics = evaluate(LABELS, SCORES, 0.6)
    assert metrics["confusion_matrix"] == {"tn": 6, "fp": 1, "fn": 0, "tp": 3}
    assert metrics["precision"] == pytest.approx(0.75)
    assert metrics["recall"] == pytest.approx(1.0)
    assert metrics["f1"] == pytest.approx(6 / 7)
    assert 0 < metrics["pr_auc"] <= 1 and 0 < metrics["roc_auc"] <= 1


def test_prevalence_weights_reach_the_target_rate() -> None:
    weights = prevalence_weights(LABELS, 0.01)
    assert weights[LABELS == 1].sum() / weights.sum() == pytest.approx(0.01)


def test_precision_at_production_rate_counts_false_alarms_as_live_traffic_would() -> None:
    # At a 1 % fraud rate the one false alarm stands for many more live non-fraud rows.
    metrics = evaluate(LABELS, SCORES, 0.6, target_rate=0.01)
    fp = metrics["confusion_matrix"]["fp"]
    assert fp == pytest.approx(3 * 0.99 / 0.01 / 7)
    assert metrics["precision"] == pytest.approx(3 / (3 + fp))
    assert metrics["recall"] == pytest.approx(1.0)
    assert metrics["roc_auc"] == pytest.approx(evaluate(LABELS, SCORES, 0.6)["roc_auc"])
