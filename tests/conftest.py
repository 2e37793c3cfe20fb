"""Shared fixtures: tiny real models and artifacts, one private Ray cluster per test session."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fraud_model.ray_env import SERVE_ENVIRONMENT, free_port, use_this_venv_for_ray_workers
from tests.helpers import METRICS_EXPORT_S, S3_TEST_ENV, write_artifact
from training.data import Dataset, synthetic_dataset

if TYPE_CHECKING:  # imported where the forest is made (tests.helpers says why)
    from sklearn.ensemble import RandomForestClassifier


def ray_environment_for_the_tests() -> None:
    use_this_venv_for_ray_workers()
    # The gRPC message bound, as fraud-serve and the pods have it. The ingress knobs are left
    # to each test: the test cluster runs Serve's own proxy, not HAProxy.
    name = "RAY_SERVE_GRPC_MAX_MESSAGE_SIZE"
    os.environ.setdefault(name, SERVE_ENVIRONMENT[name])


# Here, before any test module or lower conftest imports Ray: pytest loads the conftest files of
# the paths named on its command line (tests/serve/conftest.py, say) before any
# pytest_configure hook runs, and Ray reads its environment when imported.
ray_environment_for_the_tests()


@pytest.fixture(scope="session")
def tiny_dataset() -> Dataset:
    """2,000 synthetic rows, 5 % fraud: enough for a stratified split and a learnable signal."""
    return synthetic_dataset(2_000, fraud_rate=0.05, seed=7)


@pytest.fixture(scope="session")
def tiny_forest(tiny_dataset: Dataset) -> "RandomForestClassifier":
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=5, max_depth=6, random_state=0).fit(
        tiny_dataset.features, tiny_dataset.labels
    )


@pytest.fixture(scope="session")
def pristine_artifact(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_forest: "RandomForestClassifier",
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
    tiny_forest: "RandomForestClassifier",
    tiny_dataset: Dataset,
) -> Path:
    path = tmp_path_factory.mktemp("artifacts") / "tiny"
    write_artifact(path, tiny_forest, tiny_dataset, threshold=0.01)
    return path


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """A private local Ray cluster; never attaches to (or stops) one the user is running."""
    import ray

    # Counts reach Ray's metrics endpoint sooner than by Ray's default, so that tests wait less:
    # for this cluster's processes only (not the services and clusters the tests start).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_metrics_report_interval_ms", str(int(METRICS_EXPORT_S * 1000)))
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
def grpc_port() -> int:
    """Serve's gRPC proxy's port: 127.0.0.1:grpc_port reaches the apps' gRPC methods."""
    return free_port()


@pytest.fixture(scope="session")
def serve_url(ray_cluster: str, grpc_port: int) -> Iterator[str]:
    """Serve's HTTP proxy on a free loopback port of the private cluster, and its gRPC proxy on
    `grpc_port` with the fraud scoring service, as the shipped config has it."""
    from ray import serve

    from serve_app.grpc_scoring import SERVICER_FUNCTION  # imports Ray: not at collection

    port = free_port()
    serve.start(
        http_options={"host": "127.0.0.1", "port": port},
        grpc_options={"port": grpc_port, "grpc_servicer_functions": [SERVICER_FUNCTION]},
    )
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API (moto's server mode) on a free loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This process talks to the moto server through boto3's standard settings; returns them."""
    env = S3_TEST_ENV | {"AWS_ENDPOINT_URL_S3": s3_endpoint}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
