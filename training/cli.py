"""`python -m training`: train a RandomForest (in threads or on a Ray cluster) or gradient-boosted
trees (`--model-family hist_gradient_boosting`), and write a versioned model artifact."""

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Protocol, TextIO

# Only the parameters at import time, so that `--help` answers at once; pandas, scikit-learn
# and Ray are imported by main() when it runs.
from fraud_model.families import MODEL_FAMILIES
from training.options import PRODUCTION_FRAUD_RATE, BoostingParams, ForestParams, TrainingOptions

SPLITS = ["random", "temporal"]
RULE_CHOICES = ["auto", "fixed_threshold", "alert_budget", "expected_cost"]

logger = logging.getLogger("training")

FOREST, BOOSTING, OPTIONS = ForestParams(), BoostingParams(), TrainingOptions()


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help that shows a default where there is one to show: not for flags, nor for None."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        flag = isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction)
        if flag or action.default in (None, argparse.SUPPRESS) or "%(default)" in text:
            return text
        shown = "none" if action.default is None else action.default
        return f"{text} (default: {shown})"


def parse_max_features(value: str) -> str | float | int | None:
    if value in ("sqrt", "log2"):
        return value
    if value.lower() == "none":
        return None
    number = float(value)
    return int(number) if number.is_integer() and "." not in value else number


def parse_optional_int(value: str) -> int | None:
    return None if value.lower() == "none" else int(value)


def parse_boosting_class_weight(value: str) -> str | None:
    if value not in ("none", "balanced"):
        raise argparse.ArgumentTypeError("choose none or balanced")
    return None if value == "none" else value


def parse_class_weight(value: str) -> str | None:
    if value not in ("none", "balanced", "balanced_subsample"):
        raise argparse.ArgumentTypeError("choose none, balanced or balanced_subsample")
    return None if value == "none" else value


# Forest options: ForestParams field -> argparse settings (the default comes from ForestParams).
FOREST_OPTIONS: dict[str, dict[str, Any]] = {
    "n_estimators": {"type": int, "help": "number of trees"},
    "criterion": {"choices": ["gini", "entropy", "log_loss"], "help": "split quality measure"},
    "max_depth": {"type": parse_optional_int, "help": "maximum tree depth ('none' = unlimited)"},
    "min_samples_split": {"type": int, "help": "minimum rows to split a node"},
    "min_samples_leaf": {"type": int, "help": "minimum rows in a leaf"},
    "max_features": {
        "type": parse_max_features,
        "help": "features tried per split: sqrt, log2, none, a fraction or a count",
    },
    "max_leaf_nodes": {
        "type": parse_optional_int,
        "help": "maximum leaves per tree ('none' = unlimited)",
    },
    "max_samples": {"type": float, "help": "bootstrap sample size: a fraction (<= 1) of the rows"},
    "class_weight": {
        "type": parse_class_weight,
        "help": "class weighting of the trees: none, balanced or balanced_subsample",
    },
    "ccp_alpha": {"type": float, "help": "minimal cost-complexity pruning strength"},
}


# Boosting options: BoostingParams field -> argparse settings (the default comes from
# BoostingParams). Flags are --boost-NAME: some names are the forest's too, with other defaults.
BOOSTING_OPTIONS: dict[str, dict[str, Any]] = {
    "learning_rate": {"type": float, "help": "shrinkage of each tree's leaf values"},
    "max_iter": {"type": int, "help": "number of trees (no early stopping)"},
    "max_leaf_nodes": {
        "type": parse_optional_int,
        "help": "maximum leaves per tree ('none' = unlimited)",
    },
    "max_depth": {"type": parse_optional_int, "help": "maximum tree depth ('none' = unlimited)"},
    "min_samples_leaf": {"type": int, "help": "minimum rows in a leaf"},
    "l2_regularization": {"type": float, "help": "L2 penalty on the leaf values"},
    "max_features": {"type": float, "help": "share of the features tried at each split"},
    "class_weight": {
        "type": parse_boosting_class_weight,
        "help": "class weighting: none or balanced",
    },
}


# TrainingOptions field -> argparse settings (the default comes from TrainingOptions).
TRAINING_OPTIONS: dict[str, dict[str, Any]] = {
    "model_family": {
        "choices": MODEL_FAMILIES,
        "help": "what to train: a random_forest (the champion's family, options under 'forest') "
        "or hist_gradient_boosting (scikit-learn's HistGradientBoostingClassifier, options "
        "under 'boosted trees'; grown in this process, not on Ray)",
    },
    "seed": {"type": int, "help": "the model's seed (a forest's: every tree's)"},
    "split_seed": {"type": int, "help": "the random split's seed, apart from the forest's"},
    "split": {
        "choices": SPLITS,
        "help": "the split the served forest is grown and measured on: random (stratified) or "
        "temporal (test on the latest Time, validation before it, fit on the earliest)",
    },
    "compare_split": {
        "choices": SPLITS,
        "help": "also grow a forest on this split and report its figures beside",
    },
    "test_size": {"type": float, "help": "held-out test share of live volume"},
    "validation_size": {
        "type": float,
        "help": "share of the rest held out to set up the decision rules",
    },
    "production_fraud_rate": {
        "type": float,
        "help": "fraud share of live traffic; served probabilities are calibrated to it",
    },
    "decision_rule": {
        "choices": RULE_CHOICES,
        "help": "the rule the model ships with: fixed_threshold, alert_budget, expected_cost "
        "(flag when fraud_probability * Amount >= --review-cost), or auto: the cheapest on the "
        "validation rows within the alert budget",
    },
    "alerts_per_10k": {
        "type": float,
        "help": "the alert budget: alerts per 10,000 live transactions",
    },
    "threshold_strategy": {
        "choices": ["best_f1", "target_precision", "min_cost"],
        "help": "how fixed_threshold's threshold is chosen on the validation split (min_cost: "
        "lowest expected cost, a missed fraud costing its Amount and a flagged one "
        "--review-cost)",
    },
    "target_precision": {
        "type": float,
        "help": "precision to reach with --threshold-strategy target_precision",
    },
    "review_cost": {
        "type": float,
        "help": "cost of reviewing one flagged transaction, in the unit of Amount (expected_cost, "
        "min_cost and the report's costs)",
    },
    "stability_runs": {
        "type": int,
        "help": "forests grown with other seeds (and random splits with other split seeds) to "
        "measure the spread of the threshold and of PR-AUC; 0 for none",
    },
    "num_tasks": {
        "type": int,
        "help": "threads, or Ray tasks with --ray-address, to build the trees in (default: one "
        "per CPU of this machine or of the Ray cluster)",
    },
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train a fraud RandomForest with trees built in parallel (threads or Ray "
        "tasks), or gradient-boosted trees, evaluate it on a held-out split and write a "
        "versioned artifact (model + metadata.json).",
        formatter_class=DefaultsHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--data", type=Path, help="creditcard.csv (plain or .gz) with Time, V1..V28, Amount, Class"
    )
    source.add_argument(
        "--synthetic", type=int, metavar="N", help="train on N seeded synthetic rows instead"
    )
    parser.add_argument(
        "--strata",
        type=Path,
        metavar="FILE",
        help="the data's sampling design (training/weights.py); without it, DATA's "
        "<name>.strata.json is used if there is one",
    )
    parser.add_argument(
        "--weight-column",
        metavar="NAME",
        help="a column of the data holding each row's design weight (the live transactions "
        "it stands for), instead of a strata file",
    )
    parser.add_argument(
        "--synthetic-fraud-rate",
        type=float,
        default=PRODUCTION_FRAUD_RATE,
        help="fraud share of the synthetic rows",
    )
    parser.add_argument("--output", type=Path, required=True, help="artifact directory to create")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing artifact at --output"
    )
    parser.add_argument(
        "--publish",
        metavar="DESTINATION",
        help="then publish the artifact as an immutable version under DESTINATION "
        "(s3://bucket/prefix or a directory), as `python -m training.publish` does",
    )

    forest = parser.add_argument_group("forest (same meaning as sklearn's RandomForestClassifier)")
    for name, kwargs in FOREST_OPTIONS.items():
        forest.add_argument(f"--{name.replace('_', '-')}", default=getattr(FOREST, name), **kwargs)
    forest.add_argument(
        "--no-bootstrap",
        dest="bootstrap",
        action="store_false",
        help="grow each tree on all rows instead of a bootstrap sample",
    )

    boosting = parser.add_argument_group(
        "boosted trees (--model-family hist_gradient_boosting; same meaning as sklearn's "
        "HistGradientBoostingClassifier)"
    )
    for name, kwargs in BOOSTING_OPTIONS.items():
        boosting.add_argument(
            f"--boost-{name.replace('_', '-')}",
            dest=f"boost_{name}",
            default=getattr(BOOSTING, name),
            **kwargs,
        )

    run = parser.add_argument_group("split, decision rule and execution")
    for name, kwargs in TRAINING_OPTIONS.items():
        run.add_argument(f"--{name.replace('_', '-')}", default=getattr(OPTIONS, name), **kwargs)
    run.add_argument(
        "--ray-address",
        default=os.environ.get("RAY_ADDRESS"),
        metavar="ADDRESS",
        help="build the trees in Ray tasks on this running cluster: host:port, ray://host:10001, "
        "or auto for the one `ray start` runs on this machine (default: $RAY_ADDRESS; without "
        "either, the trees are built in this process's threads and Ray is not started)",
    )
    run.add_argument("--log-level", default="INFO", help="logging level")
    run.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (there is none anyway when stderr is not a terminal)",
    )
    return parser


def forest_params(args: argparse.Namespace) -> ForestParams:
    return ForestParams(
        bootstrap=args.bootstrap, **{name: getattr(args, name) for name in FOREST_OPTIONS}
    )


def boosting_params(args: argparse.Namespace) -> BoostingParams:
    return BoostingParams(**{name: getattr(args, f"boost_{name}") for name in BOOSTING_OPTIONS})


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.threshold_strategy == "target_precision" and args.target_precision is None:
        logger.error("--threshold-strategy target_precision needs --target-precision")
        return 2
    boosted = args.model_family == "hist_gradient_boosting"
    if boosted and args.ray_address:
        logger.error(
            "--model-family hist_gradient_boosting grows its trees in this process (each tree "
            "depends on the ones before it); --ray-address builds a forest's trees only: leave "
            "it out (and unset RAY_ADDRESS)"
        )
        return 2
    if args.output.exists() and not args.overwrite:
        logger.error("%s already exists; choose a new --output or pass --overwrite", args.output)
        return 2
    from training.data import DataValidationError, load_transactions, synthetic_dataset
    from training.pipeline import train_and_export

    params = forest_params(args)
    options = TrainingOptions(**{name: getattr(args, name) for name in TRAINING_OPTIONS})
    try:
        if args.data is not None:
            dataset = load_transactions(
                args.data, strata=args.strata, weight_column=args.weight_column
            )
        else:
            dataset = synthetic_dataset(
                args.synthetic, fraud_rate=args.synthetic_fraud_rate, seed=args.seed
            )
    except (DataValidationError, ValueError) as error:
        logger.error("Invalid training data: %s", error)
        return 2

    from tqdm.contrib.logging import logging_redirect_tqdm

    from training.forest import train_forest_in_threads
    from training.split import SplitError

    build_forest = train_forest_in_threads
    if args.ray_address:
        # Imported here so that runs without a cluster never load Ray.
        import ray

        from training.ray_forest import train_forest_on_ray

        ray.init(address=args.ray_address, logging_level=logging.WARNING)
        build_forest = train_forest_on_ray
    boosting = boosting_params(args)
    total = boosting.max_iter if boosted else params.n_estimators
    progress = tree_progress_bar(total, disable=True if args.no_progress else None)
    try:
        # Log lines go through tqdm.write, above the bar, instead of through it.
        with logging_redirect_tqdm():
            metadata = train_and_export(
                dataset,
                params,
                options,
                args.output,
                overwrite=args.overwrite,
                on_progress=progress.update_to,
                build_forest=build_forest,
                boosting=boosting,
            )
    except SplitError as error:
        logger.error("Cannot split the training data: %s", error)
        return 2
    finally:
        progress.close()
        if args.ray_address:
            ray.shutdown()
    logger.info("Artifact %s written to %s", metadata.model_version, args.output)
    for line in summarise(metadata.metrics, metadata.decision_rule.describe()):
        logger.info(line)
    if args.publish is not None:
        return publish(args.output, args.publish)
    return 0


def publish(artifact: Path, destination: str) -> int:
    from fraud_model.artifact import ArtifactError
    from fraud_model.store import publish_artifact
    from training.publish import pin_lines

    try:
        published = publish_artifact(artifact, destination)
    except ArtifactError as error:
        logger.error("Trained, but not published: %s", error)
        return 1
    logger.info("Pin it in FraudModel's user_config:\n%s", pin_lines(published))
    return 0


class ProgressBar(Protocol):
    def update_to(self, done: int, total: int) -> None: ...

    def close(self) -> None: ...


def tree_progress_bar(
    total: int, *, disable: bool | None = None, file: TextIO | None = None
) -> ProgressBar:
    """A tqdm bar fed by train_forest's on_progress(done, total), as `bar.update_to`.

    disable=None (the default) turns it off when the output (stderr) is not a terminal: CI logs
    and pipes get the "Trees built" log lines only.
    """
    from tqdm import tqdm

    class TreeProgress(tqdm):  # type: ignore[type-arg]  # generic in its stubs only
        def update_to(self, done: int, total: int) -> None:
            self.total = total
            self.update(done - self.n)

    return TreeProgress(total=total, unit="tree", desc="Building trees", disable=disable, file=file)


def summarise(metrics: dict[str, Any], rule: str) -> list[str]:
    """A small fixed-width table of the held-out metrics."""
    rows = [
        ("held-out test", metrics["test"]),
        ("at production rate", metrics["test_at_production_rate"]),
    ]
    lines = [
        f"Decision rule: {rule}",
        f"{'':20s} {'rows':>7s} {'frauds':>6s} {'PR-AUC':>7s} {'ROC-AUC':>7s} "
        f"{'precision':>9s} {'recall':>6s} {'F1':>6s}",
    ]
    for name, m in rows:
        lines.append(
            f"{name:20s} {m['rows']:7d} {m['frauds']:6d} {m['pr_auc']:7.4f} {m['roc_auc']:7.4f} "
            f"{m['precision']:9.4f} {m['recall']:6.4f} {m['f1']:6.4f}"
        )
    cm = metrics["test"]["confusion_matrix"]
    lines.append(
        "Confusion matrix (test): "
        f"tn={cm['tn']:.0f} fp={cm['fp']:.0f} fn={cm['fn']:.0f} tp={cm['tp']:.0f}"
    )
    return lines
