"""Sampling weights: the bundled data's strata reproduce the counts its README states, a strata
file that does not describe the data is refused, and a CSV may name a weight column."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import PROJECT_ROOT
from training.data import DataValidationError, load_transactions, make_synthetic_transactions
from training.weights import SamplingDesign, strata_file_beside

DATA = PROJECT_ROOT / "data" / "creditcard_real_subset.csv.gz"
README = PROJECT_ROOT / "data" / "README.md"


def readme_counts() -> dict[str, int]:
    """The counts data/README.md states: the full file's rows and frauds, the merged file's
    rows, and the verbatim head's rows, frauds and last Time."""
    text = README.read_text()

    def number(pattern: str) -> int:
        found = re.search(pattern, text)
        assert found, pattern
        return int(found.group(1).replace(",", ""))

    merged = r"`creditcard_real_subset\.csv\.gz` \(merged; use this one\) \| ([\d,]+)"
    return {
        "rows": number(r"\| rows / frauds \| ([\d,]+) / [\d,]+ \|"),
        "frauds": number(r"\| rows / frauds \| [\d,]+ / ([\d,]+) \|"),
        "merged_rows": number(merged),
        "head_rows": number(r"`sources/creditcard_head_9528rows\.csv\.gz` \| ([\d,]+) \|"),
        "head_frauds": number(r"`sources/creditcard_head_9528rows\.csv\.gz` \| [\d,]+ \| ([\d,]+)"),
        "head_last_time": number(r"complete rows, byte for byte \(Time 0 to ([\d,]+)\)"),
    }  # fmt: skip


def test_the_bundled_strata_are_the_readme_s_counts_and_reproduce_them() -> None:
    counts = readme_counts()
    design = SamplingDesign.model_validate_json(strata_file_beside(DATA).read_bytes())
    fraud, head, tail = design.strata
    head_legitimate = counts["head_rows"] - counts["head_frauds"]
    assert (design.population_rows, design.population_frauds) == (counts["rows"], counts["frauds"])
    assert (fraud.population_rows, fraud.sample_rows) == (counts["frauds"], counts["frauds"])
    assert (head.population_rows, head.sample_rows) == (head_legitimate, head_legitimate)
    assert head.time_through == tail.time_after == counts["head_last_time"]
    assert tail.population_rows == counts["rows"] - counts["frauds"] - head_legitimate
    assert tail.sample_rows == counts["merged_rows"] - counts["frauds"] - head_legitimate

    dataset = load_transactions(DATA)  # finds the strata file beside the data
    weights, labels = dataset.sampling.weights, dataset.labels
    assert weights.sum() == pytest.approx(counts["rows"])  # the full data set's rows
    assert weights[labels == 1].sum() == pytest.approx(counts["frauds"])
    for index, stratum in enumerate(design.strata):
        assert weights[dataset.sampling.strata == index].sum() == pytest.approx(
            stratum.population_rows
        )
    assert "creditcard_real_subset.strata.json" in (dataset.fingerprint.sampling or "")


def test_strata_that_do_not_match_the_data_are_refused(tmp_path: Path) -> None:
    frame = make_synthetic_transactions(500, fraud_rate=0.1, seed=1)
    frame.to_csv(tmp_path / "cards.csv", index=False)
    legitimate = int((frame["Class"] == 0).sum())
    design = {
        "population_rows": 10_000,
        "population_frauds": 50,
        "strata": [
            {"name": "fraud", "label": 1, "population_rows": 50, "sample_rows": 40,
             "source": "test"},
            {"name": "legitimate", "label": 0, "population_rows": 9_950,
             "sample_rows": legitimate, "source": "test"},
        ],
    }  # fmt: skip
    (tmp_path / "cards.strata.json").write_text(json.dumps(design))
    with pytest.raises(
        DataValidationError, match="stratum 'fraud' should hold 40 rows of the data, it holds 50"
    ):
        load_transactions(tmp_path / "cards.csv")
    design["population_frauds"] = 51
    (tmp_path / "cards.strata.json").write_text(json.dumps(design))
    with pytest.raises(DataValidationError, match="strata add up to 10000 rows and 50 frauds"):
        load_transactions(tmp_path / "cards.csv")


def test_a_weight_column_gives_the_weights_and_bad_weights_are_refused(tmp_path: Path) -> None:
    frame = make_synthetic_transactions(300, fraud_rate=0.1, seed=2)
    frame["w"] = np.where(frame["Class"] == 1, 1.0, 25.0)
    path = tmp_path / "cards.csv"
    frame.to_csv(path, index=False)
    dataset = load_transactions(path, weight_column="w")
    np.testing.assert_array_equal(dataset.sampling.weights, frame["w"].to_numpy())
    assert dataset.fingerprint.sampling == "weight column 'w' of cards.csv"
    frame.loc[3, "w"] = -1.0
    frame.to_csv(path, index=False)
    with pytest.raises(DataValidationError, match="weight column 'w' must be positive"):
        load_transactions(path, weight_column="w")
    with pytest.raises(DataValidationError, match="no weight column 'weight'"):
        load_transactions(path, weight_column="weight")


def test_without_a_design_every_row_weighs_one(tmp_path: Path) -> None:
    frame = make_synthetic_transactions(200, fraud_rate=0.1, seed=3)
    frame.to_csv(tmp_path / "cards.csv", index=False)
    dataset = load_transactions(tmp_path / "cards.csv")
    np.testing.assert_array_equal(dataset.sampling.weights, np.ones(200))
    assert "uniform sample" in dataset.sampling.description
    pd.testing.assert_series_equal(
        pd.Series(dataset.times), frame["Time"].astype(float), check_names=False
    )
