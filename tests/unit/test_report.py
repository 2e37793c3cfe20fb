"""The training report: markdown that links its plots, and the plots as real PNG files."""

import subprocess
import sys

import pytest
from sklearn.ensemble import RandomForestClassifier

from fraud_model.prior import adjust_to_prior
from tests.conftest import PROJECT_ROOT
from training.data import Dataset
from training.evaluate import choose_threshold, evaluate
from training.report import PLOTS, REPORT_FILE, Split, build_report

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
