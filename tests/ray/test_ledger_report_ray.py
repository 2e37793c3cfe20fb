"""The realized-performance report counted as Ray tasks (one per day of decisions) gives the
same numbers as the local run, from a directory and from S3 (moto's server)."""

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import boto3
import pytest

from benchmarks.ledger_data import synthetic_ledger
from ledger.files import open_files
from ledger.report import ReportSettings, build, count_locally
from ledger.report_ray import count_with_ray
from tests.moto_process import MotoProcess, moto_process

pytestmark = pytest.mark.ray
START = date(2026, 3, 2)
AS_OF = START + timedelta(days=150)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoProcess]:
    with moto_process() as server:
        yield server


@pytest.fixture(params=["directory", "s3"])
def ledger(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    moto: MotoProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[str, dict]:
    if request.param == "directory":
        uri, env = str(tmp_path / "ledger"), {}
    else:
        env = moto.env()
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        boto3.client("s3").create_bucket(Bucket="ledger-ray")
        uri = "s3://ledger-ray/ledger"
    synthetic_ledger(uri, start=START, days=30, per_day=400, seed=11, files_per_day=3)
    return uri, env


def test_ray_tasks_count_exactly_what_the_local_run_counts(
    ray_cluster: str, ledger: tuple[str, dict]
) -> None:
    uri, env = ledger
    local = count_locally(open_files(uri))
    distributed = count_with_ray(uri, env)
    assert local[0].num_rows > 4 and local[1].num_rows > 4  # weeks x versions, and pairs
    assert distributed[0].equals(local[0]) and distributed[1].equals(local[1])
    settings = ReportSettings()
    assert build(*distributed, uri, AS_OF, settings) == build(*local, uri, AS_OF, settings)
