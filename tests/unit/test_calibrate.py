"""The calibration: the fit recovers known parameters, out-of-bag scores use only trees that never
saw the row or its twins and calibrate a random split only, and no served probability is 0 or
1."""

import numpy as np
import pytest
from scipy.special import expit

from fraud_model.calibration import calibrated_probability, smoothed_log_odds
from fraud_model.metadata import Calibration
from training.calibrate import (
    PSEUDO_COUNT,
    OutOfBag,
    calibration_check,
    fit_calibration,
    out_of_bag_scores,
)
from training.data import Dataset, synthetic_dataset
from training.forest import (
    bootstrap_counts,
    fit_trees,
    train_forest_in_threads,
    tree_sample_weight,
    tree_seeds,
)
from training.logistic import fit_logistic
from training.options import BoostingParams, ForestParams, SplitKind, TrainingOptions
from training.pipeline import ModelParams, grow_and_calibrate, make_split
from training.split import duplicate_groups
from training.weights import production_weights

TREES = 100


def drawn_from(intercept: float, slope: float, rows: int, seed: int) -> tuple[np.ndarray, ...]:
    """Forest-like scores (shares of TREES votes) and labels drawn from
    P(fraud) = expit(intercept + slope * smoothed log-odds); the legitimate rows then sampled
    at one in ten, each standing for ten (design weight 10), as a fraud data set is."""
    rng = np.random.default_rng(seed)
    scores = rng.beta(0.3, 3.0, size=rows)
    log_odds = smoothed_log_odds(scores, TREES, PSEUDO_COUNT)
    labels = (rng.random(rows) < expit(intercept + slope * log_odds)).astype(np.int64)
    keep = (labels == 1) | (rng.random(rows) < 0.1)
    design = np.where(labels == 1, 1.0, 10.0)
    return scores[keep], labels[keep], design[keep], labels


def test_the_fit_recovers_the_parameters_the_data_was_drawn_from() -> None:
    intercept, slope = -3.0, 1.4
    scores, labels, design, population = drawn_from(intercept, slope, 400_000, seed=1)
    half = len(labels) // 2
    fitted = fit_calibration(
        out_of_bag=OutOfBag(scores[:half], np.full(half, TREES)),
        fit_labels=labels[:half],
        fit_design=design[:half],
        validation_scores=scores[half:],
        validation_labels=labels[half:],
        validation_design=design[half:],
        trees=TREES,
        # The population's own fraud rate: the design weights alone give it back.
        production_rate=float(population.mean()),
    )
    calibration = fitted.calibration
    assert calibration.method == "platt" and calibration.trees == TREES
    assert fitted.intercept_ci95[0] < intercept < fitted.intercept_ci95[1]
    assert fitted.slope_ci95[0] < slope < fitted.slope_ci95[1]
    assert calibration.intercept == pytest.approx(intercept, abs=0.15)
    assert calibration.slope == pytest.approx(slope, abs=0.05)


def test_sandwich_intervals_cover_the_truth_about_as_often_as_they_say() -> None:
    """Weighted (design) rows: the robust 95 % interval of the slope covers the true slope in
    about 95 % of samples, where treating the weights as counts would be far too narrow."""
    covered = 0
    for seed in range(60):
        scores, labels, design, _ = drawn_from(-2.0, 1.0, 20_000, seed=seed)
        fit = fit_logistic(smoothed_log_odds(scores, TREES, PSEUDO_COUNT), labels, design)
        low, high = fit.interval("slope")
        covered += low < 1.0 < high
    assert 50 <= covered <= 60


def test_a_calibrated_model_checks_out_with_intercept_0_and_slope_1() -> None:
    rng = np.random.default_rng(5)
    probabilities = expit(rng.normal(-5, 2, size=200_000))
    labels = (rng.random(len(probabilities)) < probabilities).astype(np.int64)
    check = calibration_check(probabilities, labels, np.ones(len(labels)))
    assert check["intercept_ci95"][0] < 0 < check["intercept_ci95"][1]  # type: ignore[index]
    assert check["slope_ci95"][0] < 1 < check["slope_ci95"][1]  # type: ignore[index]
    assert check["mean_probability"] == pytest.approx(check["fraud_share"], rel=0.05)
    bins = check["reliability"]
    assert sum(b["share"] for b in bins) == pytest.approx(1.0)  # type: ignore[attr-defined]
    for b in bins:  # type: ignore[attr-defined]
        assert b["observed_low"] <= b["observed"] <= b["observed_high"]
        assert b["observed_low"] < b["observed_high"]


def test_no_served_probability_is_exactly_0_or_1() -> None:
    raw = np.array([0.0, 1e-12, 0.5, 1 - 1e-12, 1.0])
    for intercept, slope in ((-3.0, 1.5), (40.0, 20.0), (-40.0, 20.0)):
        calibration = Calibration(
            method="platt", production_prior=0.00172, intercept=intercept, slope=slope,
            trees=TREES, pseudo_count=PSEUDO_COUNT,
        )  # fmt: skip
        served = calibrated_probability(raw, calibration)
        assert np.all(served > 0) and np.all(served < 1)
        assert np.all(np.diff(served) >= 0)  # monotone: the ranking is kept


def test_trees_grow_on_the_bag_their_seed_draws(tiny_dataset: Dataset) -> None:
    params = ForestParams(n_estimators=3, max_depth=4)
    labels = tiny_dataset.labels.astype(np.int64)
    seeds = tree_seeds(3, seed=11)
    forest = fit_trees(tiny_dataset.features, labels, seeds, params)
    for tree, seed in zip(forest.estimators_, seeds, strict=True):
        weights = tree_sample_weight(labels, bootstrap_counts(seed, len(labels), params), params)
        # The root holds every row at its weight: the bag and the class weights used.
        assert tree.tree_.weighted_n_node_samples[0] == pytest.approx(weights.sum())
        counts = bootstrap_counts(seed, len(labels), params)
        bag = labels[counts > 0]
        # balanced_subsample: both classes weigh the same in the bag.
        fraud, normal = (weights[(labels == c) & (counts > 0)].sum() for c in (1, 0))
        assert fraud == pytest.approx(normal) and bag.size < len(labels)


def test_out_of_bag_scores_come_from_trees_that_saw_neither_the_row_nor_its_twins(
    tiny_dataset: Dataset,
) -> None:
    params = ForestParams(n_estimators=25, max_depth=6)
    features = np.concatenate([tiny_dataset.features, tiny_dataset.features[:3]])
    labels = np.concatenate([tiny_dataset.labels, tiny_dataset.labels[:3]]).astype(np.int64)
    groups = np.r_[np.arange(len(tiny_dataset.labels)), 0, 1, 2]  # rows 0-2 have a twin
    forest = fit_trees(features, labels, tree_seeds(25, seed=3), params)
    oob = out_of_bag_scores(forest, features, labels, groups, seed=3, params=params)
    for row in (0, 1, 2, 10, 500):
        twins = np.flatnonzero(groups == groups[row])
        unseen = [
            tree
            for tree, seed in zip(forest.estimators_, tree_seeds(25, seed=3), strict=True)
            if bootstrap_counts(seed, len(labels), params)[twins].sum() == 0
        ]
        assert oob.trees[row] == len(unseen)
        if unseen:
            expected = np.mean([t.predict_proba(features[row : row + 1])[0, 1] for t in unseen])
            assert oob.scores[row] == pytest.approx(expected)
    # A twin pair is never out of bag more often than a single row would be.
    assert oob.trees[:3].mean() < oob.trees[3:-3].mean()


def test_production_weights_give_the_production_rate_and_keep_the_design() -> None:
    labels = np.array([1, 1, 0, 0, 0])
    design = np.array([1.0, 1.0, 1.0, 10.0, 10.0])
    weights = production_weights(labels, 0.01, design)
    assert weights[labels == 1].sum() / weights.sum() == pytest.approx(0.01)
    assert weights[3] / weights[2] == pytest.approx(10.0)
    np.testing.assert_array_equal(weights[:2], design[:2])


def test_an_out_of_time_calibration_follows_the_validation_rows_alone() -> None:
    """Out-of-bag scores of the fit period separate the classes more than the later validation
    rows' scores do (drawn here from a flatter relation): the fit without them recovers the
    validation rows' parameters, the fit with them does not."""
    later_intercept, later_slope = -2.0, 2.0
    scores, labels, design, population = drawn_from(later_intercept, later_slope, 200_000, seed=3)
    earlier, earlier_labels, earlier_design, _ = drawn_from(-3.0, 1.0, 400_000, seed=4)
    common = {
        "fit_labels": earlier_labels,
        "fit_design": earlier_design,
        "validation_scores": scores,
        "validation_labels": labels,
        "validation_design": design,
        "trees": TREES,
        "production_rate": float(population.mean()),
    }
    alone = fit_calibration(out_of_bag=None, **common)
    assert alone.rows == len(labels) and "validation rows alone" in alone.source
    assert alone.intercept_ci95[0] < later_intercept < alone.intercept_ci95[1]
    assert alone.slope_ci95[0] < later_slope < alone.slope_ci95[1]
    pooled = fit_calibration(out_of_bag=OutOfBag(earlier, np.full(len(earlier), TREES)), **common)
    assert not pooled.slope_ci95[0] < later_slope < pooled.slope_ci95[1]


@pytest.mark.parametrize("kind", ["random", "temporal"])
def test_the_split_decides_which_rows_the_forest_is_calibrated_on(kind: SplitKind) -> None:
    """A random split's test rows come from the fit rows' days: their out-of-bag scores join the
    validation rows. An out-of-time split's do not: the validation rows are used alone."""
    dataset = synthetic_dataset(4_000, fraud_rate=0.05, seed=9)
    options = TrainingOptions(split=kind, stability_runs=0)
    groups = duplicate_groups(dataset.features)
    split = make_split(dataset, kind, options, groups)
    params = ModelParams(ForestParams(n_estimators=10, max_depth=6), BoostingParams())
    run = grow_and_calibrate(
        dataset, split, groups, params, options, seed=1, build_forest=train_forest_in_threads
    )
    validation_rows = len(split.validation)
    if kind == "temporal":
        assert run.calibration.rows == validation_rows
    else:
        # Every fit row out of the bag of some of the 10 trees, or nearly.
        assert run.calibration.rows > validation_rows + 0.9 * len(split.fit)
