"""Fit, validation and test rows: a random split or an out-of-time one, never splitting a group of
identical rows.

The public data repeats some transactions exactly (same features, often the same `Time`). A copy
in the training rows and its twin in the test rows would be scored as if the model met it for the
first time; so rows the model cannot tell apart (identical float32 features, what it reads) form
one group, and a group goes whole to one split.

- random: stratified by class and by the sampling design's stratum, groups drawn at random with
  the split's own seed (not the forest's: two forests trained on the same data are measured on
  the same rows).
- temporal: ordered by `Time`; the test rows are the last `test_size` of live volume (design
  weights), the validation rows the last `validation_size` of what precedes them, the forest is
  grown on the earliest. A group goes where its earliest row goes.
"""

from dataclasses import dataclass

import numpy as np

from training.options import SplitKind


class SplitError(ValueError):
    """The data cannot be split as asked; the message says why."""


@dataclass(frozen=True)
class DuplicateGroups:
    ids: np.ndarray  # (n,) group of each row; rows of one group are identical model inputs
    groups: int  # groups of two rows or more
    rows: int  # rows in those groups


@dataclass(frozen=True)
class RowSplit:
    """Row indices of each part, in ascending order."""

    kind: SplitKind
    seed: int | None  # the random split's seed; None for temporal
    fit: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    description: str


def duplicate_groups(features: np.ndarray) -> DuplicateGroups:
    """Group rows with identical features (as the model reads them)."""
    _, ids, counts = np.unique(features, axis=0, return_inverse=True, return_counts=True)
    ids = ids.ravel()
    repeated = counts > 1
    return DuplicateGroups(ids=ids, groups=int(repeated.sum()), rows=int(counts[repeated].sum()))


def split_rows(
    kind: SplitKind,
    *,
    labels: np.ndarray,
    groups: np.ndarray,
    strata: np.ndarray,
    volume: np.ndarray,
    times: np.ndarray | None,
    test_size: float,
    validation_size: float,
    seed: int,
) -> RowSplit:
    """Fit, validation and test rows. `volume`: each row's design weight (live transactions it
    stands for), which sizes the temporal split; `strata`: the design stratum of each row."""
    rows = np.arange(len(labels))
    if kind == "temporal":
        if times is None:
            raise SplitError("the temporal split needs a Time column in the data")
        earlier, test, test_cut = _later_part(rows, times, volume, groups, test_size)
        fit, validation, validation_cut = _later_part(
            earlier, times, volume, groups, validation_size
        )
        description = (
            f"temporal: fit on Time <= {validation_cut:g}, validation to {test_cut:g}, test "
            f"after it (the last {test_size:.0%} of live volume); a duplicate group goes where "
            "its earliest row goes"
        )
        result = RowSplit(kind, None, fit, validation, test, description)
    else:
        key = labels.astype(np.int64) * (int(strata.max()) + 1) + strata
        rng = np.random.default_rng(seed)
        train, test = _random_part(rows, key, groups, test_size, rng)
        fit, validation = _random_part(train, key, groups, validation_size, rng)
        description = (
            f"random: stratified by class and sampling stratum, split seed {seed}, duplicate "
            "groups kept whole"
        )
        result = RowSplit(kind, seed, fit, validation, test, description)
    for name in ("fit", "validation", "test"):
        part = getattr(result, name)
        if labels[part].min(initial=1) != 0 or labels[part].max(initial=0) != 1:
            raise SplitError(f"the {kind} split leaves the {name} rows without both classes")
    return result


def _random_part(
    rows: np.ndarray,
    key: np.ndarray,
    groups: np.ndarray,
    size: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(rest, part): whole groups drawn at random until `size` of each key's rows is reached.
    A group counts in the key of its first row."""
    group_ids, first, group_rows = np.unique(groups[rows], return_index=True, return_counts=True)
    group_key = key[rows][first]
    chosen = np.zeros(len(group_ids), dtype=bool)
    for value in np.unique(group_key):
        members = np.flatnonzero(group_key == value)
        target = round(size * group_rows[members].sum())
        order = rng.permutation(members)
        reached = np.cumsum(group_rows[order])
        # Groups in drawn order until the target is reached (the last one may pass it).
        chosen[order[: int(np.searchsorted(reached, target)) + 1 if target else 0]] = True
    in_part = np.isin(groups[rows], group_ids[chosen])
    return rows[~in_part], rows[in_part]


def _later_part(
    rows: np.ndarray,
    times: np.ndarray,
    volume: np.ndarray,
    groups: np.ndarray,
    size: float,
) -> tuple[np.ndarray, np.ndarray, float]:
    """(earlier, later, cut): `later` holds the rows after the time `cut` at which `1 - size` of
    the rows' volume has gone by; a group goes where its earliest row goes."""
    order = rows[np.argsort(times[rows], kind="stable")]
    passed = np.cumsum(volume[order]) / volume[order].sum()
    cut = times[order][min(int(np.searchsorted(passed, 1.0 - size)), len(order) - 1)]
    first_time = np.full(int(groups.max()) + 1, np.inf)
    np.minimum.at(first_time, groups[rows], times[rows])
    later = first_time[groups[rows]] > cut
    return rows[~later], rows[later], float(cut)
