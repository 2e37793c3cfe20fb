"""The forest's trees built in Ray tasks, spread over the cluster's nodes (see training.forest)."""

import logging
from collections import Counter
from collections.abc import Callable

import numpy as np
import ray
from sklearn.ensemble import RandomForestClassifier

from training.forest import Assembly, deal_seeds, fit_trees
from training.options import ForestParams

logger = logging.getLogger(__name__)


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


def train_forest_on_ray(
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
    seed_chunks = deal_seeds(params.n_estimators, seed, num_tasks or default_num_tasks())
    assembly = Assembly(seed_chunks, len(labels), "Ray tasks", on_progress)
    # Put the arrays in the object store once; every task reads the same zero-copy buffers.
    features_ref, labels_ref = ray.put(features), ray.put(labels)
    pending = {
        _fit_trees_task.remote(features_ref, labels_ref, chunk_seeds, params): index
        for index, chunk_seeds in enumerate(seed_chunks)
    }
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        part, node_id = ray.get(done[0])
        if trees_by_node is not None:
            trees_by_node[node_id] += part.n_estimators
        assembly.add(pending.pop(done[0]), part, f"on node {node_id[:12]}")
    return assembly.forest()
