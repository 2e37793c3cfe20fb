"""Fit the served probability's calibration, and measure how well it holds on held-out rows.

A forest of small leaves grown with balanced class weights ranks well but its score is not a
probability at the live fraud rate. The calibration (fraud_model.calibration, `platt`) maps the
log-odds of the score, smoothed as a share of tree votes, through two parameters fitted by weighted
logistic regression at production weights (design weights, legitimate rows scaled to the production
fraud rate), on training rows the forest did not learn from, scored as the test rows will be:

- a random split's test rows are drawn from the same days as the fit rows, so the fit rows'
  out-of-bag scores stand for them: each fit row scored by the trees whose bootstrap bag held
  neither it nor any row identical to it (smoothed as a share of that many votes), with the
  validation rows scored by the whole forest. That is about five times the frauds the validation
  rows hold alone;
- an out-of-time (temporal) split's test rows come after everything the forest saw. The fit
  rows' out-of-bag scores do not stand for them: trees that never saw a fit fraud still score it
  far more confidently than the whole forest scores a fraud of a later period (docs/MODEL.md has
  the figures), so a calibration fitted on them is too cautious later on. The validation rows,
  the latest before the test period and scored by the whole forest as serving scores them, are
  used alone.

Without bootstrap there is no out-of-bag row and the validation rows are used alone.

Boosted trees (training.boosting) score in log-odds already and have no out-of-bag rows: their
calibration (`platt_log_odds`) is the same logistic regression on their own log-odds, fitted on the
validation rows at production weights.
"""

import logging
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from fraud_model.calibration import smoothed_log_odds
from fraud_model.metadata import Calibration
from training.forest import bootstrap_counts, tree_seeds
from training.intervals import clopper_pearson, effective_size
from training.logistic import fit_logistic
from training.options import ForestParams, SplitKind
from training.weights import production_weights

logger = logging.getLogger(__name__)

# Half a vote on each side (Jeffreys' prior on a share of votes): no score is 0 or 1 in log-odds.
PSEUDO_COUNT = 0.5
# Reliability diagram bins on the served probability: fine where live traffic is, wide above.
RELIABILITY_EDGES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3)


@dataclass(frozen=True)
class OutOfBag:
    scores: np.ndarray  # mean over the trees that never saw the row (or a copy of it)
    trees: np.ndarray  # how many trees that is, per row (0: no out-of-bag score)


def out_of_bag_scores(
    forest: RandomForestClassifier,
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    *,
    seed: int,
    params: ForestParams,
) -> OutOfBag:
    """Each fit row's score from the trees whose bag held no row of its duplicate group.

    The trees' bags are drawn again from their seeds (training.forest.bootstrap_counts), as the
    forest was grown from `features` and `seed`.
    """
    totals, trees = np.zeros(len(labels)), np.zeros(len(labels), dtype=np.int64)
    if not params.bootstrap:
        return OutOfBag(totals, trees)
    group_count = int(groups.max()) + 1
    for tree, tree_seed in zip(forest.estimators_, tree_seeds(len(forest.estimators_), seed),
                               strict=True):  # fmt: skip
        counts = bootstrap_counts(tree_seed, len(labels), params)
        bagged_groups = np.bincount(groups, weights=counts, minlength=group_count) > 0
        outside = ~bagged_groups[groups]
        if outside.any():
            totals[outside] += tree.predict_proba(features[outside])[:, 1]
            trees[outside] += 1
    scores = np.divide(totals, trees, out=np.zeros(len(labels)), where=trees > 0)
    return OutOfBag(scores, trees)


def calibrates_on_out_of_bag(split: SplitKind) -> bool:
    """Whether the fit rows' out-of-bag scores stand for the test rows of this kind of split (see
    the module's docstring): for a random split they do, for an out-of-time split they do not."""
    return split == "random"


@dataclass(frozen=True)
class CalibrationFit:
    calibration: Calibration
    rows: int
    frauds: int
    source: str  # which rows it was fitted on
    intercept_ci95: list[float]
    slope_ci95: list[float]


def fit_calibration(
    *,
    out_of_bag: OutOfBag | None,
    fit_labels: np.ndarray,
    fit_design: np.ndarray,
    validation_scores: np.ndarray,
    validation_labels: np.ndarray,
    validation_design: np.ndarray,
    trees: int,
    production_rate: float,
) -> CalibrationFit:
    """Platt parameters on the out-of-bag fit rows and the validation rows, at production
    weights (`*_design`: the rows' design weights); `out_of_bag` None: on the validation rows
    alone (an out-of-time split, calibrates_on_out_of_bag)."""
    if out_of_bag is None:
        has_score = np.zeros(len(fit_labels), dtype=bool)
        fit_log_odds = np.empty(0)
        alone = "out-of-time split: the fit rows' out-of-bag scores are of earlier days"
    else:
        has_score = out_of_bag.trees > 0
        fit_log_odds = smoothed_log_odds(
            out_of_bag.scores[has_score], out_of_bag.trees[has_score], PSEUDO_COUNT
        )
        alone = "no out-of-bag rows: no bootstrap"
    log_odds = np.concatenate([
        fit_log_odds, smoothed_log_odds(validation_scores, trees, PSEUDO_COUNT)
    ])  # fmt: skip
    labels = np.concatenate([fit_labels[has_score], validation_labels])
    design = np.concatenate([fit_design[has_score], validation_design])
    source = (
        f"out-of-bag scores of {int(has_score.sum())} fit rows and the {len(validation_labels)} "
        "validation rows"
        if has_score.any()
        else f"the {len(validation_labels)} validation rows alone ({alone})"
    )
    return _platt(
        log_odds, labels, design, production_rate, source, trees=trees, pseudo_count=PSEUDO_COUNT
    )


def fit_log_odds_calibration(
    *,
    validation_scores: np.ndarray,
    validation_labels: np.ndarray,
    validation_design: np.ndarray,
    production_rate: float,
) -> CalibrationFit:
    """Platt parameters on boosted trees' log-odds of the validation rows, at production
    weights (`validation_design`: the rows' design weights)."""
    return _platt(
        np.asarray(validation_scores, dtype=np.float64),
        validation_labels,
        validation_design,
        production_rate,
        f"the {len(validation_labels)} validation rows (boosted trees have no out-of-bag rows)",
    )


def _platt(
    log_odds: np.ndarray,
    labels: np.ndarray,
    design: np.ndarray,
    production_rate: float,
    source: str,
    *,
    trees: int | None = None,
    pseudo_count: float | None = None,
) -> CalibrationFit:
    """A forest's `platt` calibration (with `trees` and `pseudo_count`), or boosted trees'
    `platt_log_odds` (without)."""
    weights = production_weights(labels, production_rate, design)
    fit = fit_logistic(log_odds, labels, weights)
    if fit.slope <= 0:
        raise ValueError(
            f"the calibration fit on {source} gives slope {fit.slope:.3g}: the model's scores "
            "do not rank frauds above legitimate rows there"
        )
    calibration = Calibration(
        method="platt" if trees is not None else "platt_log_odds",
        production_prior=production_rate,
        intercept=fit.intercept,
        slope=fit.slope,
        trees=trees,
        pseudo_count=pseudo_count,
    )
    logger.info(
        "Calibration: Platt intercept %.3f, slope %.3f, fitted on %s", fit.intercept, fit.slope,
        source,
    )  # fmt: skip
    return CalibrationFit(
        calibration=calibration,
        rows=len(labels),
        frauds=int(labels.sum()),
        source=source,
        intercept_ci95=fit.interval("intercept"),
        slope_ci95=fit.interval("slope"),
    )


def calibration_check(
    probabilities: np.ndarray, labels: np.ndarray, weights: np.ndarray
) -> dict[str, object]:
    """How the served probabilities of held-out rows hold up at production weights: Brier score,
    log loss, calibration intercept (slope held at 1) and slope with 95 % intervals, and the
    reliability diagram's bins."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    log_odds = np.log(p) - np.log1p(-p)
    slope = fit_logistic(log_odds, y, w)
    intercept = fit_logistic(log_odds, y, w, fixed_slope=True)
    return {
        "brier": float(np.sum(w * (p - y) ** 2)),
        "log_loss": float(-np.sum(w * (y * np.log(p) + (1 - y) * np.log1p(-p)))),
        "mean_probability": float(np.sum(w * p)),
        "fraud_share": float(np.sum(w * y)),
        "intercept": intercept.intercept,
        "intercept_ci95": intercept.interval("intercept"),
        "slope": slope.slope,
        "slope_ci95": slope.interval("slope"),
        "reliability": reliability_bins(p, labels, w),
    }


def reliability_bins(
    probabilities: np.ndarray, labels: np.ndarray, weights: np.ndarray
) -> list[dict[str, float]]:
    """Predicted against observed fraud share per probability bin, at the rows' weights; the
    observed share with a Clopper-Pearson interval on the bin's effective size."""
    bins = np.searchsorted(np.asarray(RELIABILITY_EDGES), probabilities, side="right")
    edges = (0.0, *RELIABILITY_EDGES, 1.0)
    result = []
    for index in range(len(edges) - 1):
        inside = bins == index
        if not inside.any():
            continue
        w = weights[inside]
        observed = float(np.sum(w * labels[inside]) / w.sum())
        size = effective_size(w)
        low, high = clopper_pearson(observed * size, size)
        result.append({
            "low_edge": edges[index],
            "high_edge": edges[index + 1],
            "predicted": float(np.average(probabilities[inside], weights=w)),
            "observed": observed,
            "observed_low": low,
            "observed_high": high,
            "rows": int(inside.sum()),
            "frauds": int(labels[inside].sum()),
            "share": float(w.sum() / weights.sum()),
        })  # fmt: skip
    return result
