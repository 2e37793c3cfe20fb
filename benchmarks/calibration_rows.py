"""Which rows should the forest's calibration be fitted on? Measured on training rows only: no
test row is read.

1. Scores: the highest-scored legitimate validation rows; the smoothed log-odds
   (training.calibrate) of the fit rows' out-of-bag scores, and of the validation rows scored by
   the whole forest and by as many of its trees as a fit row's out-of-bag score has (the
   median): what the out-of-bag scores look like against what serving scores, and how much of
   the difference is the number of trees voting.
2. A backtest: the split applied again to the rows before the test rows (for a temporal split,
   its last part is exactly the validation rows), a forest grown on the inner fit rows and
   calibrated both ways: on the out-of-bag scores with the inner validation rows, and on the
   inner validation rows alone. Each checked on the inner test rows, at production weights.

    uv run python -m benchmarks.calibration_rows [--split temporal] [--seeds 42 43 44]
"""

import argparse
import logging
import sys

import numpy as np

from fraud_model.calibration import platt_probability, smoothed_log_odds
from training.calibrate import PSEUDO_COUNT, OutOfBag, calibration_check, out_of_bag_scores
from training.data import Dataset, load_transactions
from training.forest import train_forest_in_threads
from training.logistic import LogisticFit, fit_logistic
from training.options import ForestParams, SplitKind, TrainingOptions
from training.pipeline import make_split
from training.split import DuplicateGroups, duplicate_groups, split_rows
from training.weights import production_weights

logger = logging.getLogger("benchmarks.calibration_rows")
PERCENTILES = (1, 10, 25, 50, 75, 90, 99)


def platt(log_odds: np.ndarray, labels: np.ndarray, design: np.ndarray, rate: float) -> LogisticFit:
    """The calibration's fit (training.calibrate), at production weights."""
    return fit_logistic(log_odds, labels, production_weights(labels, rate, design))


def describe_fit(fit: LogisticFit) -> str:
    low, high = fit.interval("slope")
    return f"Platt intercept {fit.intercept:.2f}, slope {fit.slope:.2f} [{low:.2f}, {high:.2f}]"


def scores(dataset: Dataset, kind: SplitKind, groups: DuplicateGroups, seed: int) -> None:
    options, params = TrainingOptions(split=kind), ForestParams()
    split = make_split(dataset, kind, options, groups)
    features, labels, design = (
        dataset.features,
        dataset.labels.astype(np.int64),
        dataset.sampling.weights,
    )
    fit, validation = split.fit, split.validation
    forest = train_forest_in_threads(features[fit], labels[fit], params, seed=seed)
    out_of_bag = out_of_bag_scores(
        forest, features[fit], labels[fit], groups.ids[fit], seed=seed, params=params
    )
    per_tree = np.stack(
        [tree.predict_proba(features[validation])[:, 1] for tree in forest.estimators_]
    )
    voting = int(np.median(out_of_bag.trees))
    some = np.random.default_rng(seed).choice(len(per_tree), voting, replace=False)
    whole = per_tree.mean(axis=0)
    legitimate = np.flatnonzero(labels[validation] == 0)
    top = legitimate[np.argsort(-whole[legitimate])[:3]]
    logger.info(
        "%s split, forest seed %d: highest-scored legitimate validation rows (score, design "
        "weight): %s",
        kind, seed, ", ".join(f"({whole[i]:.3f}, {design[validation][i]:.2f})" for i in top),
    )  # fmt: skip
    has = out_of_bag.trees > 0
    rows = {
        "out-of-bag, fit rows": (
            smoothed_log_odds(out_of_bag.scores[has], out_of_bag.trees[has], PSEUDO_COUNT),
            fit[has],
        ),
        f"validation, all {len(per_tree)} trees": (
            smoothed_log_odds(whole, len(per_tree), PSEUDO_COUNT),
            validation,
        ),
        f"validation, {voting} trees": (
            smoothed_log_odds(per_tree[some].mean(axis=0), voting, PSEUDO_COUNT),
            validation,
        ),
    }
    logger.info("%s split, forest seed %d: log-odds percentiles %s", kind, seed, PERCENTILES)
    for name, (log_odds, part) in rows.items():
        for label, cls in ((0, "legitimate"), (1, "fraud")):
            values = np.percentile(log_odds[labels[part] == label], PERCENTILES)
            logger.info("  %-26s %-10s %s", name, cls, " ".join(f"{v:6.2f}" for v in values))
        fit_all = platt(log_odds, labels[part], design[part], options.production_fraud_rate)
        logger.info("  %-26s %s", name, describe_fit(fit_all))


def backtest(dataset: Dataset, kind: SplitKind, groups: DuplicateGroups, seed: int) -> None:
    options, params = TrainingOptions(split=kind), ForestParams()
    outer = make_split(dataset, kind, options, groups)
    before_test = np.sort(np.concatenate([outer.fit, outer.validation]))
    inner_rows = split_rows(
        kind,
        labels=dataset.labels[before_test],
        groups=groups.ids[before_test],
        strata=dataset.sampling.strata[before_test],
        volume=dataset.sampling.weights[before_test],
        times=None if dataset.times is None else dataset.times[before_test],
        test_size=options.validation_size,
        validation_size=options.validation_size,
        seed=options.split_seed,
    )
    fit, validation, test = (
        before_test[part] for part in (inner_rows.fit, inner_rows.validation, inner_rows.test)
    )
    features, labels, design = (
        dataset.features,
        dataset.labels.astype(np.int64),
        dataset.sampling.weights,
    )
    rate = options.production_fraud_rate
    live = production_weights(labels, rate, design)
    forest = train_forest_in_threads(features[fit], labels[fit], params, seed=seed)
    trees = len(forest.estimators_)
    out_of_bag: OutOfBag = out_of_bag_scores(
        forest, features[fit], labels[fit], groups.ids[fit], seed=seed, params=params
    )
    has = out_of_bag.trees > 0
    log_odds_oob = smoothed_log_odds(out_of_bag.scores[has], out_of_bag.trees[has], PSEUDO_COUNT)
    log_odds_validation = smoothed_log_odds(
        forest.predict_proba(features[validation])[:, 1], trees, PSEUDO_COUNT
    )
    log_odds_test = smoothed_log_odds(
        forest.predict_proba(features[test])[:, 1], trees, PSEUDO_COUNT
    )
    ways = {
        "out-of-bag and validation": platt(
            np.concatenate([log_odds_oob, log_odds_validation]),
            np.concatenate([labels[fit][has], labels[validation]]),
            np.concatenate([design[fit][has], design[validation]]),
            rate,
        ),
        "validation alone": platt(
            log_odds_validation, labels[validation], design[validation], rate
        ),
    }
    logger.info(
        "%s backtest, forest seed %d: inner fit %d rows (%d frauds), validation %d (%d), "
        "test %d (%d)",
        kind, seed, len(fit), labels[fit].sum(), len(validation), labels[validation].sum(),
        len(test), labels[test].sum(),
    )  # fmt: skip
    for name, fitted in ways.items():
        probabilities = platt_probability(log_odds_test, fitted.intercept, fitted.slope)
        check = calibration_check(probabilities, labels[test], live[test])
        slope_low, slope_high = check["slope_ci95"]  # type: ignore[misc]
        intercept_low, intercept_high = check["intercept_ci95"]  # type: ignore[misc]
        logger.info(
            "  %-26s %s | inner test: slope %.2f [%.2f, %.2f], intercept %.2f [%.2f, %.2f], "
            "log loss %.5f",
            name, describe_fit(fitted), check["slope"], slope_low, slope_high,
            check["intercept"], intercept_low, intercept_high, check["log_loss"],
        )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/creditcard_real_subset.csv.gz")
    parser.add_argument("--split", choices=["temporal", "random"], default="temporal")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    logging.getLogger("training").setLevel(logging.WARNING)

    dataset = load_transactions(args.data)
    groups = duplicate_groups(dataset.features)
    scores(dataset, args.split, groups, args.seeds[0])
    for seed in args.seeds:
        backtest(dataset, args.split, groups, seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
