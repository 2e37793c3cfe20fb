"""What differs between the model families (fraud_model.families) once a model is fitted: which
family an object is, and its raw score as scikit-learn computes it (the score the ONNX engine
must reproduce, fraud_model.engines)."""

from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from fraud_model.families import ModelFamily


def family_of(model: Any) -> ModelFamily:
    if isinstance(model, RandomForestClassifier):
        return "random_forest"
    if isinstance(model, HistGradientBoostingClassifier):
        return "hist_gradient_boosting"
    raise TypeError(f"{type(model).__name__} is not a model family this project serves")


def sklearn_raw_scores(model: Any, features: np.ndarray) -> np.ndarray:
    """A forest's mean P(fraud) over its trees; boosted trees' log-odds of fraud."""
    if family_of(model) == "random_forest":
        forest_scores: np.ndarray = model.predict_proba(features)[:, 1]
        return forest_scores
    log_odds: np.ndarray = model.decision_function(features)
    return log_odds
