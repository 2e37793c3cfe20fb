import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from tests.helpers import random_transactions
from training.data import Dataset
from training.forest import ForestParams, fit_trees, merge_forests, tree_seeds

PARAMS = ForestParams(n_estimators=6, max_depth=5, class_weight="balanced_subsample")


def test_merged_forest_scores_as_the_mean_of_all_its_trees(tiny_dataset: Dataset) -> None:
    x, y = tiny_dataset.features, tiny_dataset.labels
    parts = [fit_trees(x, y, [1, 2], PARAMS), fit_trees(x, y, [3, 4, 5], PARAMS)]
    merged = merge_forests(parts)
    probe = random_transactions(200)

    assert merged.n_estimators == len(merged.estimators_) == 5
    per_tree = np.stack(
        [tree.predict_proba(probe) for forest in parts for tree in forest.estimators_]
    )
    np.testing.assert_allclose(
        merged.predict_proba(probe), per_tree.mean(axis=0), rtol=0, atol=1e-12
    )
    # ... which is the tree-count-weighted mean of the sub-forests' own scores.
    by_part = (2 * parts[0].predict_proba(probe) + 3 * parts[1].predict_proba(probe)) / 5
    np.testing.assert_allclose(merged.predict_proba(probe), by_part, atol=1e-12)


def test_same_seeds_give_the_same_trees(tiny_dataset: Dataset) -> None:
    x, y = tiny_dataset.features, tiny_dataset.labels
    probe = random_transactions(100)
    first, again = fit_trees(x, y, [11, 12], PARAMS), fit_trees(x, y, [11, 12], PARAMS)
    np.testing.assert_array_equal(first.predict_proba(probe), again.predict_proba(probe))
    other = fit_trees(x, y, [13, 14], PARAMS)
    assert not np.array_equal(first.predict_proba(probe), other.predict_proba(probe))


def test_tree_seeds_are_deterministic_and_distinct() -> None:
    assert tree_seeds(50, 1) == tree_seeds(50, 1)
    assert len(set(tree_seeds(50, 1))) == 50
    assert tree_seeds(10, 1) == tree_seeds(50, 1)[:10]


def test_forests_with_different_classes_are_not_merged(tiny_dataset: Dataset) -> None:
    x, y = tiny_dataset.features, tiny_dataset.labels
    relabelled = RandomForestClassifier(n_estimators=1, random_state=0).fit(x, y + 1)
    with pytest.raises(ValueError, match="classes"):
        merge_forests([fit_trees(x, y, [1], PARAMS), relabelled])


def test_params_mirror_sklearn_names() -> None:
    kwargs = ForestParams(n_estimators=7, max_depth=4, criterion="entropy").sklearn_kwargs()
    forest = RandomForestClassifier(**kwargs)
    # Every parameter arrives under sklearn's own name, with its value.
    assert {name: forest.get_params()[name] for name in kwargs} == kwargs
    assert (forest.n_estimators, forest.max_depth, forest.criterion) == (7, 4, "entropy")
