"""Fit the prior-shift correction on held-out rows.

The correction assumes the forest's scores are probabilities at the prevalence its trees saw. With
balanced class weights and small leaves they are not: leaves are nearly pure, so a forest trained at
an effective 50 % is far more confident than 50 % would imply, and the textbook correction
(training_prior = 0.5) leaves live probabilities several times too low. Instead the one free
parameter, the training prior, is chosen so that on the validation rows, re-weighted to the
production fraud rate, the corrected probabilities add up to the number of frauds. The correction
stays monotone, so the ranking (PR-AUC, ROC-AUC) is untouched.
"""

import logging

import numpy as np

from fraud_model.prior import adjust_to_prior
from training.evaluate import prevalence_weights

logger = logging.getLogger(__name__)

# Logit bounds for the search: priors from about 2e-9 to 1 - 2e-9.
_LOGIT_BOUND = 20.0
_ITERATIONS = 80


def nominal_training_prior(labels: np.ndarray, class_weight: str | None) -> float:
    """The fraud share the trees saw after class weighting."""
    if class_weight in ("balanced", "balanced_subsample"):
        return 0.5  # both classes carry equal total weight
    return float(labels.mean())


def weighted_mean_probability(
    raw_scores: np.ndarray, labels: np.ndarray, training_prior: float, production_prior: float
) -> float:
    """Mean corrected probability over `labels`' rows as live traffic would mix them."""
    weights = prevalence_weights(labels, production_prior)
    corrected = adjust_to_prior(raw_scores, training_prior, production_prior)
    return float(np.average(corrected, weights=weights))


def fit_training_prior(
    raw_scores: np.ndarray, labels: np.ndarray, production_prior: float, fallback: float
) -> float:
    """The training prior at which held-out probabilities average to `production_prior`.

    Falls back to `fallback` (the nominal prior) when the held-out rows cannot decide it: no fraud
    in them, or scores so extreme that no prior reaches the target.
    """
    if labels.sum() == 0 or labels.sum() == len(labels):
        logger.warning("Calibration: held-out rows hold one class only; using prior %g", fallback)
        return fallback

    def excess(logit: float) -> float:
        prior = 1.0 / (1.0 + np.exp(-logit))
        mean = weighted_mean_probability(raw_scores, labels, prior, production_prior)
        return mean - production_prior

    low, high = -_LOGIT_BOUND, _LOGIT_BOUND
    # A higher training prior lowers every corrected probability: excess falls with the logit.
    if excess(low) < 0 or excess(high) > 0:
        logger.warning(
            "Calibration: no training prior makes held-out probabilities average %g; using %g",
            production_prior,
            fallback,
        )
        return fallback
    for _ in range(_ITERATIONS):
        middle = (low + high) / 2
        if excess(middle) > 0:
            low = middle
        else:
            high = middle
    return float(1.0 / (1.0 + np.exp(-(low + high) / 2)))
