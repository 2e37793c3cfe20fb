"""What a model deployment may load from S3: only a version pinned by its metadata's sha256,
whichever deployment names it (FraudModel or the Challenger), and never more bytes than the
artifact's metadata records or the replica's limit allows, refused before the cache is written
(against moto's S3 server)."""

import json
from pathlib import Path

import boto3
import pytest
import yaml
from pydantic import ValidationError

from fraud_model.artifact import METADATA_FILE, read_metadata
from fraud_model.store import (
    ArtifactSizeMismatchError,
    ArtifactTooLargeError,
    fetch_artifact,
    publish_artifact,
)
from serve_app.model import ModelConfig
from serve_app.serve_config import config_errors
from serve_app.settings import ServiceSettings
from tests.helpers import PROJECT_ROOT, upload_artifact

PIN = "ab" * 32


def config_with(deployment: str, user_config: dict) -> dict:
    entry = {"name": deployment, "user_config": user_config}
    return {"applications": [{"name": "fraud", "args": {}, "deployments": [entry]}]}


@pytest.mark.parametrize("deployment", ["FraudModel", "Challenger"])
def test_an_s3_artifact_without_its_pin_is_refused_for_every_model_deployment(
    deployment: str,
) -> None:
    unpinned = {"artifact_uri": "s3://models/fraud/20261126T000153Z-d7180439"}
    (error,) = config_errors(config_with(deployment, unpinned))
    assert error.startswith(f"{deployment}.user_config") and "needs metadata_sha256" in error
    assert config_errors(config_with(deployment, unpinned | {"metadata_sha256": PIN})) == []
    # The replica reads its user_config through the same model, so it refuses it too.
    with pytest.raises(ValidationError, match="needs metadata_sha256"):
        ModelConfig.model_validate(unpinned)


def test_a_local_artifact_may_go_unpinned() -> None:
    assert ModelConfig.model_validate({"artifact_uri": "artifacts/default"}).metadata_sha256 is None
    assert config_errors(config_with("FraudModel", {})) == []


def test_training_records_every_file_s_size(artifact_dir: Path) -> None:
    metadata = read_metadata(artifact_dir)
    assert metadata.file_sizes == {
        name: (artifact_dir / name).stat().st_size for name in metadata.files
    }


@pytest.fixture
def s3(s3_env: dict[str, str]) -> object:
    client = boto3.client("s3")
    for bucket in ("sized-models", "limited-models"):
        client.create_bucket(Bucket=bucket)
    return client


def key_of(uri: str, name: str) -> str:
    return f"{uri.split('/', 3)[3]}/{name}"


def test_an_object_of_another_size_than_recorded_is_refused_before_it_is_written(
    s3: object, artifact_dir: Path, tmp_path: Path
) -> None:
    published = publish_artifact(artifact_dir, "s3://sized-models/fraud")
    bucket = "sized-models"
    # Someone with write access to the bucket replaces the model with a much larger object.
    boto3.client("s3").put_object(
        Bucket=bucket, Key=key_of(published.uri, "model.onnx"), Body=b"\0" * (3 << 20)
    )
    cache = tmp_path / "cache"
    with pytest.raises(ArtifactSizeMismatchError, match=r"model\.onnx is 3145728 bytes"):
        fetch_artifact(published.uri, published.metadata_sha256, cache_dir=cache)
    assert not any(path.is_file() for path in cache.rglob("*"))


def test_an_artifact_larger_than_the_limit_is_refused_before_anything_is_downloaded(
    s3: object, artifact_dir: Path, tmp_path: Path
) -> None:
    published = publish_artifact(artifact_dir, "s3://limited-models/fraud")
    total = sum(read_metadata(artifact_dir).file_sizes.values())
    cache = tmp_path / "cache"
    with pytest.raises(ArtifactTooLargeError, match="over the limit of 1000 "):
        fetch_artifact(published.uri, published.metadata_sha256, cache_dir=cache, max_bytes=1000)
    assert not cache.exists() or not any(cache.rglob("*"))
    # Within the limit it downloads.
    fetched = fetch_artifact(
        published.uri, published.metadata_sha256, cache_dir=cache, max_bytes=total + 4096
    )
    assert read_metadata(fetched).model_version == published.model_version


def test_without_recorded_sizes_an_object_over_the_limit_is_refused_unwritten(
    s3: object, artifact_dir: Path, tmp_path: Path
) -> None:
    metadata = json.loads((artifact_dir / METADATA_FILE).read_text())
    del metadata["file_sizes"]  # as artifacts written before sizes were recorded
    (artifact_dir / METADATA_FILE).write_text(json.dumps(metadata))
    uri = upload_artifact(artifact_dir, "old-models", "fraud")
    biggest = max(path.stat().st_size for path in artifact_dir.iterdir())
    cache = tmp_path / "cache"
    with pytest.raises(ArtifactTooLargeError, match="over the"):
        fetch_artifact(uri, cache_dir=cache, max_bytes=biggest - 1)
    assert not any(path.is_file() for path in cache.rglob("*"))


def test_the_replicas_limit_leaves_room_for_two_models_in_the_cache_volume() -> None:
    rayservice = yaml.safe_load((PROJECT_ROOT / "k8s" / "rayservice.yaml").read_text())
    cluster = rayservice["spec"]["rayClusterConfig"]
    limit = ServiceSettings().artifact_max_bytes
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        (cache,) = [v for v in group["template"]["spec"]["volumes"] if v["name"] == "cache"]
        size = cache["emptyDir"]["sizeLimit"]
        assert size.endswith("Gi") and 2 * limit <= int(size[:-2]) << 30
