"""Reason codes: how much each feature moved a transaction's score, from the forest's own paths.

The Saabas / "treeinterpreter" decomposition: walking a tree from its root to the row's leaf,
each split changes the node's fraud probability, and that change is credited to the split's
feature. The root's value is the tree's bias. Averaged over the trees:

    raw score = base + sum(contributions)        (exactly, up to float rounding)

Serving runs ONNX and never unpickles, so training saves the trees as plain arrays (`trees.npz`,
hash-checked like every artifact file) and this module walks them with numpy, all trees and all
rows at once, one tree level per step (no Python loop over rows or trees).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fraud_model.calibration import calibrated_probability
from fraud_model.features import FEATURE_DTYPE, FEATURE_NAMES
from fraud_model.metadata import Calibration

TREES_FILE = "trees.npz"
DEFAULT_TOP_K = 5  # reason codes listed per transaction unless asked otherwise
_LEAF = -1


def forest_arrays(forest: Any) -> dict[str, np.ndarray]:
    """All trees of a fitted sklearn forest as flat arrays (children are global node indices)."""
    if list(forest.classes_) != [0, 1]:
        raise ValueError(f"Expected a binary forest with classes [0, 1], got {forest.classes_}")
    left, right, feature, threshold, fraud, roots = [], [], [], [], [], []
    offset = 0
    for estimator in forest.estimators_:
        tree = estimator.tree_
        values = tree.value[:, 0, :]
        roots.append(offset)
        # Children point into the concatenation; leaves keep -1.
        left.append(np.where(tree.children_left == _LEAF, _LEAF, tree.children_left + offset))
        right.append(np.where(tree.children_right == _LEAF, _LEAF, tree.children_right + offset))
        feature.append(tree.feature)
        threshold.append(tree.threshold)
        # Normalised as a tree's predict_proba normalises its leaf (values may be weighted).
        fraud.append(values[:, 1] / values.sum(axis=1))
        offset += tree.node_count
    return {
        "left": np.concatenate(left).astype(np.int64),
        "right": np.concatenate(right).astype(np.int64),
        "feature": np.concatenate(feature).astype(np.int64),
        "threshold": np.concatenate(threshold).astype(np.float64),
        "fraud_fraction": np.concatenate(fraud).astype(np.float64),
        "roots": np.asarray(roots, dtype=np.int64),
    }


def save_trees(forest: Any, path: Path) -> None:
    """Write forest_arrays() as an .npz of plain numeric arrays (loadable without pickle)."""
    np.savez(path, **forest_arrays(forest))  # type: ignore[arg-type]  # numpy's stub: the first **kwarg is read as allow_pickle


@dataclass(frozen=True)
class Explanation:
    base: float  # the forest's mean score before any split
    contributions: np.ndarray  # (rows, features); base + row sum = the score


class ForestExplainer:
    """Saabas contributions of a forest saved by save_trees(), for batches of (n, 29) rows."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.left, self.right = arrays["left"], arrays["right"]
        self.feature, self.threshold = arrays["feature"], arrays["threshold"]
        self.fraud_fraction, self.roots = arrays["fraud_fraction"], arrays["roots"]
        self.base = float(self.fraud_fraction[self.roots].mean())

    @classmethod
    def load(cls, path: Path) -> "ForestExplainer":
        """Read a trees file; plain arrays only (allow_pickle=False)."""
        with np.load(path, allow_pickle=False) as data:
            return cls({name: data[name] for name in data.files})

    def raw(self, features: np.ndarray) -> Explanation:
        """Contributions to the forest's raw P(fraud) (mean of the trees' leaf values)."""
        # sklearn compares float32 inputs (as doubles) with float64 thresholds: do the same.
        x = np.asarray(features, dtype=FEATURE_DTYPE).astype(np.float64)
        if x.ndim != 2 or x.shape[1] != len(FEATURE_NAMES):
            raise ValueError(f"Expected (n, {len(FEATURE_NAMES)}) features, got {x.shape}")
        n_rows, n_features = x.shape
        n_trees = len(self.roots)
        # Every (tree, row) pair walks down together, one level per step; pairs drop out as
        # their row reaches its leaf in that tree.
        node = np.repeat(self.roots, n_rows)
        row = np.tile(np.arange(n_rows), n_trees)
        totals = np.zeros(n_rows * n_features)
        while True:
            inner = self.left[node] != _LEAF
            node, row = node[inner], row[inner]
            if node.size == 0:
                break
            split = self.feature[node]
            goes_left = x[row, split] <= self.threshold[node]
            child = np.where(goes_left, self.left[node], self.right[node])
            change = self.fraud_fraction[child] - self.fraud_fraction[node]
            totals += np.bincount(row * n_features + split, change, minlength=totals.size)
            node = child
        return Explanation(self.base, totals.reshape(n_rows, n_features) / n_trees)

    def served(
        self, features: np.ndarray, calibration: Calibration
    ) -> tuple[Explanation, np.ndarray]:
        """Contributions on the served scale (fraud_probability after the calibration).

        The calibration is monotone but not linear, so each row's raw contributions are scaled by
        one factor, (served - served base) / (raw - raw base): signs and ranking are kept and
        `served base + sum = fraud_probability` holds exactly. Returns the explanation and the
        served fraud_probability of each row.
        """
        raw = self.raw(features)
        scores = raw.base + raw.contributions.sum(axis=1)
        base = float(calibrated_probability(np.asarray([raw.base]), calibration)[0])
        served = calibrated_probability(scores, calibration)
        moved = scores - raw.base
        tiny = np.abs(moved) < 1e-12
        # A row whose contributions cancel out: use the calibration's local slope instead.
        step = 1e-6
        slope = (
            calibrated_probability(np.asarray([raw.base + step]), calibration)[0] - base
        ) / step
        factor = np.where(tiny, slope, (served - base) / np.where(tiny, 1.0, moved))
        return Explanation(base, raw.contributions * factor[:, None]), served


def top_reasons(
    explanation: Explanation, features: np.ndarray, k: int = DEFAULT_TOP_K
) -> list[dict[str, Any]]:
    """Per row, the k features with the largest absolute contribution, and the rest summed.

    Each row is {"contributions": [...], "other": float}. A contribution is {"feature": name,
    "value": the row's value, "contribution": signed, > 0 = towards fraud}, largest first;
    "other" is the summed contribution of the features left out (0.0 when k covers them all),
    so `base + sum(contributions) + other` is still the row's score. On the scale of
    `explanation` (raw() or served()).
    """
    contributions = explanation.contributions
    if not 1 <= k <= contributions.shape[1]:
        raise ValueError(f"k must be in 1..{contributions.shape[1]}, got {k}")
    order = np.argsort(-np.abs(contributions), axis=1, kind="stable")
    top, rest = order[:, :k], order[:, k:]
    other = np.take_along_axis(contributions, rest, axis=1).sum(axis=1)
    return [
        {
            "contributions": [
                {
                    "feature": FEATURE_NAMES[column],
                    "value": float(features[row, column]),
                    "contribution": float(contributions[row, column]),
                }
                for column in top[row]
            ],
            "other": float(other[row]),
        }
        for row in range(len(order))
    ]
