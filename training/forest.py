"""Ray-parallel RandomForest training: trees are built in Ray tasks and merged into one forest.

Every tree gets its own seed, spawned from the forest's seed, and trees are dealt to tasks in
order. The merged forest therefore depends only on the data, the parameters and the seed, not on
how many tasks or machines built it: a re-run on a bigger cluster gives the same model.
"""

import copy
import logging
import math
import time
from collections import Counter
from collections.abc import Callable

import numpy as np
import ray
from sklearn.ensemble import RandomForestClassifier

from training.options import ForestParams

logger = logging.getLogger(__name__)


def tree_seeds(n_estimators: int, seed: int) -> list[int]:
    """One independent 32-bit seed per tree."""
    children = np.random.SeedSequence(seed).spawn(n_estimators)
    return [int(child.generate_state(1)[0]) for child in children]


def fit_trees(
    features: np.ndarray, labels: np.ndarray, seeds: list[int], params: ForestParams
) -> RandomForestClassifier:
    """Fit a sub-forest with one tree per seed (as a one-tree forest each, then merged)."""
    single_tree_forests = []
    for seed in seeds:
        kwargs = params.sklearn_kwargs() | {"n_estimators": 1, "random_state": seed, "n_jobs": 1}
        single_tree_forests.append(RandomForestClassifier(**kwargs).fit(features, labels))
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


def _fit_trees_on_a_node(
    features: np.ndarray, labels: np.ndarray, seeds: list[int], params: ForestParams
) -> tuple[RandomForestClassifier, str]:
    """fit_trees, and the id of the Ray node that ran it."""
    return fit_trees(features, labels, seeds, params), ray.get_runtime_context().get_node_id()


# SPREAD: on a cluster, tasks go to as many nodes as have room, not first to the driver's own.
_fit_trees_task = ray.remote(num_cpus=1, scheduling_strategy="SPREAD")(_fit_trees_on_a_node)


def default_num_tasks() -> int:
    """One task per CPU of the Ray cluster this process is connected to."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def train_forest(
    features: np.ndarray,
    labels: np.ndarray,
    params: ForestParams,
    *,
    seed: int = 0,
    num_tasks: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    trees_by_node: Counter[str] | None = None,
) -> RandomForestClassifier:
    """Grow `params.n_estimators` trees across Ray tasks and merge them. Ray must be initialised.

    `on_progress(built, total)` is called as tasks finish; `trees_by_node`, if given, counts the
    trees each Ray node built (by node id).
    """
    if params.n_estimators < 1:
        raise ValueError(f"n_estimators must be at least 1, got {params.n_estimators}")
    seeds = tree_seeds(params.n_estimators, seed)
    num_tasks = min(num_tasks or default_num_tasks(), params.n_estimators)
    chunk = math.ceil(params.n_estimators / num_tasks)
    seed_chunks = [seeds[start : start + chunk] for start in range(0, len(seeds), chunk)]

    # Put the arrays in the object store once; every task reads the same zero-copy buffers.
    features_ref, labels_ref = ray.put(features), ray.put(labels)
    pending = {
        _fit_trees_task.remote(features_ref, labels_ref, chunk_seeds, params): index
        for index, chunk_seeds in enumerate(seed_chunks)
    }
    logger.info(
        "Building %d trees in %d Ray tasks (%d rows, %d features)",
        params.n_estimators,
        len(seed_chunks),
        *features.shape,
    )
    started = time.perf_counter()
    sub_forests: list[RandomForestClassifier | None] = [None] * len(seed_chunks)
    built = 0
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        index = pending.pop(done[0])
        forest, node_id = ray.get(done[0])
        sub_forests[index] = forest
        built += forest.n_estimators
        if trees_by_node is not None:
            trees_by_node[node_id] += forest.n_estimators
        logger.info(
            "Trees built: %d/%d (%.1f s), the last %d on node %s",
            built,
            params.n_estimators,
            time.perf_counter() - started,
            forest.n_estimators,
            node_id[:12],
        )
        if on_progress is not None:
            on_progress(built, params.n_estimators)
    # Merge in seed order so the forest is the same whichever task finished first.
    return merge_forests([forest for forest in sub_forests if forest is not None])
