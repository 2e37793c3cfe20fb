"""Re-measure an artifact on the test rows of its own training run, as training now measures:
the data set's design weights, exact intervals, the calibration check, the rows with a twin
among the training rows set apart. For an artifact of format 3 (trained before the grouped
splits), its test rows are rebuilt the way it split them (a stratified split with its seed).

uv run python -m benchmarks.calibration_check ARTIFACT --data data/creditcard_real_subset.csv.gz
"""

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from fraud_model.artifact import load_artifact
from fraud_model.decision import DecisionRule, decide
from training.calibrate import calibration_check
from training.data import Dataset, load_transactions
from training.evaluate import expected_cost, ranking_metrics
from training.intervals import decision_intervals, rate_interval
from training.options import TrainingOptions
from training.pipeline import make_split
from training.split import duplicate_groups
from training.weights import production_weights

logger = logging.getLogger("benchmarks.calibration_check")


def test_rows(dataset: Dataset, options: TrainingOptions, format_version: int) -> np.ndarray:
    if format_version == 3:
        _, test = train_test_split(
            np.arange(len(dataset.labels)),
            test_size=options.test_size,
            stratify=dataset.labels,
            random_state=options.seed,
        )
        return np.sort(test)
    return make_split(dataset, options.split, options, duplicate_groups(dataset.features)).test


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--data", type=Path, required=True, help="the file it was trained on")
    args = parser.parse_args()
    artifact = load_artifact(args.artifact)
    metadata = artifact.metadata
    options = TrainingOptions(**metadata.training_params["options"])
    data = load_transactions(args.data)
    rows = test_rows(data, options, metadata.format_version)
    labels, features = data.labels[rows], data.features[rows]
    rate = metadata.calibration.production_prior
    live = production_weights(data.labels, rate, data.sampling.weights)[rows]
    uniform = production_weights(labels, rate)  # every legitimate row alike, as format 3 did
    served = artifact.fraud_probability(features)
    rule = metadata.decision_rule
    flagged = decide(served, features, rule)
    fraud = labels == 1
    groups = duplicate_groups(data.features).ids
    others = np.setdiff1d(np.arange(len(data.labels)), rows)
    twin = np.isin(groups[rows], groups[others])
    logger.info(
        "%s (format %d): %d test rows, %d frauds, %d of them with a twin among the other rows",
        metadata.model_version, metadata.format_version, len(rows), int(fraud.sum()),
        int((twin & fraud).sum()),
    )  # fmt: skip
    for name, weights in (("design weights", live), ("uniform re-weighting", uniform)):
        pr_auc, _ = ranking_metrics(labels, served, weights[None, :])
        logger.info("PR-AUC at production rate, %s: %.4f", name, pr_auc[0])
    # Intercept and slope need finite log-odds: rows scored exactly 0 or 1 (format 3 can) are
    # left out of them, and make the log loss infinite.
    zero = served == 0
    inside = ~zero & (served < 1)
    check = calibration_check(served[inside], labels[inside], live[inside])
    with np.errstate(divide="ignore", invalid="ignore"):
        log_loss = -np.average(np.where(fraud, np.log(served), np.log1p(-served)), weights=live)
    logger.info(
        "Calibration (design weights): mean probability %.5f for a fraud share of %.5f; on the "
        "rows scored strictly between 0 and 1, intercept %.3f %s, slope %.3f %s; log loss %.5f",
        np.average(served, weights=live), np.average(fraud, weights=live), check["intercept"],
        _interval(check["intercept_ci95"]), check["slope"], _interval(check["slope_ci95"]),
        log_loss,
    )  # fmt: skip
    logger.info(
        "Scored exactly 0: %.1f %% of live-weighted traffic, %d test frauds",
        100 * live[zero].sum() / live.sum(), int((zero & fraud).sum()),
    )  # fmt: skip
    share = float(np.average(fraud, weights=live))  # the test period's fraud rate, live
    intervals = decision_intervals(labels, flagged, data.sampling.weights[rows], share)
    recall = rate_interval(flagged[fraud])
    _, low, high = intervals.precision
    logger.info(
        "%s: recall %.3f %s (%.3f without the frauds that have a twin), precision %.3f "
        "[%.3f, %.3f]",
        rule.describe(), recall.estimate, _interval(recall.as_list()),
        flagged[fraud & ~twin].mean(), intervals.precision[0], low, high,
    )  # fmt: skip
    amounts = features[:, -1].astype(np.float64)
    cost_rule = DecisionRule(rule="expected_cost", review_cost=options.review_cost)
    for candidate in (rule, cost_rule):
        decisions = decide(served, features, candidate)
        logger.info(
            "Cost per live transaction of %s: %.4f",
            candidate.describe(),
            expected_cost(labels, decisions, amounts, options.review_cost, live),
        )
    return 0


def _interval(bounds: object) -> str:
    low, high = bounds  # type: ignore[misc]
    return f"[{low:.3f}, {high:.3f}]"


if __name__ == "__main__":
    sys.exit(main())
