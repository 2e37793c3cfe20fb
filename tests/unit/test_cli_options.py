import pytest

from training.cli import DEFAULTS, build_parser, forest_params
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
