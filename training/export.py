"""Compile a fitted forest to ONNX for the serving engine."""

import numpy as np
from skl2onnx import to_onnx
from sklearn.ensemble import RandomForestClassifier

from fraud_model.features import FEATURE_DTYPE


def forest_to_onnx(forest: RandomForestClassifier) -> bytes:
    """ONNX bytes: float32 input `X` (n, 29), a plain `probabilities` output (no ZipMap)."""
    # The forest's own width: a wrong-width model is refused by save_artifact, not hidden here.
    example = np.zeros((1, forest.n_features_in_), dtype=FEATURE_DTYPE)
    model = to_onnx(forest, example, options={id(forest): {"zipmap": False}})
    serialized: bytes = model.SerializeToString()
    return serialized
