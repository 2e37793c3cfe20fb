"""Training wall time: our forest in threads and in Ray tasks vs sklearn n_jobs=-1, same data and
parameters, one after the other in one run."""

import logging
import time

import ray
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import average_precision_score
from sklearn.model_selection import train_test_split

from training.data import synthetic_dataset
from training.forest import train_forest_in_threads
from training.options import ForestParams
from training.ray_forest import train_forest_on_ray

logger = logging.getLogger("benchmarks.training_time")


@ray.remote
def _import_sklearn() -> None:
    import sklearn.ensemble  # noqa: F401


def compare_training(rows: int, seed: int = 0, evaluation_rows: int = 1_000_000) -> dict:
    data = synthetic_dataset(rows, fraud_rate=0.00172, seed=seed)
    x_train, _, y_train, _ = train_test_split(
        data.features, data.labels, test_size=0.2, stratify=data.labels, random_state=seed
    )
    # PR-AUC from ~100 test frauds moves by about 0.01 between two forests of the same recipe.
    # A large independent sample (about 1,700 frauds) measures the trainers, not that noise.
    evaluation = synthetic_dataset(evaluation_rows, fraud_rate=0.00172, seed=seed + 1)
    x_test, y_test = evaluation.features, evaluation.labels
    logger.info(
        "== training %d trees on %d synthetic rows", ForestParams().n_estimators, len(y_train)
    )

    started = time.perf_counter()
    sklearn_forest = RandomForestClassifier(
        **ForestParams().sklearn_kwargs(), n_jobs=-1, random_state=seed
    )
    sklearn_forest.fit(x_train, y_train)
    sklearn_s = time.perf_counter() - started

    started = time.perf_counter()
    threads_forest = train_forest_in_threads(x_train, y_train, ForestParams(), seed=seed)
    threads_s = time.perf_counter() - started

    started = time.perf_counter()
    ray.init(logging_level=logging.WARNING)
    # Start the workers and import sklearn in them, as the sklearn run had it imported: the
    # cluster's start-up is reported on its own (ray_init_s), not as training time.
    ray.get([_import_sklearn.remote() for _ in range(int(ray.cluster_resources()["CPU"]))])
    ray_start_s = time.perf_counter() - started
    started = time.perf_counter()
    ray_forest = train_forest_on_ray(x_train, y_train, ForestParams(), seed=seed)
    ray_s = time.perf_counter() - started
    ray.shutdown()

    pr_auc = {
        name: average_precision_score(y_test, forest.predict_proba(x_test)[:, 1])
        for name, forest in (
            ("sklearn", sklearn_forest),
            ("threads", threads_forest),
            ("ray", ray_forest),
        )
    }
    result = {
        "rows": len(y_train),
        "evaluation_rows": len(y_test),
        "evaluation_frauds": int(y_test.sum()),
        "sklearn_n_jobs_-1_s": round(sklearn_s, 1),
        "threads_s": round(threads_s, 1),
        "ray_parallel_s": round(ray_s, 1),
        "ray_init_s": round(ray_start_s, 1),
        "ratio_threads_to_sklearn": round(threads_s / sklearn_s, 3),
        "ratio_ray_to_sklearn": round(ray_s / sklearn_s, 3),
        "pr_auc_sklearn": round(pr_auc["sklearn"], 4),
        "pr_auc_ray": round(pr_auc["ray"], 4),
        # The same seeds: our two forests are one forest, whichever way it was built.
        "threads_and_ray_identical": bool(
            (threads_forest.predict_proba(x_test) == ray_forest.predict_proba(x_test)).all()
        ),
        "pr_auc_difference": round(abs(pr_auc["sklearn"] - pr_auc["ray"]), 4),
    }
    logger.info("  %s", result)
    return result
