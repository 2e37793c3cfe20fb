"""The training report: markdown that links its plots, and the plots as real PNG files."""

import subprocess
import sys

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from fraud_model.prior import adjust_to_prior
from tests.helpers import PROJECT_ROOT
from training.data import Dataset
from training.evaluate import (
    bootstrap_intervals,
    choose_threshold,
    evaluate,
    small_test_warning,
)
from training.report import PLOTS, REPORT_FILE, Split, _scale, build_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_report(forest: RandomForestClassifier, dataset: Dataset) -> dict[str, bytes]:
    features, labels = dataset.features, dataset.labels
    scores = adjust_to_prior(forest.predict_proba(features)[:, 1], 0.05, 0.00172)
    split = Split(labels, scores, features[:, -1])
    threshold = choose_threshold(labels, scores, strategy="best_f1", target_rate=0.00172)
    metrics = {
        "test": evaluate(labels, scores, threshold),
        "test_at_production_rate": evaluate(labels, scores, threshold, target_rate=0.00172),
        "expected_cost_per_transaction": 0.25,
    }
    return build_report(
        validation=split,
        test=split,
        threshold=threshold,
        strategy="best_f1 (test)",
        review_cost=5.0,
        production_rate=0.00172,
        importances=forest.feature_importances_,
        metrics=metrics,
        summary={"Data": "synthetic, sha256 `abc`"},
    )


@pytest.fixture(scope="module")
def report(tiny_forest: RandomForestClassifier, tiny_dataset: Dataset) -> dict[str, bytes]:
    return make_report(tiny_forest, tiny_dataset)


def test_report_holds_the_markdown_and_five_valid_pngs(report: dict[str, bytes]) -> None:
    assert set(report) == {REPORT_FILE, *PLOTS.values()}
    for name in PLOTS.values():
        assert report[name].startswith(PNG_SIGNATURE)
        width, height = (int.from_bytes(report[name][offset : offset + 4]) for offset in (16, 20))
        assert (width, height) == (640, 420)  # 6.4 x 4.2 inches at 100 dpi, from the IHDR chunk


def test_markdown_states_the_decision_and_links_every_plot(report: dict[str, bytes]) -> None:
    markdown = report[REPORT_FILE].decode()
    assert "- **Data:** synthetic, sha256 `abc`" in markdown
    assert "best_f1 (test)" in markdown and "`fraud_probability >= 0." in markdown
    assert "| held-out test | 2000 | 100 |" in markdown
    assert "| at production rate | 2000 | 100 |" in markdown
    assert "Expected cost at the threshold" in markdown and "0.2500" in markdown
    for name in PLOTS.values():
        assert f"]({name})" in markdown  # relative links: the report sits beside its plots


def test_importing_the_report_module_does_not_import_matplotlib() -> None:
    code = "import sys, training.report; print('matplotlib' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT
    )
    assert result.stdout.strip() == "False"


def test_the_same_inputs_give_the_same_report_bytes(
    report: dict[str, bytes], tiny_forest: RandomForestClassifier, tiny_dataset: Dataset
) -> None:
    """Retraining the same model must not change the report's hashes (no dates, no randomness)."""
    assert make_report(tiny_forest, tiny_dataset) == report


def test_a_report_on_few_frauds_warns_and_gives_intervals(
    tiny_forest: RandomForestClassifier, tiny_dataset: Dataset
) -> None:
    keep = np.r_[
        np.flatnonzero(tiny_dataset.labels == 1)[:6], np.flatnonzero(tiny_dataset.labels == 0)
    ]
    features, labels = tiny_dataset.features[keep], tiny_dataset.labels[keep]
    scores = adjust_to_prior(tiny_forest.predict_proba(features)[:, 1], 0.05, 0.00172)
    threshold = 0.01
    split = Split(labels, scores, features[:, -1])
    metrics = {
        "test": evaluate(labels, scores, threshold)
        | {"ci95": bootstrap_intervals(labels, scores, threshold, resamples=50)},
        "test_at_production_rate": evaluate(labels, scores, threshold, target_rate=0.00172),
        "warnings": [small_test_warning(labels)],
    }
    report = build_report(
        validation=split, test=split, threshold=threshold, strategy="fixed (test)",
        review_cost=5.0, production_rate=0.00172, importances=tiny_forest.feature_importances_,
        metrics=metrics, summary={},
    )  # fmt: skip
    markdown = report[REPORT_FILE].decode()
    assert "> **Warning:** The test split holds only 6 frauds" in markdown
    low, high = metrics["test"]["ci95"]["recall"]
    assert f"[{low:.3f}, {high:.3f}]" in markdown
    assert report[PLOTS["scores"]].startswith(PNG_SIGNATURE)


@pytest.mark.parametrize(
    ("values", "scale"),
    [([0.002, 0.004, 0.009], "linear"), ([1e-5, 0.01, 0.5], "log"), ([0, 0.001, 0.5], "log")],
)
def test_an_axis_is_logarithmic_only_over_two_decades_or_more(values: list, scale: str) -> None:
    assert _scale(np.array(values)) == scale
