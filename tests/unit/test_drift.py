"""The PSI of live scores against the reference bins."""

import itertools
import subprocess
import sys

import numpy as np
import pytest

from fraud_model.drift import bin_counts, population_stability_index, reference_bins
from tests.helpers import PROJECT_ROOT


@pytest.fixture
def skewed_scores() -> np.ndarray:
    # Like served fraud scores: most mass near zero, a long tail.
    return np.random.default_rng(0).beta(0.3, 40, size=20_000)


def test_reference_bins_are_deciles_plus_decades(skewed_scores: np.ndarray) -> None:
    edges, shares = reference_bins(skewed_scores)
    assert edges == sorted(edges) and {1e-5, 1e-4, 1e-3, 1e-2, 1e-1} <= set(edges)
    assert len(edges) == 9 + 5
    assert sum(shares) == pytest.approx(1.0)
    # Each decile holds about a tenth of the scores (a decade edge may split one in two).
    deciles = np.quantile(skewed_scores, np.linspace(0.1, 0.9, 9))
    assert np.abs(np.asarray([e for e in edges if e not in (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)])
                  - deciles).max() < 1e-3  # fmt: skip


def test_weights_move_the_reference_to_the_production_rate() -> None:
    scores = np.r_[np.full(900, 0.001), np.full(100, 0.5)]  # 10 % "fraud" scores
    weights = np.r_[np.full(900, 9.0), np.ones(100)]  # re-weighted to about 1 %
    _, shares = reference_bins(scores, weights)
    assert shares[-1] == pytest.approx(100 / 8200)


def test_the_same_distribution_is_stable(skewed_scores: np.ndarray) -> None:
    edges, shares = reference_bins(skewed_scores[:10_000])
    live = bin_counts(edges, skewed_scores[10_000:])
    assert population_stability_index(shares, live) < 0.01


def test_a_shifted_distribution_is_flagged(skewed_scores: np.ndarray) -> None:
    edges, shares = reference_bins(skewed_scores)
    live = bin_counts(edges, skewed_scores * 5)  # every score five times higher
    assert population_stability_index(shares, live) > 0.25


def test_empty_bins_and_no_traffic_stay_finite(skewed_scores: np.ndarray) -> None:
    edges, shares = reference_bins(skewed_scores)
    all_in_one_bin = bin_counts(edges, np.zeros(100))
    assert np.isfinite(population_stability_index(shares, all_in_one_bin))
    assert population_stability_index(shares, np.zeros(len(shares))) == 0.0


def test_tied_scores_merge_their_edges() -> None:
    edges, shares = reference_bins(np.array([0.0] * 90 + [0.5] * 10))
    assert all(a < b for a, b in itertools.pairwise(edges))
    assert sum(shares) == pytest.approx(1.0)


def test_live_counts_in_the_reference_proportions_give_exactly_zero() -> None:
    shares = [0.7, 0.2, 0.09, 0.01]
    assert population_stability_index(shares, np.array([700, 200, 90, 10])) == pytest.approx(
        0.0, abs=1e-12
    )
    assert population_stability_index(shares, [1400, 400, 180, 20]) == pytest.approx(
        0.0, abs=1e-12
    )  # plain lists work too


def test_an_empty_bin_counts_as_epsilon_on_a_hand_computed_example() -> None:
    # All live scores in the first bin; the second bin is empty live.
    psi = population_stability_index([0.5, 0.5], np.array([100, 0]), epsilon=1e-4)
    expected = (1.0 - 0.5) * np.log(1.0 / 0.5) + (1e-4 - 0.5) * np.log(1e-4 / 0.5)
    assert psi == pytest.approx(expected)
    assert psi > 0.25
    # A bin empty on both sides adds nothing.
    assert population_stability_index([0.5, 0.5, 0.0], np.array([50, 50, 0])) == pytest.approx(
        0.0, abs=1e-12
    )


def test_bins_that_do_not_match_the_reference_are_an_error() -> None:
    with pytest.raises(ValueError, match="3 live bins against 2 reference bins"):
        population_stability_index([0.5, 0.5], np.array([1, 2, 3]))


def test_drift_imports_neither_sklearn_nor_matplotlib() -> None:
    """The serving side imports it beside onnxruntime only."""
    code = (
        "import sys, fraud_model.drift, fraud_model.explain; "
        "print(sorted({'sklearn', 'matplotlib'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT
    )
    assert result.stdout.strip() == "[]"
