"""Ray-parallel training on a real (private) Ray cluster."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from fraud_model.artifact import load_artifact, sha256_file
from tests.helpers import PROJECT_ROOT, random_transactions
from training.data import Dataset, synthetic_dataset
from training.forest import ForestParams, train_forest_in_threads
from training.pipeline import TrainingOptions, train_and_export
from training.ray_forest import train_forest_on_ray

pytestmark = pytest.mark.ray

PARAMS = ForestParams(n_estimators=12, max_depth=8)


def test_forest_is_the_same_whatever_the_number_of_tasks_or_threads(
    ray_cluster: str, tiny_dataset: Dataset
) -> None:
    x, y = tiny_dataset.features, tiny_dataset.labels
    probe = random_transactions(300)
    forests = [train_forest_on_ray(x, y, PARAMS, seed=5, num_tasks=n) for n in (1, 3, 12)]
    assert all(forest.n_estimators == 12 for forest in forests)
    for forest in forests[1:]:
        np.testing.assert_array_equal(forest.predict_proba(probe), forests[0].predict_proba(probe))
    rerun = train_forest_on_ray(x, y, PARAMS, seed=5, num_tasks=3)
    np.testing.assert_array_equal(rerun.predict_proba(probe), forests[0].predict_proba(probe))
    other_seed = train_forest_on_ray(x, y, PARAMS, seed=6, num_tasks=3)
    assert not np.array_equal(other_seed.predict_proba(probe), forests[0].predict_proba(probe))
    in_threads = train_forest_in_threads(x, y, PARAMS, seed=5, num_tasks=2)
    np.testing.assert_array_equal(in_threads.predict_proba(probe), forests[0].predict_proba(probe))


def test_progress_is_reported_up_to_all_trees(ray_cluster: str, tiny_dataset: Dataset) -> None:
    seen: list[tuple[int, int]] = []
    train_forest_on_ray(
        tiny_dataset.features,
        tiny_dataset.labels,
        PARAMS,
        num_tasks=4,
        on_progress=lambda built, total: seen.append((built, total)),
    )
    assert [built for built, _ in seen] == [3, 6, 9, 12]
    assert {total for _, total in seen} == {12}


def test_pipeline_writes_an_evaluated_artifact(ray_cluster: str, tmp_path: Path) -> None:
    dataset = synthetic_dataset(5_000, fraud_rate=0.04, seed=1)
    options = TrainingOptions(seed=1, production_fraud_rate=0.004, stability_runs=0)
    metadata = train_and_export(
        dataset,
        ForestParams(n_estimators=20, min_samples_leaf=3, class_weight="balanced_subsample"),
        options,
        tmp_path / "model",
        build_forest=train_forest_on_ray,
    )

    loaded = load_artifact(tmp_path / "model")
    assert loaded.metadata == metadata
    # Calibrated at the production rate on the out-of-bag scores of the fit rows (grown on the
    # cluster, their bags drawn again here) and the validation rows.
    calibration = metadata.calibration
    assert calibration.method == "platt" and calibration.production_prior == 0.004
    assert calibration.slope is not None and calibration.slope > 0
    assert "out-of-bag scores of" in metadata.metrics["calibration"]["fitted_on"]
    # Every fit row out of some tree's bag (20 trees), and the 800 validation rows.
    assert metadata.metrics["calibration"]["rows"] >= 3_990
    test = metadata.metrics["test"]
    assert test["rows"] == 1_000 and test["frauds"] == 40
    assert test["pr_auc"] > 0.5  # the synthetic frauds are learnable
    assert metadata.metrics["split_rows"] == {"fit": 3_200, "validation": 800, "test": 1_000}
    assert 0 < metadata.threshold < 1
    assert metadata.training_params["forest"]["n_estimators"] == 20
    assert sum(metadata.training_params["trees_by_ray_node"].values()) == 20


def test_the_report_is_written_into_the_artifact_and_hashed(tmp_path: Path) -> None:
    dataset = synthetic_dataset(4_000, fraud_rate=0.04, seed=2)
    options = TrainingOptions(
        seed=2, threshold_strategy="min_cost", review_cost=3.0, stability_runs=0
    )
    metadata = train_and_export(
        dataset, ForestParams(n_estimators=10, max_depth=8), options, tmp_path / "model"
    )
    assert metadata.report_file == "report.md"
    report = (tmp_path / "model" / "report.md").read_text()
    assert "## Held-out metrics (random split, shipped rule)" in report
    assert "Review cost:** 3 per flagged transaction" in report
    images = [name for name in metadata.files if name.endswith(".png")]
    assert len(images) == 6
    for name in [*images, "report.md"]:
        assert metadata.files[name] == sha256_file(tmp_path / "model" / name)  # hashed
    for name in images:
        assert f"]({name})" in report  # linked from the report
        assert (tmp_path / "model" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert metadata.metrics["expected_cost_per_transaction"] > 0
    assert metadata.metrics["review_cost"] == 3.0
    assert metadata.threshold_strategy.startswith("min_cost")
    assert metadata.decision is not None
    # The drift reference describes live traffic: fraud-level scores are rare in it.
    assert sum(metadata.score_bins.shares) == pytest.approx(1.0)


def test_served_probabilities_match_the_production_fraud_rate(tmp_path: Path) -> None:
    """Trained where fraud is 5 %, scored where it is 0.5 %: the mean probability must follow."""
    train = synthetic_dataset(8_000, fraud_rate=0.05, seed=2)
    train_and_export(
        train,
        ForestParams(n_estimators=30, min_samples_leaf=3),
        TrainingOptions(seed=2, production_fraud_rate=0.005, stability_runs=0),
        tmp_path / "model",
    )
    live = synthetic_dataset(40_000, fraud_rate=0.005, seed=3)
    loaded = load_artifact(tmp_path / "model")

    calibrated = loaded.fraud_probability(live.features)
    uncalibrated = loaded.engine.raw_fraud_scores(live.features)
    assert 0.5 * 0.005 < calibrated.mean() < 2 * 0.005
    assert uncalibrated.mean() > 2.5 * calibrated.mean()
    assert average_precision_score(live.labels, calibrated) == pytest.approx(
        average_precision_score(live.labels, uncalibrated)
    )


TRAIN_SMALL = [
    "--synthetic", "3000", "--synthetic-fraud-rate", "0.03",
    "--n-estimators", "8", "--max-depth", "6", "--stability-runs", "1",
]  # fmt: skip


def run_training_cli(output: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m training` on small synthetic data; it reports whether Ray was imported."""
    code = (
        "import sys; from training.cli import main; code = main(sys.argv[1:]); "
        "print('ray imported:', 'ray' in sys.modules); sys.exit(code)"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *TRAIN_SMALL, "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=env,
        cwd=PROJECT_ROOT,
    )


def test_cli_trains_on_the_cluster_in_ray_address(ray_cluster: str, tmp_path: Path) -> None:
    result = run_training_cli(tmp_path / "model", os.environ | {"RAY_ADDRESS": ray_cluster})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ray tasks" in result.stdout and "Trees built: 8/8" in result.stdout
    assert "held-out test" in result.stdout and "PR-AUC" in result.stdout
    metadata = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert metadata["training_params"]["forest"]["n_estimators"] == 8
    assert sum(metadata["training_params"]["trees_by_ray_node"].values()) == 8
    assert metadata["data"]["source"].startswith("synthetic(n=3000")
    load_artifact(tmp_path / "model")


def test_cli_without_a_cluster_trains_in_threads_and_never_loads_ray(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    result = run_training_cli(tmp_path / "model", env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "threads of this process" in result.stdout and "Trees built: 8/8" in result.stdout
    assert "ray imported: False" in result.stdout
    metadata = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert metadata["training_params"]["trees_by_ray_node"] == {}
    load_artifact(tmp_path / "model")
