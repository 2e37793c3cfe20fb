"""From the model's raw score to the served fraud_probability, as the artifact's calibration says.

Three methods, all numpy only (the serving side runs this next to onnxruntime):

- `platt` (what training writes): the forest's score s, the mean over its T trees of each leaf's
  fraud share, is smoothed as a vote share with `pseudo_count` a on each side,
  s' = (T s + a) / (T + 2 a), and mapped by two fitted parameters,
  p = expit(intercept + slope * logit(s')). Fitted at the production fraud rate on held-out
  scores of training rows, scored as the test rows will be (training.calibrate). The linear
  predictor is bounded, so no served probability is exactly 0 or 1.
- `platt_log_odds` (boosted trees, whose raw score is already the log-odds of fraud):
  p = expit(intercept + slope * raw), fitted at the production fraud rate on the validation rows
  (training.calibrate).
- `prior_shift` (artifacts of earlier versions): fraud_model.prior's correction from the fitted
  training prior to the production prior; its probabilities can be exactly 0.
"""

import numpy as np

from fraud_model.metadata import Calibration
from fraud_model.prior import adjust_to_prior

# expit(+-30) is 1 - 9.4e-14 and 9.4e-14: distinct from 1 and 0 in float64.
MAX_LOG_ODDS = 30.0


def smoothed_log_odds(
    scores: np.ndarray, trees: float | np.ndarray, pseudo_count: float
) -> np.ndarray:
    """logit of the score smoothed as a share of `trees` votes, `pseudo_count` on each side."""
    trees = np.asarray(trees, dtype=np.float64)
    smoothed = (trees * np.asarray(scores, dtype=np.float64) + pseudo_count) / (
        trees + 2 * pseudo_count
    )
    result: np.ndarray = np.log(smoothed) - np.log1p(-smoothed)
    return result


def platt_probability(log_odds: np.ndarray, intercept: float, slope: float) -> np.ndarray:
    linear = np.clip(intercept + slope * log_odds, -MAX_LOG_ODDS, MAX_LOG_ODDS)
    # The logistic function without scipy (serving installs numpy only); exact for |x| <= 30.
    result: np.ndarray = 1.0 / (1.0 + np.exp(-linear))
    return result


def calibrated_probability(raw: np.ndarray, calibration: Calibration) -> np.ndarray:
    """The served fraud_probability of raw model scores."""
    if calibration.method == "platt_log_odds":
        intercept, slope = calibration.linear_parameters()
        return platt_probability(np.asarray(raw, dtype=np.float64), intercept, slope)
    if calibration.method == "platt":
        intercept, slope, trees, pseudo_count = calibration.platt_parameters()
        return platt_probability(smoothed_log_odds(raw, trees, pseudo_count), intercept, slope)
    if calibration.training_prior is None:
        raise ValueError("a prior_shift calibration needs its training_prior")
    return adjust_to_prior(raw, calibration.training_prior, calibration.production_prior)
