"""Exact intervals: Clopper-Pearson on rates, live precision derived from recall and the
false-positive rate, and none of them degenerate."""

import numpy as np
import pytest
from scipy.stats import binomtest

from training.intervals import (
    clopper_pearson,
    decision_intervals,
    effective_size,
    precision_at_rate,
    rate_interval,
)


@pytest.mark.parametrize(("events", "trials"), [(0, 3803), (7, 98), (98, 98), (1, 2)])
def test_clopper_pearson_is_scipy_s_exact_interval(events: int, trials: int) -> None:
    expected = binomtest(events, trials).proportion_ci(confidence_level=0.95, method="exact")
    assert clopper_pearson(events, trials) == pytest.approx((expected.low, expected.high))


def test_no_event_still_bounds_the_rate_by_the_closed_form() -> None:
    low, high = clopper_pearson(0, 3803)
    assert low == 0.0
    assert high == pytest.approx(1 - 0.025 ** (1 / 3803))
    assert high == pytest.approx(9.7e-4, abs=5e-6)


def test_zero_false_positives_give_an_honest_precision_interval_by_the_closed_form() -> None:
    """71 of 98 frauds flagged and none of 3,803 legitimate rows, at 0.172 % fraud: precision
    is 1, but its lower bound is what the recall's lower end and the false-positive rate's
    upper end allow, each at 97.5 %."""
    labels = np.r_[np.ones(98), np.zeros(3803)].astype(int)
    flagged = np.r_[np.ones(71), np.zeros(27), np.zeros(3803)].astype(bool)
    rate = 0.00172
    result = decision_intervals(labels, flagged, None, rate)
    recall_low = binomtest(71, 98).proportion_ci(confidence_level=0.975, method="exact").low
    fpr_high = 1 - 0.0125 ** (1 / 3803)
    closed_form = rate * recall_low / (rate * recall_low + (1 - rate) * fpr_high)
    estimate, low, high = result.precision
    assert estimate == 1.0 and high == 1.0
    assert low == pytest.approx(closed_form)
    assert 0.4 < low < 0.6  # far from the degenerate [1, 1]
    assert result.false_positive_rate.high == pytest.approx(fpr_high)


def test_precision_follows_the_formula_at_the_production_rate() -> None:
    assert precision_at_rate(0.8, 0.001, 0.5) == pytest.approx(0.8 / 0.801)
    assert precision_at_rate(0.0, 0.0, 0.01) == 0.0


def test_equal_weights_give_the_plain_interval_and_unequal_ones_a_wider_one() -> None:
    hits = np.r_[np.ones(5), np.zeros(995)].astype(bool)
    plain = rate_interval(hits)
    assert (plain.low, plain.high) == pytest.approx(clopper_pearson(5, 1000))
    assert rate_interval(hits, np.full(1000, 28.9)).high == pytest.approx(plain.high)
    # Half the rows weigh 29 times the others: fewer rows' worth of information.
    uneven = np.r_[np.ones(500), np.full(500, 29.0)]
    assert effective_size(uneven) < 600
    spread = np.zeros(1000, dtype=bool)
    spread[::100] = True  # as many hits among the light rows as among the heavy ones
    weighted = rate_interval(spread, uneven)
    as_if_simple = clopper_pearson(weighted.estimate * 1000, 1000)
    assert weighted.high - weighted.low > as_if_simple[1] - as_if_simple[0]


def test_no_interval_is_degenerate_at_either_end() -> None:
    for events, trials in ((0, 10), (10, 10), (0, 1), (1, 1), (3, 7)):
        low, high = clopper_pearson(events, trials)
        assert 0 <= low < high <= 1
    labels = np.r_[np.ones(10), np.zeros(50)].astype(int)
    for flagged in (np.ones(60, bool), np.zeros(60, bool), labels.astype(bool)):
        result = decision_intervals(labels, flagged, None, 0.01)
        for _, low, high in (result.precision, result.alert_rate):
            assert low < high
