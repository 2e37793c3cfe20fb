"""Reason codes add up: base + contributions = the forest's score, raw and served, per row."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from fraud_model.explain import ForestExplainer, save_trees, top_reasons
from fraud_model.features import FEATURE_NAMES
from fraud_model.prior import adjust_to_prior
from tests.conftest import random_transactions
from training.data import Dataset


@pytest.fixture(scope="module")
def deep_forest(tiny_dataset: Dataset) -> RandomForestClassifier:
    # Unlimited depth and class weights, like the bundled model's recipe.
    return RandomForestClassifier(
        n_estimators=15, min_samples_leaf=2, class_weight="balanced_subsample", random_state=3
    ).fit(tiny_dataset.features, tiny_dataset.labels)


@pytest.fixture
def explainer(deep_forest: RandomForestClassifier, tmp_path: Path) -> ForestExplainer:
    save_trees(deep_forest, tmp_path / "trees.npz")
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
    explanation, served = explainer.served(rows, 0.5, 0.00172)
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
    assert [len(row) for row in reasons] == [4, 4, 4]
    for index, row in enumerate(reasons):
        sizes = [abs(reason["contribution"]) for reason in row]
        assert sizes == sorted(sizes, reverse=True)
        assert sizes[0] == pytest.approx(np.abs(explanation.contributions[index]).max())
        column = FEATURE_NAMES.index(row[0]["feature"])
        assert row[0]["value"] == pytest.approx(rows[index, column])


def test_the_trees_file_loads_without_pickle(explainer: ForestExplainer, tmp_path: Path) -> None:
    with np.load(tmp_path / "trees.npz", allow_pickle=False) as data:
        assert all(data[name].dtype != object for name in data.files)
