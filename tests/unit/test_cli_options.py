import io

import pytest

from training.cli import DEFAULTS, build_parser, forest_params, tree_progress_bar
from training.forest import ForestParams


def parse(*options: str) -> ForestParams:
    return forest_params(
        build_parser().parse_args(["--synthetic", "10", "--output", "x", *options])
    )


def test_defaults_are_the_documented_training_defaults() -> None:
    assert parse() == DEFAULTS
    assert (DEFAULTS.n_estimators, DEFAULTS.min_samples_leaf) == (100, 3)
    assert DEFAULTS.class_weight == "balanced_subsample"


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
