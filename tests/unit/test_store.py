"""Artifacts from S3, against a real S3 API (moto's server on 127.0.0.1): downloaded once into
the cache, verified by sha256 before use, and refused with the URI and reason when broken."""

import json
from pathlib import Path

import boto3
import numpy as np
import pytest

from fraud_model.artifact import (
    ArtifactError,
    ArtifactFileMissingError,
    ArtifactHashMismatchError,
    ArtifactMetadataError,
    ArtifactNotFoundError,
    load_artifact,
)
from fraud_model.store import fetch_artifact, is_remote, parse_s3_uri
from serve_app.loading import locate_artifact
from tests.conftest import random_transactions, upload_artifact, write_artifact

pytestmark = pytest.mark.usefixtures("s3_env")


def cache_entries(cache: Path) -> list[str]:
    return sorted(str(path.relative_to(cache)) for path in cache.rglob("*") if path.is_dir())


def test_an_s3_artifact_is_downloaded_verified_and_scores_like_the_local_one(
    artifact_dir: Path, tmp_path: Path
) -> None:
    uri = upload_artifact(artifact_dir, "models", "fraud/v1")
    local = fetch_artifact(uri, cache_dir=tmp_path / "cache")
    version = load_artifact(artifact_dir).metadata.model_version
    assert local.parent == tmp_path / "cache" / "models" / "fraud" / "v1"
    assert local.name.startswith(f"{version}-")
    rows = random_transactions(50)
    np.testing.assert_array_equal(
        load_artifact(local).fraud_probability(rows),
        load_artifact(artifact_dir).fraud_probability(rows),
    )


def test_a_cached_version_is_not_downloaded_again(artifact_dir: Path, tmp_path: Path) -> None:
    uri = upload_artifact(artifact_dir, "models", "fraud/cached")
    first = fetch_artifact(uri, cache_dir=tmp_path)
    # With the model gone from the bucket, only the cached copy can satisfy the second fetch.
    boto3.client("s3").delete_object(Bucket="models", Key="fraud/cached/model.onnx")
    assert fetch_artifact(uri, cache_dir=tmp_path) == first


def test_a_new_model_under_the_same_uri_is_fetched(
    artifact_dir: Path, tmp_path: Path, tiny_forest, tiny_dataset
) -> None:
    uri = upload_artifact(artifact_dir, "models", "fraud/current")
    first = fetch_artifact(uri, cache_dir=tmp_path / "cache")
    newer = write_artifact(tmp_path / "newer", tiny_forest, tiny_dataset, threshold=0.3)
    upload_artifact(tmp_path / "newer", "models", "fraud/current")
    second = fetch_artifact(uri, cache_dir=tmp_path / "cache")
    assert second != first and second.name.startswith(newer.model_version)
    assert load_artifact(second).metadata.threshold == 0.3


def test_a_tampered_object_is_refused_and_leaves_nothing_in_the_cache(
    artifact_dir: Path, tmp_path: Path
) -> None:
    uri = upload_artifact(artifact_dir, "models", "fraud/tampered")
    boto3.client("s3").put_object(
        Bucket="models", Key="fraud/tampered/model.onnx", Body=b"not the model"
    )
    with pytest.raises(ArtifactHashMismatchError, match=r"s3://models/fraud/tampered: .*sha256"):
        fetch_artifact(uri, cache_dir=tmp_path / "cache")
    assert cache_entries(tmp_path / "cache") == ["models", "models/fraud", "models/fraud/tampered"]


@pytest.mark.parametrize(
    ("uri", "error", "message"),
    [
        ("s3://no-such-bucket/fraud", ArtifactNotFoundError, "bucket 'no-such-bucket'"),
        ("s3://models/nothing-here", ArtifactNotFoundError, "metadata.json does not exist"),
        ("s3://models/fraud/partial", ArtifactFileMissingError, "model.onnx does not exist"),
    ],
)
def test_missing_pieces_are_named(
    artifact_dir: Path, tmp_path: Path, uri: str, error: type, message: str
) -> None:
    upload_artifact(artifact_dir, "models", "fraud/partial")
    boto3.client("s3").delete_object(Bucket="models", Key="fraud/partial/model.onnx")
    with pytest.raises(error, match=message):
        fetch_artifact(uri, cache_dir=tmp_path)


@pytest.mark.parametrize(
    "bad", [{"files": {"../evil": "0" * 64}}, {"model_version": "../../etc"}, {"files": None}]
)
def test_metadata_naming_paths_outside_the_cache_is_refused(
    artifact_dir: Path, tmp_path: Path, bad: dict
) -> None:
    metadata = json.loads((artifact_dir / "metadata.json").read_text()) | bad
    (artifact_dir / "metadata.json").write_text(json.dumps(metadata))
    uri = upload_artifact(artifact_dir, "models", "fraud/evil")
    with pytest.raises(ArtifactMetadataError, match="s3://models/fraud/evil"):
        fetch_artifact(uri, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "evil").exists() and not (tmp_path / "etc").exists()


def test_without_credentials_the_error_says_so(
    artifact_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = upload_artifact(artifact_dir, "models", "fraud/nocreds")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ArtifactError, match=r"s3://models/fraud/nocreds: .*credentials"):
        fetch_artifact(uri, cache_dir=tmp_path)


def test_uris_are_told_apart(artifact_dir: Path) -> None:
    assert is_remote("s3://bucket/prefix") and not is_remote(str(artifact_dir))
    assert parse_s3_uri("s3://bucket/a/b/") == ("bucket", "a/b")
    assert parse_s3_uri("s3://bucket") == ("bucket", "")
    assert locate_artifact(str(artifact_dir)) == artifact_dir


def test_the_default_cache_follows_the_environment(
    artifact_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAUD_ARTIFACT_CACHE", str(tmp_path / "env-cache"))
    uri = upload_artifact(artifact_dir, "models", "fraud/env")
    assert locate_artifact(uri).is_relative_to(tmp_path / "env-cache")
