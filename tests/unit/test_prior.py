import numpy as np
import pytest
from scipy.stats import norm

from fraud_model.prior import adjust_to_prior


def posterior(x: np.ndarray, prior: float) -> np.ndarray:
    """Exact P(fraud | x) when fraud ~ N(2, 1), normal ~ N(0, 1) and fraud has share `prior`."""
    fraud, normal = norm.pdf(x, 2, 1) * prior, norm.pdf(x, 0, 1) * (1 - prior)
    return fraud / (fraud + normal)


def test_adjustment_recovers_the_exact_posterior_at_the_new_prior() -> None:
    x = np.linspace(-4, 6, 201)
    adjusted = adjust_to_prior(posterior(x, 0.5), training_prior=0.5, target_prior=0.00172)
    np.testing.assert_allclose(adjusted, posterior(x, 0.00172), rtol=1e-9, atol=1e-15)


def test_same_prior_is_identity_and_ends_are_fixed() -> None:
    p = np.array([0.0, 0.2, 0.5, 0.9, 1.0])
    np.testing.assert_allclose(adjust_to_prior(p, 0.3, 0.3), p)
    assert adjust_to_prior(np.array([0.0, 1.0]), 0.5, 0.001).tolist() == [0.0, 1.0]


def test_adjustment_keeps_the_ranking() -> None:
    p = np.sort(np.random.default_rng(0).uniform(size=1000))
    assert np.all(np.diff(adjust_to_prior(p, 0.5, 0.00172)) >= 0)


@pytest.mark.parametrize("prior", [0.0, 1.0, -0.1, 1.5])
def test_priors_outside_the_open_interval_are_refused(prior: float) -> None:
    with pytest.raises(ValueError, match="prior"):
        adjust_to_prior(np.array([0.5]), prior, 0.1)
