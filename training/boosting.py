"""Gradient-boosted trees (scikit-learn's HistGradientBoostingClassifier), the challenger family
beside the forest (training.forest).

They are grown in this process: scikit-learn builds each tree's histograms on every core with
OpenMP, and the trees of a boosted model depend on each other, so there is nothing to deal out to
Ray tasks as the forest's trees are.
"""

import logging
import time

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from fraud_model.explain import ForestExplainer, boosted_arrays
from training.options import BoostingParams

logger = logging.getLogger(__name__)


def fit_boosted_trees(
    features: np.ndarray, labels: np.ndarray, params: BoostingParams, *, seed: int
) -> HistGradientBoostingClassifier:
    """`params.max_iter` trees on these rows; the same data, parameters and seed give the same
    model."""
    started = time.perf_counter()
    model = HistGradientBoostingClassifier(**params.sklearn_kwargs(), random_state=seed)
    model.fit(features, np.asarray(labels, dtype=np.int64))
    logger.info(
        "Boosted %d trees on %d rows in %.1f s", model.n_iter_, len(labels),
        time.perf_counter() - started,
    )  # fmt: skip
    return model


def mean_absolute_contributions(
    model: HistGradientBoostingClassifier, features: np.ndarray
) -> np.ndarray:
    """Each feature's mean absolute reason-code contribution (log-odds) over these rows: the
    boosted trees' feature importances (they have no impurity decrease to report)."""
    explanation = ForestExplainer(boosted_arrays(model)).raw(features)
    importances: np.ndarray = np.abs(explanation.contributions).mean(axis=0)
    return importances
