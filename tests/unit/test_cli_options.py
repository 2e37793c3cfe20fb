import io
import subprocess
import sys

import pytest

from tests.helpers import PROJECT_ROOT
from training.cli import TRAINING_OPTIONS, build_parser, forest_params, tree_progress_bar
from training.options import ForestParams, TrainingOptions


def parse(*options: str) -> ForestParams:
    return forest_params(
        build_parser().parse_args(["--synthetic", "10", "--output", "x", *options])
    )


def test_the_cli_and_python_train_the_same_model_by_default() -> None:
    assert parse() == ForestParams()
    args = build_parser().parse_args(["--synthetic", "10", "--output", "x"])
    defaults = TrainingOptions()
    assert (args.seed, args.test_size, args.validation_size) == (
        defaults.seed, defaults.test_size, defaults.validation_size
    )  # fmt: skip
    assert (args.production_fraud_rate, args.threshold_strategy, args.review_cost) == (
        defaults.production_fraud_rate, defaults.threshold_strategy, defaults.review_cost
    )  # fmt: skip
    assert args.num_tasks is defaults.num_tasks is None


def test_help_imports_nothing_heavy_and_says_each_default_once() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "training", "--help"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    # No pandas, scikit-learn or Ray is imported for it (each took seconds).
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, training.cli; "
         "print(sorted({'pandas', 'sklearn', 'ray'} & set(sys.modules)))"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert probe.stdout.strip() == "[]"
    text = " ".join(done.stdout.split())
    assert "(default: True)" not in text and "(default: None)" not in text
    assert text.count("(default:") == text.count("default:")
    assert "--min-samples-leaf MIN_SAMPLES_LEAF minimum rows in a leaf (default: 3)" in text


def test_every_training_option_is_an_option_of_the_cli_with_its_default() -> None:
    from dataclasses import fields

    assert set(TRAINING_OPTIONS) == {field.name for field in fields(TrainingOptions)}
    args = build_parser().parse_args(["--synthetic", "10", "--output", "x"])
    assert {name: getattr(args, name) for name in TRAINING_OPTIONS} == {
        field.name: getattr(TrainingOptions(), field.name) for field in fields(TrainingOptions)
    }
    args = build_parser().parse_args(
        ["--synthetic", "10", "--output", "x", "--split", "temporal", "--compare-split",
         "random", "--split-seed", "3", "--decision-rule", "expected_cost",
         "--alerts-per-10k", "12.5", "--stability-runs", "0"]
    )  # fmt: skip
    assert (args.split, args.compare_split, args.split_seed, args.seed) == (
        "temporal", "random", 3, 42
    )  # fmt: skip
    assert (args.decision_rule, args.alerts_per_10k, args.stability_runs) == (
        "expected_cost", 12.5, 0
    )  # fmt: skip


def test_every_forest_option_reaches_the_params() -> None:
    params = parse(
        "--n-estimators", "7", "--criterion", "entropy", "--max-depth", "12",
        "--min-samples-split", "4", "--min-samples-leaf", "2", "--max-features", "0.5",
        "--max-leaf-nodes", "64", "--no-bootstrap", "--max-samples", "0.8",
        "--class-weight", "none", "--ccp-alpha", "0.001",
    )  # fmt: skip
    assert params == ForestParams(
        n_estimators=7, criterion="entropy", max_depth=12, min_samples_split=4,
        min_samples_leaf=2, max_features=0.5, max_leaf_nodes=64, bootstrap=False,
        max_samples=0.8, class_weight=None, ccp_alpha=0.001,
    )  # fmt: skip


@pytest.mark.parametrize(("value", "parsed"), [("sqrt", "sqrt"), ("none", None), ("10", 10)])
def test_max_features_forms(value: str, parsed: object) -> None:
    assert parse("--max-features", value).max_features == parsed


def test_unknown_class_weight_is_a_usage_error() -> None:
    with pytest.raises(SystemExit):
        parse("--class-weight", "heavy")


def test_the_progress_bar_follows_train_forest_s_callback() -> None:
    output = io.StringIO()
    bar = tree_progress_bar(12, disable=False, file=output)
    for built in (3, 6, 12):  # one call per finished Ray task
        bar.update_to(built, 12)
    bar.close()
    assert bar.n == 12
    assert "Building trees" in output.getvalue() and "12/12" in output.getvalue()


def test_the_progress_bar_is_off_when_not_a_terminal_or_asked() -> None:
    output = io.StringIO()  # not a TTY, like CI logs or a pipe
    bar = tree_progress_bar(12, file=output)
    bar.update_to(12, 12)
    bar.close()
    assert bar.disable and output.getvalue() == ""
    args = build_parser().parse_args(["--synthetic", "10", "--output", "x", "--no-progress"])
    assert args.no_progress


def test_min_cost_options_parse() -> None:
    args = build_parser().parse_args(
        ["--synthetic", "10", "--output", "x", "--threshold-strategy", "min_cost",
         "--review-cost", "2.5"]
    )  # fmt: skip
    assert (args.threshold_strategy, args.review_cost) == ("min_cost", 2.5)
    assert build_parser().parse_args(["--synthetic", "10", "--output", "x"]).review_cost == 5.0
