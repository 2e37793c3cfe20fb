"""From a validated dataset to a saved artifact: split, train, calibrate, threshold, evaluate."""

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from fraud_model.drift import reference_bins
from fraud_model.features import FEATURE_NAMES
from fraud_model.metadata import ArtifactMetadata, Calibration, ScoreBins
from fraud_model.prior import adjust_to_prior
from training.calibrate import fit_training_prior, nominal_training_prior
from training.data import Dataset
from training.evaluate import (
    TrainingMetrics,
    bootstrap_intervals,
    choose_threshold,
    evaluate,
    expected_cost,
    prevalence_weights,
    small_test_warning,
)
from training.export import forest_to_onnx
from training.forest import ForestBuilder, train_forest_in_threads
from training.options import ForestParams, TrainingOptions
from training.report import REPORT_FILE, Split, build_report
from training.save import save_artifact

logger = logging.getLogger(__name__)


def split_off_test(
    dataset: Dataset, options: TrainingOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, x_test, y_train, y_test): the stratified test split a training run holds out."""
    x_train, x_test, y_train, y_test = train_test_split(
        dataset.features,
        dataset.labels,
        test_size=options.test_size,
        stratify=dataset.labels,
        random_state=options.seed,
    )
    return x_train, x_test, y_train, y_test


def train_and_export(
    dataset: Dataset,
    params: ForestParams,
    options: TrainingOptions,
    output_dir: str | Path,
    *,
    overwrite: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    build_forest: ForestBuilder = train_forest_in_threads,
) -> ArtifactMetadata:
    """Train on `dataset` and write a versioned artifact.

    The trees are built by `build_forest`: in this process's threads by default, or
    `training.ray_forest.train_forest_on_ray` on the Ray cluster this process is connected to.
    """
    x_train, x_test, y_train, y_test = split_off_test(dataset, options)
    x_fit, x_val, y_fit, y_val = train_test_split(
        x_train,
        y_train,
        test_size=options.validation_size,
        stratify=y_train,
        random_state=options.seed,
    )
    started = time.perf_counter()
    trees_by_node: Counter[str] = Counter()
    forest = build_forest(
        x_fit,
        y_fit,
        params,
        seed=options.seed,
        num_tasks=options.num_tasks,
        on_progress=on_progress,
        trees_by_node=trees_by_node,
    )
    train_seconds = time.perf_counter() - started

    calibration = Calibration(
        training_prior=fit_training_prior(
            forest.predict_proba(x_val)[:, 1],
            y_val,
            options.production_fraud_rate,
            fallback=nominal_training_prior(y_fit, params.class_weight),
        ),
        production_prior=options.production_fraud_rate,
    )

    def score(features: np.ndarray) -> np.ndarray:
        raw = forest.predict_proba(features)[:, 1]
        return adjust_to_prior(raw, calibration.training_prior, calibration.production_prior)

    amount = FEATURE_NAMES.index("Amount")
    validation = Split(y_val, score(x_val), x_val[:, amount])
    test = Split(y_test, score(x_test), x_test[:, amount])
    threshold = choose_threshold(
        validation.labels,
        validation.scores,
        strategy=options.threshold_strategy,
        target_precision=options.target_precision,
        target_rate=options.production_fraud_rate,
        amounts=validation.amounts,
        review_cost=options.review_cost,
    )
    rate = options.production_fraud_rate
    as_tested = evaluate(y_test, test.scores, threshold)
    as_tested["ci95"] = bootstrap_intervals(y_test, test.scores, threshold, seed=options.seed)
    at_rate = evaluate(y_test, test.scores, threshold, target_rate=rate)
    at_rate["ci95"] = bootstrap_intervals(
        y_test, test.scores, threshold, target_rate=rate, seed=options.seed
    )
    metrics = TrainingMetrics(
        test=as_tested,
        test_at_production_rate=at_rate,
        expected_cost_per_transaction=expected_cost(
            test.labels, test.scores, test.amounts, threshold, options.review_cost, rate
        ),
        review_cost=options.review_cost,
        train_seconds=round(train_seconds, 2),
        split_rows={"fit": len(y_fit), "validation": len(y_val), "test": len(y_test)},
    )
    warning = small_test_warning(y_test)
    if warning is not None:
        logger.warning(warning)
        metrics["warnings"] = [warning]
    report = build_report(
        validation=validation,
        test=test,
        threshold=threshold,
        strategy=_describe_strategy(options),
        review_cost=options.review_cost,
        production_rate=options.production_fraud_rate,
        importances=forest.feature_importances_,
        metrics=metrics,
        summary={
            "Data": f"{dataset.fingerprint.source} ({dataset.fingerprint.rows} rows, "
            f"{dataset.fingerprint.fraud_count} frauds), sha256 `{dataset.fingerprint.sha256}`",
            "Forest": ", ".join(f"{key}={value}" for key, value in asdict(params).items()),
            "Split": f"fit {len(y_fit)}, validation {len(y_val)}, test {len(y_test)} "
            f"(stratified, seed {options.seed})",
            "Calibration": f"prior shift from {calibration.training_prior:.4g} (fitted on the "
            f"validation rows; the trees saw fraud at "
            f"{nominal_training_prior(y_fit, params.class_weight):g}) to the production rate "
            f"{calibration.production_prior:g}",
        },
    )
    return save_artifact(
        output_dir,
        forest,
        forest_to_onnx(forest),
        parity_probe(x_test, y_test),
        threshold=threshold,
        threshold_strategy=_describe_strategy(options),
        calibration=calibration,
        training_params={
            "forest": asdict(params),
            "options": asdict(options),
            # Provenance only: the forest is the same whichever nodes built it.
            "trees_by_ray_node": dict(trees_by_node),
        },
        data=dataset.fingerprint,
        metrics=metrics,
        score_bins=live_score_bins(test, options.production_fraud_rate),
        extra_files=report,
        report_file=REPORT_FILE,
        overwrite=overwrite,
    )


def live_score_bins(test: Split, production_rate: float) -> ScoreBins:
    """The drift reference: held-out scores as live traffic would have them (fraud at the
    production rate)."""
    weights = prevalence_weights(test.labels, production_rate)
    edges, shares = reference_bins(test.scores, weights)
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
