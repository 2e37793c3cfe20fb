"""Reason codes add up: base + contributions = the forest's score, raw and served, per row."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from fraud_model.explain import ForestExplainer, save_trees, top_reasons
from fraud_model.features import FEATURE_NAMES
from fraud_model.metadata import Calibration
from fraud_model.prior import adjust_to_prior
from tests.helpers import random_transactions
from training.data import Dataset

PRIOR_SHIFT = Calibration(training_prior=0.5, production_prior=0.00172)


@pytest.fixture(scope="module")
def deep_forest(tiny_dataset: Dataset) -> RandomForestClassifier:
    # Unlimited depth and class weights, like the bundled model's recipe.
    return RandomForestClassifier(
        n_estimators=15, min_samples_leaf=2, class_weight="balanced_subsample", random_state=3
    ).fit(tiny_dataset.features, tiny_dataset.labels)


@pytest.fixture
def explainer(deep_forest: RandomForestClassifier, tmp_path: Path) -> ForestExplainer:
    save_trees(deep_forest, tmp_path / "trees.npz", "random_forest")
    return ForestExplainer.load(tmp_path / "trees.npz")


def rows_near_decision(dataset: Dataset) -> np.ndarray:
    mixed = np.concatenate([dataset.features[:100], random_transactions(100, seed=4)])
    return mixed.astype(np.float32)


def test_raw_contributions_add_up_to_predict_proba(
    explainer: ForestExplainer, deep_forest: RandomForestClassifier, tiny_dataset: Dataset
) -> None:
    rows = rows_near_decision(tiny_dataset)
    explanation = explainer.raw(rows)
    expected = deep_forest.predict_proba(rows)[:, 1]
    np.testing.assert_allclose(
        explanation.base + explanation.contributions.sum(axis=1), expected, atol=1e-6
    )
    assert explanation.contributions.shape == (len(rows), len(FEATURE_NAMES))
    assert np.abs(explanation.contributions).sum() > 0


def test_served_contributions_add_up_to_the_served_probability(
    explainer: ForestExplainer, deep_forest: RandomForestClassifier, tiny_dataset: Dataset
) -> None:
    rows = rows_near_decision(tiny_dataset)
    explanation, served = explainer.served(rows, PRIOR_SHIFT)
    expected = adjust_to_prior(deep_forest.predict_proba(rows)[:, 1], 0.5, 0.00172)
    np.testing.assert_allclose(served, expected, atol=1e-9)
    np.testing.assert_allclose(
        explanation.base + explanation.contributions.sum(axis=1), expected, atol=1e-6
    )
    raw = explainer.raw(rows).contributions
    assert np.all(np.sign(explanation.contributions) == np.sign(raw))  # same direction


def test_top_reasons_are_the_largest_contributions_with_their_values(
    explainer: ForestExplainer, tiny_dataset: Dataset
) -> None:
    rows = rows_near_decision(tiny_dataset)[:3]
    explanation = explainer.raw(rows)
    reasons = top_reasons(explanation, rows, k=4)
    assert [len(row["contributions"]) for row in reasons] == [4, 4, 4]
    for index, reason in enumerate(reasons):
        row = reason["contributions"]
        sizes = [abs(reason["contribution"]) for reason in row]
        assert sizes == sorted(sizes, reverse=True)
        assert sizes[0] == pytest.approx(np.abs(explanation.contributions[index]).max())
        column = FEATURE_NAMES.index(row[0]["feature"])
        assert row[0]["value"] == pytest.approx(rows[index, column])


@pytest.mark.parametrize("k", [1, 3, 5, 28, 29])
def test_top_k_reasons_plus_other_add_up_to_the_served_probability(
    explainer: ForestExplainer, deep_forest: RandomForestClassifier, tiny_dataset: Dataset, k: int
) -> None:
    rows = rows_near_decision(tiny_dataset)
    explanation, served = explainer.served(rows, PRIOR_SHIFT)
    expected = adjust_to_prior(deep_forest.predict_proba(rows)[:, 1], 0.5, 0.00172)
    reasons = top_reasons(explanation, rows, k=k)
    moved = 0
    for index, reason in enumerate(reasons):
        listed = reason["contributions"]
        assert len(listed) == k
        assert len({c["feature"] for c in listed}) == k
        total = explanation.base + sum(c["contribution"] for c in listed) + reason["other"]
        assert total == pytest.approx(expected[index], abs=1e-6)
        assert total == pytest.approx(served[index], abs=1e-9)
        # The unlisted features are never larger than the smallest listed one.
        names = {c["feature"] for c in listed}
        rest = [
            abs(explanation.contributions[index, column])
            for column, name in enumerate(FEATURE_NAMES)
            if name not in names
        ]
        assert max(rest, default=0.0) <= abs(listed[-1]["contribution"])
        moved += reason["other"] != 0.0
    if k == len(FEATURE_NAMES):
        assert all(reason["other"] == 0.0 for reason in reasons)
    elif k == 1:
        assert moved > 0  # the rest does carry part of the score


def test_top_k_is_between_one_and_the_feature_count(explainer: ForestExplainer) -> None:
    rows = random_transactions(2, seed=6).astype(np.float32)
    explanation = explainer.raw(rows)
    for k in (0, len(FEATURE_NAMES) + 1):
        with pytest.raises(ValueError, match=r"k must be in 1\.\.29"):
            top_reasons(explanation, rows, k=k)


def test_the_trees_file_loads_without_pickle(explainer: ForestExplainer, tmp_path: Path) -> None:
    with np.load(tmp_path / "trees.npz", allow_pickle=False) as data:
        assert all(data[name].dtype != object for name in data.files)


def test_rows_exactly_on_split_thresholds_follow_sklearn(
    explainer: ForestExplainer, deep_forest: RandomForestClassifier
) -> None:
    """float64 rows set to the thresholds themselves: sklearn rounds X to float32 first, and a
    float32 value can land on either side of the float64 threshold. The explainer must too."""
    rng = np.random.default_rng(5)
    internal = explainer.left != -1
    rows = rng.normal(size=(500, len(FEATURE_NAMES)))
    for column in range(len(FEATURE_NAMES)):
        thresholds = explainer.threshold[internal & (explainer.feature == column)]
        if thresholds.size:
            rows[:, column] = rng.choice(thresholds, size=len(rows))
    # The float32 rounding moves some of these rows to the other child.
    assert np.any(rows.astype(np.float32).astype(np.float64) > rows)
    explanation = explainer.raw(rows)
    np.testing.assert_allclose(
        explanation.base + explanation.contributions.sum(axis=1),
        deep_forest.predict_proba(rows)[:, 1],
        atol=1e-9,
    )


def test_contributions_of_two_hand_built_stumps() -> None:
    """Tree 1 splits V1 at 0 (fraud share 0.5 -> 0.5 left, 0.8 right); tree 2 splits Amount at
    100 (0.5 -> 0.2 left, 0.9 right). Children are global node indices, as save_trees writes."""
    explainer = ForestExplainer(
        {
            "left": np.array([1, -1, -1, 4, -1, -1]),
            "right": np.array([2, -1, -1, 5, -1, -1]),
            "feature": np.array([0, -2, -2, 28, -2, -2]),
            "threshold": np.array([0.0, -2, -2, 100.0, -2, -2]),
            "fraud_fraction": np.array([0.5, 0.5, 0.8, 0.5, 0.2, 0.9]),
            "roots": np.array([0, 3]),
        }
    )
    rows = np.zeros((3, len(FEATURE_NAMES)))
    rows[0, [0, 28]] = [1.0, 500.0]  # right, right
    rows[1, [0, 28]] = [-1.0, 5.0]  # left, left
    rows[2, [0, 28]] = [-1.0, 100.0]  # left, left (Amount <= 100)
    explanation = explainer.raw(rows)
    assert explanation.base == 0.5
    np.testing.assert_allclose(explanation.contributions[:, 0], [0.15, 0.0, 0.0])
    np.testing.assert_allclose(explanation.contributions[:, 28], [0.2, -0.15, -0.15])
    assert np.count_nonzero(explanation.contributions[:, 1:28]) == 0
    # V1 pushes up as much as Amount pushes down: the score is the base, and the served scale
    # cannot divide by the move. Contributions keep their signs and still add up.
    cancelling = np.zeros((1, len(FEATURE_NAMES)))
    cancelling[0, [0, 28]] = [1.0, 5.0]
    explanation, served = explainer.served(cancelling, PRIOR_SHIFT)
    assert explanation.contributions[0, 0] > 0 > explanation.contributions[0, 28]
    assert explanation.base + explanation.contributions.sum() == pytest.approx(served[0], abs=1e-12)
    assert served[0] == pytest.approx(adjust_to_prior(np.array([0.5]), 0.5, 0.00172)[0])


def test_a_tree_that_is_a_single_leaf_only_adds_to_the_base() -> None:
    # Tree 1: a stump on V1 (0.5 -> 0.5 / 0.8); tree 2: one leaf of 0.2 (a pure bootstrap sample).
    explainer = ForestExplainer(
        {
            "left": np.array([1, -1, -1, -1]),
            "right": np.array([2, -1, -1, -1]),
            "feature": np.array([0, -2, -2, -2]),
            "threshold": np.array([0.0, -2, -2, -2]),
            "fraud_fraction": np.array([0.5, 0.5, 0.8, 0.2]),
            "roots": np.array([0, 3]),
        }
    )
    rows = np.zeros((2, len(FEATURE_NAMES)))
    rows[:, 0] = [1.0, -1.0]
    explanation = explainer.raw(rows)
    assert explanation.base == pytest.approx(0.35)
    np.testing.assert_allclose(explanation.contributions[:, 0], [0.15, 0.0])
    assert np.count_nonzero(explanation.contributions[:, 1:]) == 0


def test_only_binary_forests_of_the_feature_contract_are_explained(
    explainer: ForestExplainer, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    three_classes = RandomForestClassifier(n_estimators=2, random_state=0).fit(
        tiny_dataset.features[:30], np.arange(30) % 3
    )
    with pytest.raises(ValueError, match="binary forest"):
        save_trees(three_classes, tmp_path / "trees.npz", "random_forest")
    with pytest.raises(ValueError, match=r"Expected \(n, 29\) features"):
        explainer.raw(np.zeros((2, 10)))
