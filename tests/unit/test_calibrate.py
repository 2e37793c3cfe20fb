import numpy as np
import pytest
from scipy.stats import norm

from training.calibrate import fit_training_prior, weighted_mean_probability


def sample(rows: int, fraud_rate: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """fraud ~ N(2, 1), normal ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    labels = (rng.uniform(size=rows) < fraud_rate).astype(np.int64)
    return rng.normal(2.0 * labels, 1.0), labels


def posterior(x: np.ndarray, prior: float) -> np.ndarray:
    fraud, normal = norm.pdf(x, 2, 1) * prior, norm.pdf(x, 0, 1) * (1 - prior)
    return fraud / (fraud + normal)


def test_calibrated_scores_give_back_the_prior_they_were_computed_at() -> None:
    x, labels = sample(200_000, 0.05, seed=0)
    fitted = fit_training_prior(posterior(x, 0.5), labels, 0.005, fallback=0.9)
    assert fitted == pytest.approx(0.5, rel=0.05)


def test_overconfident_scores_get_the_prior_that_makes_them_add_up_to_the_frauds() -> None:
    x, labels = sample(50_000, 0.05, seed=1)
    # Sharper than the truth, as a forest of nearly pure leaves is.
    overconfident = posterior(3 * x - 2, 0.5)
    fitted = fit_training_prior(overconfident, labels, 0.005, fallback=0.5)
    assert fitted != pytest.approx(0.5, rel=0.1)
    mean = weighted_mean_probability(overconfident, labels, fitted, 0.005)
    assert mean == pytest.approx(0.005, rel=1e-6)
    nominal = weighted_mean_probability(overconfident, labels, 0.5, 0.005)
    assert abs(nominal - 0.005) > 0.1 * 0.005


def test_one_class_only_falls_back_to_the_nominal_prior() -> None:
    scores = np.array([0.1, 0.2, 0.3])
    assert fit_training_prior(scores, np.zeros(3, dtype=np.int64), 0.005, fallback=0.5) == 0.5


def test_scores_no_prior_can_correct_fall_back_to_the_nominal_prior() -> None:
    # A score of exactly 1 stays 1 under any prior: with normal rows at 1, the corrected mean
    # cannot come down to the production rate.
    scores = np.array([1.0, 1.0, 1.0, 0.0])
    labels = np.array([1, 0, 0, 0])
    assert fit_training_prior(scores, labels, 0.005, fallback=0.5) == 0.5
