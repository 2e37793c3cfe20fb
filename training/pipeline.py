"""From a validated dataset to a saved artifact: split, grow, calibrate, set up the decision
rules, measure, report.

The served model (a forest, or boosted trees: `options.model_family`) is grown on the fit rows of
`options.split` (its headline figures are that split's test rows); `options.compare_split` grows a
second one the same way on the other split, measured beside it in the report only. Extra model
seeds (and, for the random split, extra split seeds) measure how much the threshold and the
headline metric move with them.
"""

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fraud_model.calibration import calibrated_probability
from fraud_model.decision import DecisionRule, decide
from fraud_model.drift import reference_bins
from fraud_model.engines import OnnxEngine
from fraud_model.features import FEATURE_DTYPE
from fraud_model.metadata import ArtifactMetadata, ScoreBins
from training.boosting import fit_boosted_trees, mean_absolute_contributions
from training.calibrate import (
    CalibrationFit,
    calibrates_on_out_of_bag,
    calibration_check,
    fit_calibration,
    fit_log_odds_calibration,
    out_of_bag_scores,
)
from training.data import Dataset
from training.evaluate import (
    SplitMetrics,
    TrainingMetrics,
    evaluate,
    ranking_metrics,
    small_test_warning,
)
from training.export import boosted_trees_to_onnx, forest_to_onnx
from training.forest import ForestBuilder, train_forest_in_threads
from training.intervals import decision_intervals, rate_interval
from training.options import BoostingParams, ForestParams, SplitKind, TrainingOptions
from training.report import REPORT_FILE, build_report
from training.rules import RuleSetup, Scored, budget_check, compare_rules, set_up_rules
from training.save import save_artifact
from training.split import DuplicateGroups, RowSplit, duplicate_groups, split_rows
from training.weights import production_weights

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelParams:
    """The parameters of both families; `options.model_family` says which one is grown."""

    forest: ForestParams
    boosting: BoostingParams


@dataclass(frozen=True)
class SplitRun:
    """One model grown on one split's fit rows, calibrated, and its held-out rows scored as
    serving scores them (the ONNX engine, then the calibration)."""

    split: RowSplit
    model: Any  # RandomForestClassifier or HistGradientBoostingClassifier
    onnx: bytes
    calibration: CalibrationFit
    validation: Scored
    test: Scored
    fit_frauds: int
    train_seconds: float


def make_split(
    dataset: Dataset,
    kind: SplitKind,
    options: TrainingOptions,
    groups: DuplicateGroups,
    split_seed: int | None = None,
) -> RowSplit:
    return split_rows(
        kind,
        labels=dataset.labels,
        groups=groups.ids,
        strata=dataset.sampling.strata,
        volume=dataset.sampling.weights,
        times=dataset.times,
        test_size=options.test_size,
        validation_size=options.validation_size,
        seed=options.split_seed if split_seed is None else split_seed,
    )


def grow_and_calibrate(
    dataset: Dataset,
    split: RowSplit,
    groups: DuplicateGroups,
    params: ModelParams,
    options: TrainingOptions,
    *,
    seed: int,
    build_forest: ForestBuilder,
    on_progress: Callable[[int, int], None] | None = None,
    trees_by_node: Counter[str] | None = None,
) -> SplitRun:
    features, labels, design = dataset.features, dataset.labels, dataset.sampling.weights
    # Held-out rows count as the live transactions they stand for: the design weights, with the
    # legitimate rows scaled once for the whole data set (not per split, so that a test period
    # keeps the fraud rate it had).
    live = production_weights(labels, options.production_fraud_rate, design)
    fit, validation, test = split.fit, split.validation, split.test
    started = time.perf_counter()
    model: Any
    if options.model_family == "hist_gradient_boosting":
        model = fit_boosted_trees(features[fit], labels[fit], params.boosting, seed=seed)
        if on_progress is not None:
            on_progress(model.n_iter_, model.n_iter_)
        onnx = boosted_trees_to_onnx(model)
    else:
        model = build_forest(
            features[fit],
            labels[fit],
            params.forest,
            seed=seed,
            num_tasks=options.num_tasks,
            on_progress=on_progress,
            trees_by_node=trees_by_node,
        )
        onnx = forest_to_onnx(model)
    train_seconds = time.perf_counter() - started
    engine = OnnxEngine(onnx)

    def raw(rows: np.ndarray) -> np.ndarray:
        return engine.raw_fraud_scores(np.asarray(features[rows], dtype=FEATURE_DTYPE))

    validation_raw = raw(validation)
    if options.model_family == "hist_gradient_boosting":
        calibration = fit_log_odds_calibration(
            validation_scores=validation_raw,
            validation_labels=labels[validation],
            validation_design=design[validation],
            production_rate=options.production_fraud_rate,
        )
    else:
        out_of_bag = (
            out_of_bag_scores(
                model, features[fit], labels[fit], groups.ids[fit], seed=seed, params=params.forest
            )
            if calibrates_on_out_of_bag(split.kind)
            else None
        )
        calibration = fit_calibration(
            out_of_bag=out_of_bag,
            fit_labels=labels[fit],
            fit_design=design[fit],
            validation_scores=validation_raw,
            validation_labels=labels[validation],
            validation_design=design[validation],
            trees=len(model.estimators_),
            production_rate=options.production_fraud_rate,
        )

    def scored(rows: np.ndarray, raw_scores: np.ndarray) -> Scored:
        probabilities = calibrated_probability(raw_scores, calibration.calibration)
        return Scored(labels[rows], probabilities, features[rows], design[rows], live[rows])

    return SplitRun(
        split=split,
        model=model,
        onnx=onnx,
        calibration=calibration,
        validation=scored(validation, validation_raw),
        test=scored(test, raw(test)),
        fit_frauds=int(labels[fit].sum()),
        train_seconds=train_seconds,
    )


def rule_metrics(scored: Scored, rule: DecisionRule, *, weighted: bool) -> SplitMetrics:
    """The shipped rule's metrics on some rows, at production weights or as the rows are."""
    flagged = decide(scored.probabilities, scored.features, rule)
    if weighted:
        return evaluate(
            scored.labels, scored.probabilities, flagged, cut=rule.cut, weights=scored.weights,
            design=scored.design, rate=scored.fraud_share,
        )  # fmt: skip
    return evaluate(scored.labels, scored.probabilities, flagged, cut=rule.cut)


def validation_against_test(run: SplitRun, rule: DecisionRule) -> dict[str, Any]:
    """Recall, false-positive rate and alerts of a rule on the validation and the test rows, each
    with its 95 % interval; `disagree` lists the measures whose two intervals do not overlap."""
    result: dict[str, Any] = {}
    for name, scored in (("validation", run.validation), ("test", run.test)):
        flagged = decide(scored.probabilities, scored.features, rule)
        fraud = scored.labels == 1
        recall = rate_interval(flagged[fraud], scored.design[fraud])
        fpr = rate_interval(flagged[~fraud], scored.design[~fraud])
        alerts = decision_intervals(scored.labels, flagged, scored.design, scored.fraud_share)
        result[name] = {
            "recall": [recall.estimate, recall.low, recall.high],
            "false_positive_rate": [fpr.estimate, fpr.low, fpr.high],
            "alerts_per_10k": [10_000 * value for value in alerts.alert_rate],
        }
    disagreements = [
        metric
        for metric in ("recall", "false_positive_rate", "alerts_per_10k")
        if result["validation"][metric][2] < result["test"][metric][1]
        or result["test"][metric][2] < result["validation"][metric][1]
    ]
    result["disagree"] = disagreements
    return result


def split_figures(
    run: SplitRun, setup: RuleSetup, groups: DuplicateGroups, options: TrainingOptions
) -> dict[str, Any]:
    """Everything the report says about one split."""
    split = run.split
    rules = compare_rules(run.test, setup.candidates, options.review_cost)
    return {
        "description": split.description,
        "rows": {
            "fit": len(split.fit),
            "validation": len(split.validation),
            "test": len(split.test),
        },
        "frauds": {
            "fit": run.fit_frauds,
            "validation": int(run.validation.labels.sum()),
            "test": int(run.test.labels.sum()),
        },
        "duplicate_groups": groups.groups,
        "duplicate_rows": groups.rows,
        "groups_across_parts": groups_across_parts(groups, split),
        "decision_rule": setup.chosen.describe(),
        "decision_rule_name": setup.chosen.rule,
        "why": setup.why,
        "test": rule_metrics(run.test, setup.chosen, weighted=False),
        "test_at_production_rate": rule_metrics(run.test, setup.chosen, weighted=True),
        "rules_on_validation": setup.validation,
        "rules_on_test": rules,
        "alert_budget_on_test": budget_check(rules["alert_budget"], options.alerts_per_10k),
        "validation_against_test": validation_against_test(run, setup.chosen),
        "calibration": {
            "fitted_on": run.calibration.source,
            "rows": run.calibration.rows,
            "frauds": run.calibration.frauds,
            "intercept": run.calibration.calibration.intercept,
            "intercept_ci95": run.calibration.intercept_ci95,
            "slope": run.calibration.calibration.slope,
            "slope_ci95": run.calibration.slope_ci95,
            "test": calibration_check(run.test.probabilities, run.test.labels, run.test.weights),
        },
        "train_seconds": round(run.train_seconds, 2),
    }


def groups_across_parts(groups: DuplicateGroups, split: RowSplit) -> int:
    """Groups of identical rows found in more than one of fit, validation and test (0 by
    construction; counted so that the report can say so)."""
    parts = [split.fit, split.validation, split.test]
    pairs = np.unique(np.column_stack([
        groups.ids[np.concatenate(parts)],
        np.repeat(np.arange(3), [len(part) for part in parts]),
    ]), axis=0)  # fmt: skip
    _, per_group = np.unique(pairs[:, 0], return_counts=True)
    return int((per_group > 1).sum())


def seed_spread(
    dataset: Dataset,
    primary: SplitRun,
    random_run: SplitRun | None,
    groups: DuplicateGroups,
    params: ModelParams,
    options: TrainingOptions,
    build_forest: ForestBuilder,
) -> dict[str, Any]:
    """How the rules' thresholds and the headline metric move with the model's seed (the served
    model's split), and the headline metric with the split's seed (the random split, when one
    was run: `random_run`)."""
    by_model_seed = []
    for offset in range(options.stability_runs + 1):
        seed = options.seed + offset
        run = primary if offset == 0 else grow_and_calibrate(
            dataset, primary.split, groups, params, options, seed=seed, build_forest=build_forest
        )  # fmt: skip
        setup = set_up_rules(run.validation, options)
        by_model_seed.append({
            "seed": seed,
            "fixed_threshold": setup.fixed_threshold,
            "alert_budget_threshold": setup.candidates["alert_budget"].cut,
            "decision_rule": setup.chosen.rule,
            **_headline(run),
        })  # fmt: skip
    result: dict[str, Any] = {"split": primary.split.kind, "model_seeds": by_model_seed}
    if random_run is None:
        return result
    by_split_seed = [{"split_seed": options.split_seed, **_headline(random_run)}]
    for offset in range(1, options.stability_runs + 1):
        split = make_split(dataset, "random", options, groups, options.split_seed + offset)
        run = grow_and_calibrate(
            dataset, split, groups, params, options, seed=options.seed, build_forest=build_forest
        )
        by_split_seed.append({"split_seed": options.split_seed + offset, **_headline(run)})
    result["split_seeds"] = by_split_seed
    return result


def _headline(run: SplitRun) -> dict[str, float]:
    test = run.test
    check = calibration_check(test.probabilities, test.labels, test.weights)
    return {
        "pr_auc_at_production_rate": _pr_auc(test),
        "calibration_slope": float(check["slope"]),  # type: ignore[arg-type]
        "calibration_intercept": float(check["intercept"]),  # type: ignore[arg-type]
    }


def _pr_auc(scored: Scored) -> float:
    pr_auc, _ = ranking_metrics(scored.labels, scored.probabilities, scored.weights[None, :])
    return float(pr_auc[0])


def train_and_export(
    dataset: Dataset,
    params: ForestParams,
    options: TrainingOptions,
    output_dir: str | Path,
    *,
    overwrite: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    build_forest: ForestBuilder = train_forest_in_threads,
    boosting: BoostingParams | None = None,
) -> ArtifactMetadata:
    """Train on `dataset` and write a versioned artifact: a forest with `params`, or with
    `options.model_family` hist_gradient_boosting boosted trees with `boosting` (None: the
    defaults of BoostingParams).

    A forest's trees are built by `build_forest`: in this process's threads by default, or
    `training.ray_forest.train_forest_on_ray` on the Ray cluster this process is connected to.
    """
    boosted = options.model_family == "hist_gradient_boosting"
    both = ModelParams(forest=params, boosting=boosting or BoostingParams())
    groups = duplicate_groups(dataset.features)
    logger.info("Duplicate rows: %d in %d groups, each kept in one split", groups.rows,
                groups.groups)  # fmt: skip
    trees_by_node: Counter[str] = Counter()
    primary = grow_and_calibrate(
        dataset,
        make_split(dataset, options.split, options, groups),
        groups,
        both,
        options,
        seed=options.seed,
        build_forest=build_forest,
        on_progress=on_progress,
        trees_by_node=trees_by_node,
    )
    setup = set_up_rules(primary.validation, options)
    logger.info("Decision rule: %s (%s)", setup.chosen.describe(), setup.why)
    splits: dict[str, Any] = {options.split: split_figures(primary, setup, groups, options)}
    runs = {options.split: primary}
    if options.compare_split is not None and options.compare_split != options.split:
        other = grow_and_calibrate(
            dataset, make_split(dataset, options.compare_split, options, groups), groups, both,
            options, seed=options.seed, build_forest=build_forest,
        )  # fmt: skip
        runs[options.compare_split] = other
        splits[options.compare_split] = split_figures(
            other, set_up_rules(other.validation, options), groups, options
        )
    stability = seed_spread(
        dataset, primary, runs.get("random"), groups, both, options, build_forest
    )
    headline = splits[options.split]
    rate = options.production_fraud_rate
    metrics = TrainingMetrics(
        test=headline["test"],
        test_at_production_rate=headline["test_at_production_rate"],
        expected_cost_per_transaction=headline["rules_on_test"][setup.chosen.rule][
            "cost_per_transaction"
        ],
        review_cost=options.review_cost,
        train_seconds=round(primary.train_seconds, 2),
        split_rows=headline["rows"],
        headline_split=options.split,
        decision_rule=setup.chosen.describe(),
        splits=splits,
        calibration=headline["calibration"],
        stability=stability,
    )
    warning = small_test_warning(primary.test.labels)
    if warning is not None:
        logger.warning(warning)
        metrics["warnings"] = [warning]
    if boosted:
        importances = mean_absolute_contributions(primary.model, primary.validation.features)
        importance_label = "mean |reason-code contribution| (log-odds), validation rows"
        model_line = ("Boosted trees", ", ".join(
            f"{key}={value}" for key, value in asdict(both.boosting).items()
        ))  # fmt: skip
        calibration_line = "Platt on the boosted trees' log-odds"
        family_params: dict[str, Any] = {"boosting": asdict(both.boosting)}
    else:
        importances = primary.model.feature_importances_
        importance_label = "mean decrease in impurity"
        model_line = (
            "Forest",
            ", ".join(f"{key}={value}" for key, value in asdict(params).items()),
        )
        calibration_line = "Platt on the log-odds of the score smoothed as a share of tree votes"
        family_params = {"forest": asdict(params)}
    report = build_report(
        validation=primary.validation,
        test=primary.test,
        setup=setup,
        options=options,
        importances=importances,
        importance_label=importance_label,
        metrics=metrics,
        summary={
            "Data": f"{dataset.fingerprint.source} ({dataset.fingerprint.rows} rows, "
            f"{dataset.fingerprint.fraud_count} frauds), sha256 `{dataset.fingerprint.sha256}`",
            "Sampling weights": dataset.sampling.description,
            model_line[0]: f"{model_line[1]}, seed {options.seed}",
            "Split (headline figures)": primary.split.description,
            "Calibration": f"{calibration_line}, fitted at the production rate {rate:g} on "
            f"{primary.calibration.source}",
        },
    )
    return save_artifact(
        output_dir,
        primary.model,
        primary.onnx,
        parity_probe(dataset.features[primary.split.test], primary.test.labels),
        threshold=setup.fixed_threshold,
        threshold_strategy=_describe_strategy(options),
        decision=setup.chosen,
        alert_curve=setup.curve,
        calibration=primary.calibration.calibration,
        training_params={
            **family_params,
            "options": asdict(options),
            # Provenance only: the forest is the same whichever nodes built it.
            "trees_by_ray_node": dict(trees_by_node),
        },
        data=dataset.fingerprint,
        metrics=metrics,
        score_bins=live_score_bins(primary.test),
        extra_files=report,
        report_file=REPORT_FILE,
        overwrite=overwrite,
    )


def live_score_bins(test: Scored) -> ScoreBins:
    """The drift reference: held-out scores as live traffic would have them (production
    weights)."""
    edges, shares = reference_bins(test.probabilities, test.weights)
    return ScoreBins(edges=edges, shares=shares)


def parity_probe(features: np.ndarray, labels: np.ndarray, per_class: int = 256) -> np.ndarray:
    """Held-out rows of both classes on which the ONNX and sklearn engines must agree."""
    return np.concatenate([features[labels == 1][:per_class], features[labels == 0][:per_class]])


def _describe_strategy(options: TrainingOptions) -> str:
    if options.threshold_strategy == "min_cost":
        return f"min_cost (review cost {options.review_cost:g}) on validation at production rate"
    if options.threshold_strategy == "target_precision":
        return f"target_precision={options.target_precision} on validation at production rate"
    return "best_f1 on validation at production rate"
