import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud_model.features import FEATURE_NAMES
from training.data import DataValidationError, load_transactions, make_synthetic_transactions

COLUMNS = ["Time", *FEATURE_NAMES, "Class"]


@pytest.fixture
def good_frame() -> pd.DataFrame:
    return make_synthetic_transactions(200, fraud_rate=0.1, seed=3)


def write(tmp_path: Path, frame: pd.DataFrame, name: str = "creditcard.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_quoted_header_and_gzip_as_in_the_original_file(
    tmp_path: Path, good_frame: pd.DataFrame
) -> None:
    text = good_frame.to_csv(index=False).splitlines()
    text[0] = ",".join(f'"{name}"' for name in COLUMNS)
    text[1:] = [line[: line.rfind(",")] + f',"{line[line.rfind(",") + 1 :]}"' for line in text[1:]]
    path = tmp_path / "creditcard.csv.gz"
    path.write_bytes(gzip.compress("\n".join(text).encode()))

    dataset = load_transactions(path)

    assert dataset.features.shape == (200, 29) and dataset.features.dtype == np.float32
    assert dataset.fingerprint.fraud_count == 20 and dataset.fingerprint.rows == 200
    np.testing.assert_allclose(dataset.features[:, -1], good_frame["Amount"], rtol=1e-6)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="not found"):
        load_transactions(tmp_path / "nope.csv")


def test_missing_columns_are_named(tmp_path: Path, good_frame: pd.DataFrame) -> None:
    path = write(tmp_path, good_frame.drop(columns=["V3", "Amount"]))
    with pytest.raises(DataValidationError, match="missing required columns: V3, Amount"):
        load_transactions(path)


def test_non_numeric_column(tmp_path: Path, good_frame: pd.DataFrame) -> None:
    good_frame["V7"] = good_frame["V7"].astype(object)
    good_frame.loc[[3, 9], "V7"] = "abc"
    with pytest.raises(
        DataValidationError, match=r"column V7 is not numeric \(2 rows, e.g. 'abc'\)"
    ):
        load_transactions(write(tmp_path, good_frame))


def test_nan_values_are_counted_per_column(tmp_path: Path, good_frame: pd.DataFrame) -> None:
    good_frame.loc[[1, 2, 3], "V12"] = np.nan
    with pytest.raises(DataValidationError, match="column V12 has 3 NaN and 0 infinite values"):
        load_transactions(write(tmp_path, good_frame))


def test_infinite_values(tmp_path: Path, good_frame: pd.DataFrame) -> None:
    good_frame.loc[5, "Amount"] = np.inf
    with pytest.raises(DataValidationError, match="column Amount has 0 NaN and 1 infinite"):
        load_transactions(write(tmp_path, good_frame))


def test_class_other_than_zero_or_one(tmp_path: Path, good_frame: pd.DataFrame) -> None:
    good_frame.loc[0, "Class"] = 2
    with pytest.raises(
        DataValidationError, match=r"Class must be 0 or 1; 1 rows have other values, e.g. \[2.0\]"
    ):
        load_transactions(write(tmp_path, good_frame))


def test_too_few_frauds(tmp_path: Path, good_frame: pd.DataFrame) -> None:
    good_frame["Class"] = 0
    with pytest.raises(DataValidationError, match="found 0 fraud and 200 non-fraud"):
        load_transactions(write(tmp_path, good_frame))


def test_header_without_rows(tmp_path: Path) -> None:
    path = tmp_path / "creditcard.csv"
    path.write_text(",".join(COLUMNS) + "\n")
    with pytest.raises(DataValidationError, match="no rows"):
        load_transactions(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "creditcard.csv"
    path.write_text("")
    with pytest.raises(DataValidationError, match="not a readable CSV"):
        load_transactions(path)


def test_cli_reports_bad_data_with_exit_code_2(tmp_path: Path, good_frame: pd.DataFrame) -> None:
    path = write(tmp_path, good_frame.drop(columns=["V5"]))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "--data",
            str(path),
            "--output",
            str(tmp_path / "model"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "Invalid training data" in result.stdout
    assert "missing required columns: V5" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "model").exists()


def test_synthetic_data_has_the_schema_rate_and_seed() -> None:
    frame = make_synthetic_transactions(10_000, seed=1)
    assert list(frame.columns) == COLUMNS
    assert frame["Class"].sum() == round(10_000 * 0.00172)
    assert (frame["Amount"] >= 0).all()
    pd.testing.assert_frame_equal(frame, make_synthetic_transactions(10_000, seed=1))
    assert not frame.equals(make_synthetic_transactions(10_000, seed=2))


def test_synthetic_frauds_differ_from_normal_rows() -> None:
    frame = make_synthetic_transactions(20_000, fraud_rate=0.05, seed=0)
    means = frame.groupby("Class")["V14"].mean()
    assert means[1] < means[0] - 1.5
