"""Reason codes: how much each feature moved a transaction's score, from the trees' own paths.

The Saabas / "treeinterpreter" decomposition: walking a tree from its root to the row's leaf,
each split changes the node's value, and that change is credited to the split's feature. The
root's value is the tree's bias. Over the trees:

    raw score = base + sum(contributions)        (exactly, up to float rounding)

for either family (fraud_model.families):

- a forest: a node's value is its fraud share, the raw score the mean over the trees;
- boosted trees: a node's value is the mean leaf value (log-odds) of the training rows that
  reached it (a leaf's is its own), and the raw score is the baseline plus the sum over the
  trees: the log-odds decision_function gives.

Serving runs ONNX and never unpickles, so training saves the trees as plain arrays (`trees.npz`,
hash-checked like every artifact file) and this module walks them with numpy, all trees and all
rows at once, one tree level per step (no Python loop over rows or trees).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fraud_model.calibration import calibrated_probability
from fraud_model.families import ModelFamily
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


def boosted_arrays(model: Any) -> dict[str, np.ndarray]:
    """All trees of a fitted binary HistGradientBoostingClassifier as flat arrays, with each
    node's value (see the module's docstring) and the baseline (`offset`)."""
    if list(model.classes_) != [0, 1] or model.n_trees_per_iteration_ != 1:
        raise ValueError(f"Expected a binary model with classes [0, 1], got {model.classes_}")
    left, right, feature, threshold, value, roots = [], [], [], [], [], []
    offset = 0
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        leaf = nodes["is_leaf"].astype(bool)
        if nodes["is_categorical"].any():
            raise ValueError("categorical splits are not supported: every feature is numeric")
        # Children come after their parent (scikit-learn fills the nodes depth first): from the
        # last node back, each inner node's value is the mean of its children's weighted by the
        # training rows that reached them (counted, not weighted by any sample weight).
        values = np.where(leaf, nodes["value"], 0.0).astype(np.float64)
        counts = nodes["count"].astype(np.float64)
        for node in np.flatnonzero(~leaf)[::-1]:
            a, b = nodes["left"][node], nodes["right"][node]
            values[node] = (counts[a] * values[a] + counts[b] * values[b]) / (counts[a] + counts[b])
        roots.append(offset)
        left.append(np.where(leaf, _LEAF, nodes["left"].astype(np.int64) + offset))
        right.append(np.where(leaf, _LEAF, nodes["right"].astype(np.int64) + offset))
        feature.append(np.where(leaf, 0, nodes["feature_idx"]))
        threshold.append(nodes["num_threshold"])
        value.append(values)
        offset += len(nodes)
    return {
        "left": np.concatenate(left).astype(np.int64),
        "right": np.concatenate(right).astype(np.int64),
        "feature": np.concatenate(feature).astype(np.int64),
        "threshold": np.concatenate(threshold).astype(np.float64),
        "node_value": np.concatenate(value),
        "roots": np.asarray(roots, dtype=np.int64),
        "offset": np.asarray([float(np.asarray(model._baseline_prediction).ravel()[0])]),
    }


def tree_arrays(model: Any, family: ModelFamily) -> dict[str, np.ndarray]:
    return forest_arrays(model) if family == "random_forest" else boosted_arrays(model)


def save_trees(model: Any, path: Path, family: ModelFamily) -> None:
    """Write tree_arrays() as an .npz of plain numeric arrays (loadable without pickle)."""
    np.savez(path, **tree_arrays(model, family))  # type: ignore[arg-type]  # numpy's stub: the first **kwarg is read as allow_pickle


@dataclass(frozen=True)
class Explanation:
    base: float  # the model's score before any split
    contributions: np.ndarray  # (rows, features); base + row sum = the score


class ForestExplainer:
    """Saabas contributions of the trees saved by save_trees() (a forest's, or boosted trees'),
    for batches of (n, 29) rows."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.left, self.right = arrays["left"], arrays["right"]
        self.feature, self.threshold = arrays["feature"], arrays["threshold"]
        self.roots = arrays["roots"]
        self.family: ModelFamily
        if "node_value" in arrays:  # boosted trees: the baseline plus the sum over the trees
            self.family = "hist_gradient_boosting"
            self.node_value, self.tree_weight = arrays["node_value"], 1.0
            offset = float(arrays["offset"][0])
        else:  # a forest: the mean over the trees
            self.family = "random_forest"
            self.node_value, self.tree_weight = arrays["fraud_fraction"], 1.0 / len(self.roots)
            offset = 0.0
        self.base = offset + self.tree_weight * float(self.node_value[self.roots].sum())

    @classmethod
    def load(cls, path: Path) -> "ForestExplainer":
        """Read a trees file; plain arrays only (allow_pickle=False)."""
        with np.load(path, allow_pickle=False) as data:
            return cls({name: data[name] for name in data.files})

    def raw(self, features: np.ndarray) -> Explanation:
        """Contributions to the model's raw score (the engine's: a forest's mean P(fraud),
        boosted trees' log-odds)."""
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
            change = self.node_value[child] - self.node_value[node]
            totals += np.bincount(row * n_features + split, change, minlength=totals.size)
            node = child
        return Explanation(self.base, totals.reshape(n_rows, n_features) * self.tree_weight)

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
