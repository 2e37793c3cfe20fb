"""Sampling weights: how many live transactions each training row stands for.

A data set that is not a uniform sample of production traffic says how it was drawn, and every
production-rate figure must undo that. Two ways to say it:

- a strata file beside the data (`<name>.strata.json`, or `--strata FILE`): each stratum is a
  class and an optional `Time` range, with the number of rows it holds in the population and in
  the file. A row's design weight is its stratum's population_rows / sample_rows. The file's
  counts are checked against the data: a file that does not match its description is refused.
- a weight column in the CSV (`--weight-column NAME`): positive design weights, one per row.

Without either, the rows are taken as a uniform sample (every weight 1). Design weights describe
the sample; `production_weights` then scales the legitimate rows so that the weighted fraud share
is the production fraud rate, as before, now on top of the design.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

STRATA_SUFFIX = ".strata.json"


class SamplingDesignError(ValueError):
    """The sampling design cannot be used with this data; the message says why."""


class Stratum(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    label: int = Field(ge=0, le=1, description="Class of the stratum's rows.")
    time_after: float | None = Field(None, description="Rows with Time > this (exclusive).")
    time_through: float | None = Field(None, description="Rows with Time <= this (inclusive).")
    population_rows: int = Field(gt=0, description="Rows of this stratum in the population.")
    sample_rows: int = Field(gt=0, description="Rows of this stratum in the data file.")
    source: str = Field(description="Where the two counts come from.")

    @property
    def weight(self) -> float:
        return self.population_rows / self.sample_rows

    def holds(self, labels: np.ndarray, times: np.ndarray | None) -> np.ndarray:
        """Which rows belong to this stratum."""
        inside: np.ndarray = labels == self.label
        if self.time_after is None and self.time_through is None:
            return inside
        if times is None:
            raise SamplingDesignError(
                f"stratum {self.name!r} is a Time range; the data has no Time column"
            )
        if self.time_after is not None:
            inside &= times > self.time_after
        if self.time_through is not None:
            inside &= times <= self.time_through
        return inside


class SamplingDesign(BaseModel):
    """A strata file: the population's size and the strata that partition the data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    about: str = ""
    population_rows: int = Field(gt=0)
    population_frauds: int = Field(ge=0)
    strata: list[Stratum] = Field(min_length=1)

    @model_validator(mode="after")
    def strata_add_up(self) -> "SamplingDesign":
        rows = sum(stratum.population_rows for stratum in self.strata)
        frauds = sum(stratum.population_rows for stratum in self.strata if stratum.label == 1)
        if (rows, frauds) != (self.population_rows, self.population_frauds):
            raise ValueError(
                f"the strata add up to {rows} rows and {frauds} frauds; the population has "
                f"{self.population_rows} and {self.population_frauds}"
            )
        return self


@dataclass(frozen=True)
class RowWeights:
    """Design weights of a data set's rows, the stratum of each row, and where they came from."""

    weights: np.ndarray
    strata: np.ndarray  # stratum index per row (0 when there are no strata)
    description: str


def read_design(path: Path) -> SamplingDesign:
    try:
        return SamplingDesign.model_validate_json(path.read_bytes())
    except (OSError, ValidationError) as error:
        raise SamplingDesignError(f"{path} is not a usable strata file: {error}") from error


def strata_file_beside(data_file: Path) -> Path:
    """`data/x.csv.gz` -> `data/x.strata.json`."""
    name = data_file.name
    for suffix in (".gz", ".csv"):
        name = name.removesuffix(suffix)
    return data_file.with_name(name + STRATA_SUFFIX)


def design_weights(
    design: SamplingDesign, labels: np.ndarray, times: np.ndarray | None, source: str
) -> RowWeights:
    """Each row's stratum and weight; refuses data that the design does not describe."""
    membership = np.stack([stratum.holds(labels, times) for stratum in design.strata])
    per_row = membership.sum(axis=0)
    if (per_row != 1).any():
        none, several = int((per_row == 0).sum()), int((per_row > 1).sum())
        raise SamplingDesignError(
            f"{source}: {none} rows fall in no stratum and {several} in more than one"
        )
    strata = membership.argmax(axis=0)
    for index, stratum in enumerate(design.strata):
        found = int((strata == index).sum())
        if found != stratum.sample_rows:
            raise SamplingDesignError(
                f"{source}: stratum {stratum.name!r} should hold {stratum.sample_rows} rows of "
                f"the data, it holds {found}: the data is not the one the strata file describes"
            )
    weights = np.array([stratum.weight for stratum in design.strata])[strata]
    names = "; ".join(f"{s.name}: {s.sample_rows} rows x {s.weight:.4g}" for s in design.strata)
    return RowWeights(weights=weights, strata=strata, description=f"{source} ({names})")


def column_weights(frame: pd.DataFrame, column: str, source: str) -> RowWeights:
    """Design weights from a column of the data: finite and positive, or refused."""
    if column not in frame.columns:
        raise SamplingDesignError(f"{source}: no weight column {column!r}")
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values <= 0)
    if bad.any():
        raise SamplingDesignError(
            f"{source}: weight column {column!r} must be positive numbers; {int(bad.sum())} rows "
            "are not"
        )
    return RowWeights(
        weights=values,
        strata=np.zeros(len(values), dtype=np.int64),
        description=f"weight column {column!r} of {source}",
    )


def uniform_weights(rows: int) -> RowWeights:
    return RowWeights(
        weights=np.ones(rows),
        strata=np.zeros(rows, dtype=np.int64),
        description="none given: the rows are taken as a uniform sample of live traffic",
    )


def production_weights(
    labels: np.ndarray, target_rate: float | None, design: np.ndarray | None = None
) -> np.ndarray:
    """Design weights (1 without a design) with the legitimate rows scaled so that the weighted
    fraud share is `target_rate`: each row counts as the live transactions it stands for."""
    weights = np.ones(len(labels)) if design is None else np.asarray(design, dtype=np.float64)
    if target_rate is None:
        return weights
    fraud = labels == 1
    fraud_total, normal_total = weights[fraud].sum(), weights[~fraud].sum()
    if fraud_total == 0 or normal_total == 0:
        return weights
    scale = fraud_total * (1.0 - target_rate) / (target_rate * normal_total)
    return np.where(fraud, weights, weights * scale)
