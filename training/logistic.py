"""Weighted logistic regression on one predictor, with robust standard errors.

Used twice: to fit the calibration (Platt scaling: y on the log-odds of the forest's score) and to
check it (calibration intercept and slope: y on the log-odds of the served probability). Rows
carry sampling weights, which are not frequency weights: the standard errors are the sandwich
(Huber-White) ones, as survey statistics computes them, not the model-based ones that would
count a row of weight 30 as 30 observations.
"""

from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from scipy.stats import norm

_ITERATIONS = 100
_TOLERANCE = 1e-10
# A whisper of ridge on the coefficients: keeps Newton finite when the classes separate.
_RIDGE = 1e-9


@dataclass(frozen=True)
class LogisticFit:
    intercept: float
    slope: float  # 1.0 when the slope was fixed (offset fit)
    intercept_se: float
    slope_se: float  # 0.0 when the slope was fixed

    def interval(self, name: str, level: float = 0.95) -> list[float]:
        value, se = (
            (self.intercept, self.intercept_se)
            if name == "intercept"
            else (
                self.slope,
                self.slope_se,
            )
        )
        half = float(norm.ppf(0.5 + level / 2)) * se
        return [value - half, value + half]


def fit_logistic(
    predictor: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    *,
    fixed_slope: bool = False,
) -> LogisticFit:
    """P(y=1) = expit(intercept + slope * predictor), by weighted maximum likelihood.

    fixed_slope: the slope is held at 1 (the predictor is an offset) and only the intercept is
    fitted: the calibration intercept ("calibration in the large").
    """
    x = np.asarray(predictor, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    design = np.ones((len(x), 1)) if fixed_slope else np.column_stack([np.ones(len(x)), x])
    offset = x if fixed_slope else np.zeros(len(x))
    ridge = _RIDGE * w.sum()
    coef = np.zeros(design.shape[1])

    def penalised_loss(beta: np.ndarray) -> float:
        eta = design @ beta + offset
        return float(np.sum(w * (np.logaddexp(0, eta) - y * eta)) + ridge * beta @ beta / 2)

    for _ in range(_ITERATIONS):
        p = expit(design @ coef + offset)
        gradient = design.T @ (w * (p - y)) + ridge * coef
        hessian = (design * (w * p * (1 - p))[:, None]).T @ design + ridge * np.eye(len(coef))
        step = np.linalg.solve(hessian, gradient)
        # Halve the step until the loss does not rise (Newton can overshoot on flat tails).
        scale, current = 1.0, penalised_loss(coef)
        while penalised_loss(coef - scale * step) > current + 1e-12 and scale > 1e-6:
            scale /= 2
        coef = coef - scale * step
        if np.max(np.abs(scale * step)) < _TOLERANCE:
            break
    p = expit(design @ coef + offset)
    bread = np.linalg.inv(
        (design * (w * p * (1 - p))[:, None]).T @ design + ridge * np.eye(len(coef))
    )
    scores = design * (w * (y - p))[:, None]
    covariance = bread @ (scores.T @ scores) @ bread
    errors = np.sqrt(np.clip(np.diag(covariance), 0, None))
    if fixed_slope:
        return LogisticFit(float(coef[0]), 1.0, float(errors[0]), 0.0)
    return LogisticFit(float(coef[0]), float(coef[1]), float(errors[0]), float(errors[1]))
