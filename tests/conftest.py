"""Shared fixtures: tiny real models and artifacts, one private Ray cluster per test session."""

import os

# Before anything imports Ray: keep Ray's workers in this venv instead of a fresh `uv run` one.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from fraud_model.artifact import save_artifact
from fraud_model.metadata import ArtifactMetadata, Calibration, DataFingerprint
from serve_app.cli import free_port
from training.data import Dataset, synthetic_dataset
from training.export import forest_to_onnx

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_dataset() -> Dataset:
    """2,000 synthetic rows, 5 % fraud: enough for a stratified split and a learnable signal."""
    return synthetic_dataset(2_000, fraud_rate=0.05, seed=7)


@pytest.fixture(scope="session")
def tiny_forest(tiny_dataset: Dataset) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=5, max_depth=6, random_state=0).fit(
        tiny_dataset.features, tiny_dataset.labels
    )


def write_artifact(
    path: Path, model: RandomForestClassifier, dataset: Dataset, threshold: float = 0.5
) -> ArtifactMetadata:
    return save_artifact(
        path,
        model,
        forest_to_onnx(model),
        dataset.features[:200],
        threshold=threshold,
        threshold_strategy="fixed (test)",
        calibration=Calibration(training_prior=dataset.fraud_rate, production_prior=0.00172),
        training_params={"n_estimators": model.n_estimators},
        data=DataFingerprint(**dataset.fingerprint.model_dump()),
        metrics={},
    )


@pytest.fixture
def artifact_dir(
    tmp_path: Path, tiny_forest: RandomForestClassifier, tiny_dataset: Dataset
) -> Path:
    write_artifact(tmp_path / "model", tiny_forest, tiny_dataset)
    return tmp_path / "model"


@pytest.fixture(scope="session")
def session_artifact(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_forest: RandomForestClassifier,
    tiny_dataset: Dataset,
) -> Path:
    path = tmp_path_factory.mktemp("artifacts") / "tiny"
    write_artifact(path, tiny_forest, tiny_dataset, threshold=0.01)
    return path


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """A private local Ray cluster; never attaches to (or stops) one the user is running."""
    import ray

    context = ray.init(
        address="local",
        num_cpus=4,
        include_dashboard=False,
        logging_level="WARNING",
        namespace="fraud-tests",
    )
    yield context.address_info["gcs_address"]
    ray.shutdown()


@pytest.fixture(scope="session")
def serve_url(ray_cluster: str) -> Iterator[str]:
    """Serve's HTTP proxy on a free loopback port of the private cluster."""
    from ray import serve

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()


def random_transactions(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 29)).astype(np.float32)
