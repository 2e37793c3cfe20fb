"""Shared fixtures: tiny real models and artifacts, one private Ray cluster per test session."""

import json
import os
import shutil

# Before anything imports Ray: keep Ray's workers in this venv instead of a fresh `uv run` one.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from fraud_model.drift import reference_bins
from fraud_model.metadata import ArtifactMetadata, Calibration, DataFingerprint, ScoreBins
from fraud_model.prior import adjust_to_prior
from serve_app.cli import free_port
from training.data import Dataset, synthetic_dataset
from training.export import forest_to_onnx
from training.save import save_artifact

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
    path: Path,
    model: RandomForestClassifier,
    dataset: Dataset,
    threshold: float = 0.5,
    **save_options: Any,
) -> ArtifactMetadata:
    """save_artifact with test defaults; `save_options` (score_bins, extra_files, report_file,
    overwrite) are passed through. The drift reference defaults to the first 200 rows' scores."""
    calibration = Calibration(training_prior=dataset.fraud_rate, production_prior=0.00172)
    if "score_bins" not in save_options:
        raw = model.predict_proba(dataset.features[:200])[:, 1]
        scores = adjust_to_prior(raw, calibration.training_prior, calibration.production_prior)
        edges, shares = reference_bins(scores)
        save_options["score_bins"] = ScoreBins(edges=edges, shares=shares)
    return save_artifact(
        path,
        model,
        forest_to_onnx(model),
        dataset.features[:200],
        threshold=threshold,
        threshold_strategy="fixed (test)",
        calibration=calibration,
        training_params={"n_estimators": model.n_estimators},
        data=DataFingerprint(**dataset.fingerprint.model_dump()),
        metrics={},
        **save_options,
    )


@pytest.fixture(scope="session")
def pristine_artifact(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_forest: RandomForestClassifier,
    tiny_dataset: Dataset,
) -> Path:
    path = tmp_path_factory.mktemp("pristine") / "model"
    write_artifact(path, tiny_forest, tiny_dataset)
    return path


@pytest.fixture
def artifact_dir(tmp_path: Path, pristine_artifact: Path) -> Path:
    """A test's own copy of a tiny real artifact (threshold 0.5), free to damage."""
    return Path(shutil.copytree(pristine_artifact, tmp_path / "model"))


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
    rows = np.random.default_rng(seed).normal(size=(n, 29)).astype(np.float32)
    rows[:, -1] = np.abs(rows[:, -1]) * 100  # Amount: never negative
    return rows


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API (moto's server mode) on a free loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


S3_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/dev/null",  # never the developer's own AWS config or credentials
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This process talks to the moto server through boto3's standard settings; returns them."""
    env = S3_TEST_ENV | {"AWS_ENDPOINT_URL_S3": s3_endpoint}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def upload_files(artifact_dir: Path, bucket: str, prefix: str) -> str:
    """Copy an artifact directory's files to s3://bucket/prefix as they are (creating the
    bucket), bypassing publish: for tests of what a replica does with a store it cannot trust."""
    import boto3

    client = boto3.client("s3")
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)
    for file in artifact_dir.iterdir():
        client.put_object(Bucket=bucket, Key=f"{prefix}/{file.name}", Body=file.read_bytes())
    return f"s3://{bucket}/{prefix}"


def upload_artifact(artifact_dir: Path, bucket: str, base: str) -> str:
    """The artifact's files at s3://bucket/base/<model_version>, where a published version lives
    (as upload_files: nothing is checked, nothing is refused); returns that URI."""
    version = json.loads((artifact_dir / "metadata.json").read_text())["model_version"]
    return upload_files(artifact_dir, bucket, f"{base}/{version}")
