"""Load and validate creditcard.csv-shaped data, or generate synthetic data of that schema."""

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fraud_model.artifact import sha256_file
from fraud_model.features import FEATURE_DTYPE, FEATURE_NAMES, TARGET_COLUMN
from fraud_model.metadata import DataFingerprint
from training.options import PRODUCTION_FRAUD_RATE
from training.weights import (
    RowWeights,
    SamplingDesignError,
    column_weights,
    design_weights,
    read_design,
    strata_file_beside,
    uniform_weights,
)

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = (*FEATURE_NAMES, TARGET_COLUMN)
TIME_COLUMN = "Time"  # not a feature: it orders rows for the out-of-time split and the strata
# A stratified test split plus a validation split needs a few rows of each class.
MIN_ROWS_PER_CLASS = 5


class DataValidationError(ValueError):
    """The input data cannot be trained on; the message says what to fix."""


@dataclass(frozen=True)
class Dataset:
    features: np.ndarray  # (n, 29) float32 in contract order
    labels: np.ndarray  # (n,) int8, 1 = fraud
    fingerprint: DataFingerprint
    sampling: RowWeights  # design weights: the live transactions each row stands for
    times: np.ndarray | None = None  # (n,) float64 `Time`, when the data has it

    @property
    def fraud_rate(self) -> float:
        return float(self.labels.mean())


def load_transactions(
    path: str | Path, *, strata: Path | None = None, weight_column: str | None = None
) -> Dataset:
    """Read a creditcard.csv (plain or .gz, quoted header or not) and validate it.

    The rows' design weights come from `strata` (a strata file), else `weight_column`, else the
    strata file beside the data (`<name>.strata.json`) if there is one; without any, every row
    weighs 1 (training.weights).
    """
    file = Path(path)
    if not file.is_file():
        raise DataValidationError(f"Data file not found: {file}")
    if strata is not None and weight_column is not None:
        raise DataValidationError("give a strata file or a weight column, not both")
    try:
        frame = pd.read_csv(file, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as err:
        raise DataValidationError(f"{file} is not a readable CSV file: {err}") from err
    if strata is None and weight_column is None and strata_file_beside(file).is_file():
        strata = strata_file_beside(file)
    return dataset_from_frame(
        frame,
        source=file.name,
        sha256=sha256_file(file),
        strata=strata,
        weight_column=weight_column,
    )


def dataset_from_frame(
    frame: pd.DataFrame,
    *,
    source: str,
    sha256: str | None = None,
    strata: Path | None = None,
    weight_column: str | None = None,
) -> Dataset:
    """Validate a frame with creditcard.csv's columns and turn it into training arrays."""
    frame = frame.rename(columns=lambda name: str(name).strip())
    missing = [name for name in REQUIRED_COLUMNS if name not in frame.columns]
    if missing:
        raise DataValidationError(f"{source}: missing required columns: {', '.join(missing)}")
    if frame.empty:
        raise DataValidationError(f"{source}: has a header but no rows")
    columns = frame[list(REQUIRED_COLUMNS)]
    problems = [*_non_numeric(columns), *_non_finite(columns)]
    if problems:
        raise DataValidationError(f"{source}: " + "; ".join(problems))
    labels = columns[TARGET_COLUMN].astype(np.float64)
    bad_labels = ~labels.isin([0.0, 1.0])
    if bad_labels.any():
        shown = sorted(labels[bad_labels].unique().tolist())[:5]
        raise DataValidationError(
            f"{source}: column {TARGET_COLUMN} must be 0 or 1; {int(bad_labels.sum())} rows "
            f"have other values, e.g. {shown}"
        )
    counts = labels.value_counts()
    frauds, normals = int(counts.get(1.0, 0)), int(counts.get(0.0, 0))
    if min(frauds, normals) < MIN_ROWS_PER_CLASS:
        raise DataValidationError(
            f"{source}: need at least {MIN_ROWS_PER_CLASS} rows of each class in {TARGET_COLUMN}, "
            f"found {frauds} fraud and {normals} non-fraud"
        )
    features = np.ascontiguousarray(columns[list(FEATURE_NAMES)].to_numpy(dtype=FEATURE_DTYPE))
    if sha256 is None:
        sha256 = hashlib.sha256(
            pd.util.hash_pandas_object(columns).to_numpy().tobytes()
        ).hexdigest()
    times = _times(frame, source)
    label_array = labels.to_numpy(dtype=np.int8)
    sampling = _sampling(frame, label_array, times, source, strata, weight_column)
    fingerprint = DataFingerprint(
        source=source,
        rows=len(frame),
        fraud_count=frauds,
        sha256=sha256,
        sampling=sampling.description,
    )
    logger.info(
        "Loaded %s: %d rows, %d frauds (%.3f%%)",
        source,
        len(frame),
        frauds,
        100 * frauds / len(frame),
    )
    return Dataset(
        features=features,
        labels=label_array,
        fingerprint=fingerprint,
        sampling=sampling,
        times=times,
    )


def _times(frame: pd.DataFrame, source: str) -> np.ndarray | None:
    if TIME_COLUMN not in frame.columns:
        return None
    times: np.ndarray = pd.to_numeric(frame[TIME_COLUMN], errors="coerce").to_numpy(
        dtype=np.float64
    )
    if not np.isfinite(times).all():
        bad = int((~np.isfinite(times)).sum())
        raise DataValidationError(f"{source}: column {TIME_COLUMN} has {bad} non-numeric values")
    return times


def _sampling(
    frame: pd.DataFrame,
    labels: np.ndarray,
    times: np.ndarray | None,
    source: str,
    strata: Path | None,
    weight_column: str | None,
) -> RowWeights:
    try:
        if strata is not None:
            described = f"strata file {strata.name} (sha256 {sha256_file(strata)[:12]})"
            return design_weights(read_design(strata), labels, times, described)
        if weight_column is not None:
            return column_weights(frame, weight_column, source)
    except SamplingDesignError as error:
        raise DataValidationError(str(error)) from error
    return uniform_weights(len(labels))


def make_synthetic_transactions(
    n_rows: int, *, fraud_rate: float = PRODUCTION_FRAUD_RATE, seed: int = 0
) -> pd.DataFrame:
    """A seeded frame with creditcard.csv's schema: Time, V1..V28, Amount, Class.

    Normal rows have standard-normal V features (like the real PCA components); frauds are shifted
    in a few of them and spend differently, so a forest can learn them but not perfectly.
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be positive, got {n_rows}")
    if not 0.0 < fraud_rate < 1.0:
        raise ValueError(f"fraud_rate must be strictly between 0 and 1, got {fraud_rate}")
    rng = np.random.default_rng(seed)
    n_fraud = min(n_rows - 1, max(1, round(n_rows * fraud_rate)))
    labels = np.zeros(n_rows, dtype=np.int64)
    labels[rng.choice(n_rows, size=n_fraud, replace=False)] = 1
    is_fraud = labels == 1

    v = rng.standard_normal((n_rows, 28))
    # The real data's strongest fraud signals are low V14, V12, V10 and V17 and high V11 and V4.
    shift = np.zeros(28)
    shift[[13, 11, 9, 16]] = -2.5
    shift[[10, 3]] = 1.8
    v[is_fraud] = v[is_fraud] * 1.6 + shift
    amount = np.round(rng.lognormal(mean=3.0, sigma=1.4, size=n_rows), 2)
    amount[is_fraud] = np.round(rng.lognormal(mean=3.6, sigma=1.8, size=n_fraud), 2)

    frame = pd.DataFrame(v, columns=[f"V{i}" for i in range(1, 29)])
    frame.insert(0, "Time", np.sort(rng.uniform(0, 172_792, size=n_rows)).round())
    frame["Amount"] = amount
    frame[TARGET_COLUMN] = labels
    return frame


def synthetic_dataset(n_rows: int, *, fraud_rate: float, seed: int) -> Dataset:
    frame = make_synthetic_transactions(n_rows, fraud_rate=fraud_rate, seed=seed)
    return dataset_from_frame(
        frame, source=f"synthetic(n={n_rows}, fraud_rate={fraud_rate}, seed={seed})"
    )


def _non_numeric(columns: pd.DataFrame) -> list[str]:
    problems = []
    for name in columns.columns:
        if pd.api.types.is_numeric_dtype(columns[name]) and not pd.api.types.is_bool_dtype(
            columns[name]
        ):
            continue
        coerced = pd.to_numeric(columns[name], errors="coerce")
        bad = coerced.isna() & columns[name].notna()
        example = columns[name][bad].iloc[0] if bad.any() else columns[name].iloc[0]
        problems.append(f"column {name} is not numeric ({int(bad.sum())} rows, e.g. {example!r})")
    return problems


def _non_finite(columns: pd.DataFrame) -> list[str]:
    problems = []
    for name in columns.columns:
        if not pd.api.types.is_numeric_dtype(columns[name]):
            continue  # already reported as non-numeric
        values = columns[name].to_numpy(dtype=np.float64)
        n_nan, n_inf = int(np.isnan(values).sum()), int(np.isinf(values).sum())
        if n_nan or n_inf:
            problems.append(f"column {name} has {n_nan} NaN and {n_inf} infinite values")
    return problems
