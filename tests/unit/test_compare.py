"""`python -m training.compare` and the model-family option of `python -m training`, on a tiny
real sample: a forest and boosted trees grown on its temporal split are compared; what cannot be
compared, or trained, is refused with a message that says why."""

import logging
from pathlib import Path

import pytest

from tests.helpers import real_sample_csv
from training import compare
from training.cli import BOOSTING_OPTIONS, boosting_params, build_parser
from training.cli import main as train
from training.options import BoostingParams, TrainingOptions

SMALL = ["--stability-runs", "0", "--no-progress", "--log-level", "WARNING"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A sample of the real data, and a forest and boosted trees grown by the CLI on it."""
    root = tmp_path_factory.mktemp("compare")
    data = real_sample_csv(root / "sample.csv")
    common = ["--data", str(data), "--split", "temporal", *SMALL]
    paths = {"data": data}
    for name, options in (
        ("forest", ["--n-estimators", "15"]),
        ("boosted", ["--model-family", "hist_gradient_boosting", "--boost-max-iter", "40"]),
        ("random", ["--n-estimators", "5", "--split", "random"]),
    ):
        paths[name] = root / name
        assert train([*common, *options, "--output", str(paths[name])]) == 0
    return paths


def test_compare_judges_the_two_families_on_the_out_of_time_rows(
    trained: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="training.compare")
    out = tmp_path / "result.json"
    arguments = [str(trained["forest"]), str(trained["boosted"]), "--data", str(trained["data"])]
    assert compare.main([*arguments, "--resamples", "300", "--json", str(out)]) == 0
    result = compare.json.loads(out.read_text())
    assert result["models"]["A"]["model_family"] == "random_forest"
    assert result["models"]["B"]["model_family"] == "hist_gradient_boosting"
    assert result["rows"].startswith("temporal")
    assert {d["metric"] for d in result["differences"]} == set(compare_metrics())
    for difference in result["differences"]:
        assert difference["low"] <= difference["high"]
        assert difference["b"] - difference["a"] == pytest.approx(difference["difference"])
    assert result["verdict"].split()[0] in ("A", "B", "tie", "mixed")
    assert "Verdict:" in caplog.text


def compare_metrics() -> list[str]:
    from training.paired_bootstrap import METRICS

    return list(METRICS)


def test_compare_refuses_a_model_grown_on_the_random_split(
    trained: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    arguments = [str(trained["forest"]), str(trained["random"]), "--data", str(trained["data"])]
    assert compare.main(arguments) == 2
    assert "both must be grown on the temporal split" in caplog.text


def test_compare_refuses_other_data_than_the_models_were_trained_on(
    trained: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = real_sample_csv(tmp_path / "other.csv", every=7)
    arguments = [str(trained["forest"]), str(trained["boosted"]), "--data", str(other)]
    assert compare.main(arguments) == 2
    assert "is not the data A and B were trained on" in caplog.text


def test_the_cli_refuses_an_unknown_family_naming_the_known_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--synthetic", "10", "--output", "x", "--model-family", "xgb"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert "--model-family: invalid choice: 'xgb'" in error
    assert "random_forest" in error and "hist_gradient_boosting" in error


def test_the_family_and_the_boosting_defaults_are_the_dataclasses() -> None:
    args = build_parser().parse_args(["--synthetic", "10", "--output", "x"])
    assert args.model_family == TrainingOptions().model_family == "random_forest"
    assert boosting_params(args) == BoostingParams()
    assert set(BOOSTING_OPTIONS) == set(BoostingParams.__dataclass_fields__)


def test_boosted_trees_on_ray_are_refused(caplog: pytest.LogCaptureFixture) -> None:
    argv = ["--synthetic", "500", "--output", "unused", "--ray-address", "auto",
            "--model-family", "hist_gradient_boosting"]  # fmt: skip
    assert train(argv) == 2
    assert "grows its trees in this process" in caplog.text
