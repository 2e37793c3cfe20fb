"""Splits: identical rows never straddle two parts, the random split has its own seed, and the
temporal one tests on the latest transactions."""

import numpy as np
import pytest

from tests.helpers import PROJECT_ROOT
from training.data import Dataset, load_transactions, synthetic_dataset
from training.options import TrainingOptions
from training.pipeline import groups_across_parts, make_split
from training.split import SplitError, duplicate_groups, split_rows


@pytest.fixture(scope="module")
def bundled() -> Dataset:
    return load_transactions(PROJECT_ROOT / "data" / "creditcard_real_subset.csv.gz")


def parts(split: object) -> list[np.ndarray]:
    return [split.fit, split.validation, split.test]  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["random", "temporal"])
def test_no_duplicate_group_straddles_a_split_of_the_bundled_data(
    bundled: Dataset, kind: str
) -> None:
    groups = duplicate_groups(bundled.features)
    # The public data repeats transactions: rows the model reads as identical.
    assert (groups.groups, groups.rows) == (137, 376)
    split = make_split(bundled, kind, TrainingOptions(), groups)  # type: ignore[arg-type]
    assert sorted(np.concatenate(parts(split)).tolist()) == list(range(len(bundled.labels)))
    owner = {}
    for index, rows in enumerate(parts(split)):
        for group in np.unique(groups.ids[rows]):
            assert owner.setdefault(group, index) == index, f"group {group} straddles"
    assert groups_across_parts(groups, split) == 0


def test_the_random_split_is_stratified_and_has_its_own_seed(bundled: Dataset) -> None:
    groups = duplicate_groups(bundled.features)
    options = TrainingOptions(seed=7)  # another forest seed: the same split
    first = make_split(bundled, "random", options, groups)
    again = make_split(bundled, "random", TrainingOptions(seed=42), groups)
    other = make_split(bundled, "random", TrainingOptions(split_seed=43), groups)
    np.testing.assert_array_equal(first.test, again.test)
    assert not np.array_equal(first.test, other.test)
    labels, strata = bundled.labels, bundled.sampling.strata
    for stratum in np.unique(strata):
        for label in (0, 1):
            cell = (strata == stratum) & (labels == label)
            if cell.any():
                share = cell[first.test].sum() / cell.sum()
                assert share == pytest.approx(0.2, abs=0.02)


def test_the_temporal_split_tests_on_the_latest_live_volume(bundled: Dataset) -> None:
    groups = duplicate_groups(bundled.features)
    split = make_split(bundled, "temporal", TrainingOptions(), groups)
    times, volume = bundled.times, bundled.sampling.weights
    assert times is not None
    # Rows out of time order are rows of a duplicate group, which goes where its earliest is.
    single = np.bincount(groups.ids)[groups.ids] == 1
    fit, validation, test = (rows[single[rows]] for rows in parts(split))
    assert times[fit].max() <= times[validation].min()
    assert times[validation].max() <= times[test].min()
    moved = np.concatenate(parts(split)[:2])
    moved = moved[times[moved] > times[test].min()]
    assert len(moved) <= groups.rows and not single[moved].any()
    assert volume[split.test].sum() / volume.sum() == pytest.approx(0.2, abs=0.01)
    # The head of the file (every legitimate row of the first four hours) is all fit rows.
    assert np.isin(np.flatnonzero(times <= 14224), split.fit).all()


def test_a_temporal_split_needs_time() -> None:
    data = synthetic_dataset(400, fraud_rate=0.1, seed=1)
    with pytest.raises(SplitError, match="needs a Time column"):
        split_rows(
            "temporal", labels=data.labels, groups=np.arange(400), strata=np.zeros(400, int),
            volume=np.ones(400), times=None, test_size=0.2, validation_size=0.2, seed=0,
        )  # fmt: skip
