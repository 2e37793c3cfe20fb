"""The training report: markdown with every section, linking its plots, and the plots as real PNG
files, written by a real (tiny) training run."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fraud_model.artifact import read_metadata, sha256_file
from tests.helpers import PROJECT_ROOT
from training.data import synthetic_dataset
from training.options import ForestParams, TrainingOptions
from training.pipeline import train_and_export
from training.report import PLOTS, REPORT_FILE, _scale

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TINY = ForestParams(n_estimators=6, max_depth=6)
OPTIONS = TrainingOptions(split="temporal", compare_split="random", stability_runs=1)


def train(path: Path, rows: int = 3_000, fraud_rate: float = 0.04) -> Path:
    dataset = synthetic_dataset(rows, fraud_rate=fraud_rate, seed=9)
    train_and_export(dataset, TINY, OPTIONS, path)
    return path


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(tmp_path_factory.mktemp("report") / "model")


def test_report_holds_the_markdown_and_six_valid_pngs_all_hashed(artifact: Path) -> None:
    metadata = read_metadata(artifact)
    assert metadata.report_file == REPORT_FILE
    for name in [REPORT_FILE, *PLOTS.values()]:
        assert metadata.files[name] == sha256_file(artifact / name)
    for name in PLOTS.values():
        png = (artifact / name).read_bytes()
        assert png.startswith(PNG_SIGNATURE)
        width, height = (int.from_bytes(png[offset : offset + 4]) for offset in (16, 20))
        assert (width, height) == (640, 420)  # 6.4 x 4.2 inches at 100 dpi, from the IHDR chunk


def test_markdown_has_both_splits_the_rules_the_calibration_and_the_spread(artifact: Path) -> None:
    markdown = (artifact / REPORT_FILE).read_text()
    metadata = read_metadata(artifact)
    for section in (
        "## Held-out metrics (temporal split, shipped rule)",
        "## The splits",
        "## Decision rules compared (test rows)",
        "**temporal split** (headline)",
        "**random split**",
        "## Validation against test (shipped rule)",
        "## Calibration",
        "## Stability across seeds",
    ):
        assert section in markdown
    assert f"`{metadata.decision_rule.describe()}`" in markdown
    assert "**(shipped)**" in markdown
    for name in PLOTS.values():
        assert f"]({name})" in markdown  # relative links: the report sits beside its plots
    calibration = metadata.metrics["calibration"]["test"]
    low, high = calibration["slope_ci95"]
    assert f"{calibration['slope']:.3f} [{low:.2f}, {high:.2f}]" in markdown
    # Every interval in the report has a low end below its high end.
    for low_text, high_text in _brackets(markdown):
        assert float(low_text.replace(",", "")) < float(high_text.replace(",", ""))


def _brackets(markdown: str) -> list[tuple[str, str]]:
    import re

    return re.findall(r"\[(-?[\d.,]+), (-?[\d.,]+)\]", markdown)


def test_importing_the_report_module_does_not_import_matplotlib() -> None:
    code = "import sys, training.report; print('matplotlib' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT
    )
    assert result.stdout.strip() == "False"


def test_the_same_inputs_give_the_same_report_bytes(artifact: Path, tmp_path: Path) -> None:
    """Retraining the same model must not change the report's hashes (no dates, no randomness)."""
    again = train(tmp_path / "again")
    for name in [REPORT_FILE, *PLOTS.values()]:
        assert (again / name).read_bytes() == (artifact / name).read_bytes(), name


def test_a_report_on_few_frauds_warns(tmp_path: Path) -> None:
    path = train(tmp_path / "few", rows=4_000, fraud_rate=0.008)
    markdown = (path / REPORT_FILE).read_text()
    frauds = read_metadata(path).metrics["test"]["frauds"]
    assert f"> **Warning:** The test split holds only {frauds} frauds" in markdown


@pytest.mark.parametrize(
    ("values", "scale"),
    [([0.002, 0.004, 0.009], "linear"), ([1e-5, 0.01, 0.5], "log"), ([0, 0.001, 0.5], "log")],
)
def test_an_axis_is_logarithmic_only_over_two_decades_or_more(values: list, scale: str) -> None:
    assert _scale(np.array(values)) == scale
