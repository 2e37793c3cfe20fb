"""The retraining job's entrypoint: what it refuses, and what it prints once published."""

import logging
import uuid
from pathlib import Path

import boto3
import pytest
import yaml

from fraud_model.store import publish_artifact
from k8s.render import production_config
from serve_app.serve_config import config_errors
from training.retrain_job import main, publish_and_print

MODELS = "s3://retrain-models/fraud"


@pytest.fixture
def in_a_ray_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the job supervisor sets; no cluster is reached before the inputs are checked."""
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")


@pytest.fixture
def buckets(s3_env: dict[str, str]) -> str:
    """The data and models buckets on the session's S3 server; a models prefix of the test's
    own (the tests publish the same tiny artifact, and a version is written once)."""
    s3 = boto3.client("s3")
    for bucket in ("retrain-data", "retrain-models"):
        s3.create_bucket(Bucket=bucket)
    return f"s3://retrain-models/{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--data", "data/creditcard_real_subset.csv.gz", "--models", MODELS], "--data"),
        (["--data", "https://example.com/x.csv", "--models", MODELS], "--data"),
        (["--data", "s3://retrain-data/x.csv", "--models", "artifacts/published"], "--models"),
        (["--data", "s3://retrain-data/x.csv", "--models", "s3://retrain-models/../x"], "--models"),
        (
            ["--data", "s3://retrain-data/x.csv", "--models", MODELS, "--output", "/tmp/x"],
            "--output",
        ),
        (["--data", "s3://retrain-data/x.csv", "--models", MODELS, "--publish=/tmp"], "--publish"),
    ],
    ids=["local-data", "https-data", "local-models", "climbing-models", "output", "publish"],
)
def test_bad_inputs_are_refused_naming_the_option(
    argv: list[str], named: str, in_a_ray_job: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        assert main(argv) == 2
    assert named in caplog.text


def test_outside_a_ray_job_it_refuses_to_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with caplog.at_level(logging.ERROR):
        assert main(["--data", "s3://retrain-data/x.csv", "--models", MODELS]) == 2
    assert "RAY_ADDRESS is not set" in caplog.text


@pytest.mark.parametrize("data", ["s3://retrain-data/absent.csv.gz", "s3://no-bucket/x.csv"])
def test_missing_data_is_refused_before_training(
    data: str, in_a_ray_job: None, buckets: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        assert main(["--data", data, "--models", MODELS]) == 2
    assert f"--data {data}: no such object" in caplog.text


def test_it_prints_the_pin_and_a_challenger_entry_the_production_config_accepts(
    artifact_dir: Path, buckets: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert publish_and_print(artifact_dir, buckets) == 0
    out = capsys.readouterr().out
    pins = dict(
        line.split(": ", 1)
        for line in out.splitlines()
        if line.startswith(("artifact_uri: ", "metadata_sha256: "))
    )
    assert pins["artifact_uri"].startswith(buckets + "/")
    (entry,) = yaml.safe_load(out[out.index("  - name: Challenger") :])
    assert entry == {"name": "Challenger", "user_config": pins}
    config = production_config()
    (application,) = config["applications"]
    application["deployments"].append(entry)
    assert config_errors(config) == []


def test_a_version_that_exists_is_not_replaced(
    artifact_dir: Path, buckets: str, caplog: pytest.LogCaptureFixture
) -> None:
    publish_artifact(artifact_dir, buckets)
    with caplog.at_level(logging.ERROR):
        assert publish_and_print(artifact_dir, buckets) == 1
    assert "Trained, but not published" in caplog.text and "immutable" in caplog.text
