"""Prior-shift correction of probabilities.

A classifier trained where fraud makes up a share `training_prior` of the (weighted) rows estimates
P(fraud | x) at that prevalence. At a different prevalence the likelihood ratio stays the same, so
the odds scale by the ratio of the prior odds (Saerens et al. 2002; Dal Pozzolo et al. 2015, the
data set's own authors, for undersampled fraud data):

    odds_production(x) = odds_training(x) * [pi_p / (1 - pi_p)] / [pi_t / (1 - pi_t)]
"""

import numpy as np


def adjust_to_prior(
    probabilities: np.ndarray, training_prior: float, target_prior: float
) -> np.ndarray:
    """Re-express probabilities estimated at `training_prior` at `target_prior` prevalence."""
    for name, prior in (("training_prior", training_prior), ("target_prior", target_prior)):
        if not 0.0 < prior < 1.0:
            raise ValueError(f"{name} must be strictly between 0 and 1, got {prior}")
    p = np.asarray(probabilities, dtype=np.float64)
    ratio = (target_prior / (1.0 - target_prior)) / (training_prior / (1.0 - training_prior))
    # p*r / (p*r + 1 - p) is exact at both ends (0 -> 0, 1 -> 1) and never divides by zero.
    return p * ratio / (p * ratio + (1.0 - p))
