"""A RandomForest built in parts and merged into one forest.

Every tree gets its own seed, spawned from the forest's seed, and trees are dealt to tasks in
order. The merged forest therefore depends only on the data, the parameters and the seed, not on
how many tasks, threads or machines built it: a re-run on a Ray cluster gives the same model as
one in this process's threads. This module needs no Ray; `training.ray_forest` builds on Ray.
"""

import copy
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from training.options import ForestParams

logger = logging.getLogger(__name__)

# train_forest_in_threads or training.ray_forest.train_forest_on_ray: same arguments, same forest.
ForestBuilder = Callable[..., RandomForestClassifier]


def tree_seeds(n_estimators: int, seed: int) -> list[int]:
    """One independent 32-bit seed per tree."""
    children = np.random.SeedSequence(seed).spawn(n_estimators)
    return [int(child.generate_state(1)[0]) for child in children]


def bootstrap_counts(seed: int, rows: int, params: ForestParams) -> np.ndarray:
    """How many times each row is drawn into the bag of the tree with this seed (all 1 without
    bootstrap). Drawn here rather than inside scikit-learn, so that the out-of-bag rows of every
    tree are known (training.calibrate scores each row with the trees that never saw it)."""
    if not params.bootstrap:
        return np.ones(rows, dtype=np.int64)
    size = bag_size(rows, params.max_samples)
    drawn = np.random.default_rng(seed).integers(0, rows, size)
    counts: np.ndarray = np.bincount(drawn, minlength=rows)
    return counts


def bag_size(rows: int, max_samples: float | int | None) -> int:
    """Rows drawn per tree, as scikit-learn reads max_samples (None: all, int: that many,
    float: that share)."""
    if max_samples is None:
        return rows
    if isinstance(max_samples, int):
        return max_samples
    return max(round(rows * max_samples), 1)


def tree_sample_weight(labels: np.ndarray, counts: np.ndarray, params: ForestParams) -> np.ndarray:
    """A tree's row weights: its bag counts times the class weights, which "balanced_subsample"
    computes on the bag and "balanced" on all rows (as scikit-learn does)."""
    weights = counts.astype(np.float64)
    if params.class_weight is None:
        return weights
    seen = counts if params.class_weight == "balanced_subsample" else np.ones(len(labels))
    per_class = np.bincount(labels, weights=seen, minlength=2)
    present = per_class > 0
    class_weight = np.zeros(2)
    class_weight[present] = per_class.sum() / (present.sum() * per_class[present])
    weighted: np.ndarray = weights * class_weight[labels]
    return weighted


def fit_trees(
    features: np.ndarray, labels: np.ndarray, seeds: list[int], params: ForestParams
) -> RandomForestClassifier:
    """Fit a sub-forest with one tree per seed (as a one-tree forest each, then merged).

    Each tree is grown on all rows weighted by its own bag (bootstrap_counts): what scikit-learn
    does inside its bootstrap, with the bag drawn here from the tree's seed.
    """
    labels = np.asarray(labels, dtype=np.int64)
    single_tree_forests = []
    for seed in seeds:
        kwargs = params.sklearn_kwargs() | {
            "n_estimators": 1,
            "random_state": seed,
            "n_jobs": 1,
            "bootstrap": False,
            "max_samples": None,
            "class_weight": None,
        }
        weights = tree_sample_weight(labels, bootstrap_counts(seed, len(labels), params), params)
        forest = RandomForestClassifier(**kwargs).fit(features, labels, sample_weight=weights)
        single_tree_forests.append(forest)
    return merge_forests(single_tree_forests)


def merge_forests(forests: list[RandomForestClassifier]) -> RandomForestClassifier:
    """One forest holding every tree of `forests`.

    sklearn's predict_proba is the mean of its trees' predict_proba, so the merged forest scores
    exactly as a forest grown with all those trees would.
    """
    if not forests:
        raise ValueError("merge_forests needs at least one forest")
    first = forests[0]
    for other in forests[1:]:
        if not np.array_equal(other.classes_, first.classes_):
            raise ValueError(
                f"Cannot merge forests with classes {first.classes_} and {other.classes_}"
            )
        if other.n_features_in_ != first.n_features_in_:
            raise ValueError("Cannot merge forests trained on different numbers of features")
    merged = copy.deepcopy(first)
    merged.estimators_ = [tree for forest in forests for tree in forest.estimators_]
    merged.n_estimators = len(merged.estimators_)
    return merged


def deal_seeds(n_estimators: int, seed: int, num_tasks: int) -> list[list[int]]:
    """The trees' seeds in order, cut into at most `num_tasks` consecutive chunks."""
    if n_estimators < 1:
        raise ValueError(f"n_estimators must be at least 1, got {n_estimators}")
    if num_tasks < 1:
        raise ValueError(f"num_tasks must be at least 1, got {num_tasks}")
    seeds = tree_seeds(n_estimators, seed)
    chunk = math.ceil(n_estimators / min(num_tasks, n_estimators))
    return [seeds[start : start + chunk] for start in range(0, len(seeds), chunk)]


class Assembly:
    """The sub-forests of one forest as their tasks finish, in any order: logs and reports
    progress (`on_progress(built, total)`), and merges them in seed order, so the forest is the
    same whichever task finished first."""

    def __init__(
        self,
        chunks: list[list[int]],
        rows: int,
        workers: str,
        on_progress: Callable[[int, int], None] | None,
    ) -> None:
        self.total = sum(len(chunk) for chunk in chunks)
        self.on_progress = on_progress
        self.built, self.started = 0, time.perf_counter()
        self._parts: list[RandomForestClassifier | None] = [None] * len(chunks)
        logger.info("Building %d trees in %d %s (%d rows)", self.total, len(chunks), workers, rows)

    def add(self, index: int, part: RandomForestClassifier, where: str) -> None:
        self._parts[index] = part
        self.built += part.n_estimators
        logger.info(
            "Trees built: %d/%d (%.1f s), the last %d %s",
            self.built,
            self.total,
            time.perf_counter() - self.started,
            part.n_estimators,
            where,
        )
        if self.on_progress is not None:
            self.on_progress(self.built, self.total)

    def forest(self) -> RandomForestClassifier:
        return merge_forests([part for part in self._parts if part is not None])


def train_forest_in_threads(
    features: np.ndarray,
    labels: np.ndarray,
    params: ForestParams,
    *,
    seed: int = 0,
    num_tasks: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    trees_by_node: Counter[str] | None = None,
) -> RandomForestClassifier:
    """Grow the forest in this process, one thread per task (default: one per CPU).

    scikit-learn builds a tree without holding the GIL, so the threads use every core, as its own
    forests do, and nothing is started: no Ray, no worker processes. `trees_by_node` stays empty.
    """
    del trees_by_node  # no Ray nodes here
    chunks = deal_seeds(params.n_estimators, seed, num_tasks or os.cpu_count() or 1)
    assembly = Assembly(chunks, len(labels), "threads of this process", on_progress)
    with ThreadPoolExecutor(max_workers=len(chunks), thread_name_prefix="trees") as pool:
        pending = {
            pool.submit(fit_trees, features, labels, chunk, params): index
            for index, chunk in enumerate(chunks)
        }
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                assembly.add(pending.pop(future), future.result(), "in a thread")
    return assembly.forest()
