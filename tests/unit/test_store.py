"""Artifact locations, against a real S3 API (moto's server on 127.0.0.1, from tests/conftest.py):
published versions are immutable; a fetch checks the pin and the version before anything else,
downloads once into the cache, verifies every sha256 before use, refuses with the URI and reason
when something is wrong, and leaves nothing half-written behind."""

import json
import logging
import shutil
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import numpy as np
import pytest

import fraud_model.store as fraud_model_store
from fraud_model.artifact import (
    METADATA_FILE,
    ArtifactFileMissingError,
    ArtifactHashMismatchError,
    ArtifactMetadataError,
    ArtifactNotFoundError,
    ArtifactPinMismatchError,
    load_artifact,
    read_metadata,
    sha256_file,
)
from fraud_model.store import (
    ArtifactDownloadError,
    ArtifactExistsError,
    ArtifactVersionMismatchError,
    InvalidArtifactUriError,
    LocalLocation,
    S3Location,
    fetch_artifact,
    parse_location,
    publish_artifact,
)
from tests.helpers import PROJECT_ROOT, random_transactions, upload_artifact, upload_files

pytestmark = pytest.mark.usefixtures("s3_env")


def leftovers(cache: Path) -> list[str]:
    """Everything in the cache, as relative paths."""
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*")) if cache.exists() else []


def model_files(artifact_dir: Path) -> list[str]:
    return list(json.loads((artifact_dir / METADATA_FILE).read_text())["files"])


def test_an_s3_artifact_is_downloaded_verified_and_scores_like_the_local_one(
    artifact_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "never-logged-secret-7f3a")
    uri = upload_artifact(artifact_dir, "models", "fraud")
    with caplog.at_level(logging.INFO, logger="fraud_model.store"):
        local = fetch_artifact(uri, cache_dir=tmp_path / "cache")

    version = read_metadata(artifact_dir).model_version
    assert uri == f"s3://models/fraud/{version}"
    assert local.parent == tmp_path / "cache" / "models" / "fraud" / version
    assert local.name.startswith(f"{version}-")
    assert read_metadata(local) == read_metadata(artifact_dir)
    rows = random_transactions(50)
    np.testing.assert_array_equal(
        load_artifact(local).fraud_probability(rows),
        load_artifact(artifact_dir).fraud_probability(rows),
    )
    entry = f"models/fraud/{version}/{local.name}"
    files = [f"{entry}/{name}" for name in [METADATA_FILE, *model_files(artifact_dir)]]
    expected = ["models", "models/fraud", f"models/fraud/{version}", entry, *files]
    assert leftovers(tmp_path / "cache") == sorted(expected)  # and no staging directory

    messages = [record.getMessage() for record in caplog.records]
    size = sum(file.stat().st_size for file in artifact_dir.iterdir())
    assert any(m.startswith(f"Downloading artifact {uri}") for m in messages)
    assert any(f"verified artifact {uri}: {size} bytes in " in m for m in messages)
    assert not any("never-logged-secret" in m for m in messages)


def test_a_trailing_slash_names_the_same_artifact(artifact_dir: Path, tmp_path: Path) -> None:
    uri = upload_artifact(artifact_dir, "models", "fraud/slash")
    assert fetch_artifact(uri + "/", cache_dir=tmp_path) == fetch_artifact(uri, cache_dir=tmp_path)


@pytest.mark.parametrize("prefix", ["", "fraud/current", "fraud/v1"])
def test_an_s3_prefix_that_is_not_the_published_version_is_refused(
    artifact_dir: Path, tmp_path: Path, prefix: str
) -> None:
    # A mutable pointer such as `current` can hold another model tomorrow: never serve one.
    if prefix:
        uri = upload_files(artifact_dir, "loose-models", prefix)
    else:
        uri, client = "s3://loose-models", boto3.client("s3")
        client.create_bucket(Bucket="loose-models")
        for file in artifact_dir.iterdir():
            client.put_object(Bucket="loose-models", Key=file.name, Body=file.read_bytes())
    version = read_metadata(artifact_dir).model_version
    with pytest.raises(ArtifactVersionMismatchError, match=f"{uri} holds model version {version}"):
        fetch_artifact(uri, cache_dir=tmp_path / "cache")
    assert leftovers(tmp_path / "cache") == []


def test_a_cached_version_is_not_downloaded_again(artifact_dir: Path, tmp_path: Path) -> None:
    uri = upload_artifact(artifact_dir, "models", "fraud/cached")
    first = fetch_artifact(uri, cache_dir=tmp_path)
    # With every model file gone from the bucket, only the cache can satisfy the second fetch.
    client = boto3.client("s3")
    for name in model_files(artifact_dir):
        client.delete_object(Bucket="models", Key=f"fraud/cached/{name}")
    assert fetch_artifact(uri, cache_dir=tmp_path) == first
    read_metadata(first)


def test_a_pinned_version_overwritten_behind_publish_is_refused_before_the_model_is_read(
    artifact_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = upload_artifact(artifact_dir, "models", "fraud/rewritten")
    pin = sha256_file(artifact_dir / METADATA_FILE)
    first = fetch_artifact(uri, pin, cache_dir=tmp_path / "cache")
    assert load_artifact(first, metadata_sha256=pin).metadata.threshold == 0.5

    # Someone with write access replaces the version in place: same name, same model files,
    # another decision rule (the old failure mode of a mutable `current` prefix).
    rewritten = tmp_path / "rewritten"
    shutil.copytree(artifact_dir, rewritten)
    metadata = json.loads((rewritten / METADATA_FILE).read_text()) | {"threshold": 0.3}
    (rewritten / METADATA_FILE).write_text(json.dumps(metadata))
    upload_files(rewritten, "models", uri.removeprefix("s3://models/"))

    read_keys: list[str] = []
    real_client = fraud_model_store._s3_client

    def recording_client() -> object:
        client = real_client()
        client.meta.events.register(
            "provide-client-params.s3.GetObject",
            lambda params, **_: read_keys.append(params["Key"]),
        )
        return client

    monkeypatch.setattr(fraud_model_store, "_s3_client", recording_client)
    with pytest.raises(ArtifactPinMismatchError, match=f"{uri}: metadata.json has sha256"):
        fetch_artifact(uri, pin, cache_dir=tmp_path / "cache")
    assert [key.rsplit("/", 1)[1] for key in read_keys] == [METADATA_FILE]
    # Unpinned, the rewritten version would be served: the pin is what prevents it.
    unpinned = fetch_artifact(uri, cache_dir=tmp_path / "cache")
    assert unpinned != first and read_metadata(unpinned).threshold == 0.3
    assert read_metadata(first).threshold == 0.5  # the verified copy is left intact


def test_a_tampered_object_is_refused_and_leaves_nothing_in_the_cache(
    artifact_dir: Path, tmp_path: Path
) -> None:
    uri = upload_artifact(artifact_dir, "models", "fraud/tampered")
    boto3.client("s3").put_object(
        Bucket="models", Key=f"{uri.removeprefix('s3://models/')}/model.onnx", Body=b"not it"
    )
    with pytest.raises(ArtifactHashMismatchError, match=f"{uri}: .*sha256"):
        fetch_artifact(uri, cache_dir=tmp_path / "cache")
    assert leftovers(tmp_path / "cache") == []


def test_a_damaged_cached_copy_is_downloaded_again(artifact_dir: Path, tmp_path: Path) -> None:
    uri = upload_artifact(artifact_dir, "models", "fraud/damaged")
    cached = fetch_artifact(uri, cache_dir=tmp_path)
    (cached / "model.onnx").write_bytes(b"bit rot")
    assert fetch_artifact(uri, cache_dir=tmp_path) == cached
    read_metadata(cached)  # healed: every hash matches again
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]


def test_replicas_fetching_at_once_share_one_verified_copy(
    artifact_dir: Path, tmp_path: Path
) -> None:
    uri = upload_artifact(artifact_dir, "models", "fraud/race")
    start, results, errors = threading.Barrier(4), [], []

    def replica() -> None:
        start.wait()
        try:
            results.append(fetch_artifact(uri, cache_dir=tmp_path / "cache"))
        except Exception as error:  # reported below, with the others
            errors.append(error)

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and len(results) == 4 and len(set(results)) == 1
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["models"]  # no staging left
    assert [p.name for p in results[0].parent.iterdir()] == [results[0].name]
    read_metadata(results[0])


@pytest.mark.parametrize(
    ("uri", "error", "message"),
    [
        ("s3://no-such-bucket/fraud", ArtifactNotFoundError, "bucket 'no-such-bucket'"),
        ("s3://models/nothing-here", ArtifactNotFoundError, "metadata.json does not exist"),
        ("s3://models/fraud/partial/{version}", ArtifactFileMissingError, "model.onnx does not"),
    ],
)
def test_missing_pieces_are_named(
    artifact_dir: Path, tmp_path: Path, uri: str, error: type, message: str
) -> None:
    partial = upload_artifact(artifact_dir, "models", "fraud/partial")
    boto3.client("s3").delete_object(
        Bucket="models", Key=f"{partial.removeprefix('s3://models/')}/model.onnx"
    )
    uri = uri.format(version=read_metadata(artifact_dir).model_version)
    with pytest.raises(error, match=f"{uri}: .*{message}"):
        fetch_artifact(uri, cache_dir=tmp_path / "cache")
    assert leftovers(tmp_path / "cache") == []


@pytest.mark.parametrize(
    "bad",
    [
        {"files": {"../evil": "0" * 64}},
        {"files": {"": "0" * 64}},
        {"files": {METADATA_FILE: "0" * 64}},
        {"model_version": "../../etc"},
        {"files": None},
    ],
)
def test_metadata_naming_paths_outside_the_cache_is_refused(
    artifact_dir: Path, tmp_path: Path, bad: dict
) -> None:
    metadata = json.loads((artifact_dir / METADATA_FILE).read_text()) | bad
    (artifact_dir / METADATA_FILE).write_text(json.dumps(metadata))
    uri = upload_files(artifact_dir, "models", "fraud/evil")
    with pytest.raises(ArtifactMetadataError, match="s3://models/fraud/evil"):
        fetch_artifact(uri, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "evil").exists() and not (tmp_path / "etc").exists()
    assert leftovers(tmp_path / "cache") == []


def test_metadata_that_is_not_json_is_refused(artifact_dir: Path, tmp_path: Path) -> None:
    (artifact_dir / METADATA_FILE).write_text("{not json")
    uri = upload_files(artifact_dir, "models", "fraud/garbled")
    with pytest.raises(
        ArtifactMetadataError, match=r"s3://models/fraud/garbled/metadata\.json is not valid JSON"
    ):
        fetch_artifact(uri, cache_dir=tmp_path)


def test_without_credentials_the_error_says_so(
    artifact_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = upload_artifact(artifact_dir, "models", "fraud/nocreds")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ArtifactDownloadError, match=r"s3://models/fraud/nocreds/.*credentials"):
        fetch_artifact(uri, cache_dir=tmp_path)


@contextmanager
def iam_enforced(endpoint: str) -> Iterator[None]:
    """Make the moto server check IAM policies (it does not by default), then stop again."""

    def reset_auth(count: str) -> None:
        request = urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth", data=count.encode(), method="POST",
            headers={"Content-Type": "text/plain"},
        )  # fmt: skip
        urllib.request.urlopen(request, timeout=10).close()

    reset_auth("0")
    try:
        yield
    finally:
        reset_auth("inf")


def test_a_role_without_read_access_is_told_so(
    artifact_dir: Path, tmp_path: Path, s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = upload_artifact(artifact_dir, "models", "fraud/denied")
    iam = boto3.client("iam", endpoint_url=s3_env["AWS_ENDPOINT_URL_S3"])
    user = f"no-s3-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)  # no policy at all: every S3 call is denied
    key = iam.create_access_key(UserName=user)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    with (
        iam_enforced(s3_env["AWS_ENDPOINT_URL_S3"]),
        pytest.raises(ArtifactDownloadError, match=r"fraud/denied/.*: access to .* denied"),
    ):
        fetch_artifact(uri, cache_dir=tmp_path / "cache")
    assert leftovers(tmp_path / "cache") == []


def test_uris_are_parsed_once_into_a_location(tmp_path: Path) -> None:
    assert parse_location("s3://bucket/a/b/") == S3Location("bucket", "a/b")
    assert parse_location("s3://bucket") == S3Location("bucket", "")
    assert parse_location("s3://bucket/a").child("v1").uri == "s3://bucket/a/v1"
    assert parse_location("artifacts/default", tmp_path) == LocalLocation(
        tmp_path / "artifacts/default"
    )
    assert parse_location(f"file://{tmp_path}") == LocalLocation(tmp_path)


@pytest.mark.parametrize(
    "uri",
    ["s3://", "s3:///fraud", "s3://../fraud", "s3://models/../../etc", "s3://models/a//b",
     "s3://models/./a", "gs://models/fraud", "S3://models/fraud", ""],
)  # fmt: skip
def test_malformed_or_unsupported_uris_are_refused(uri: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidArtifactUriError, match=f"'{uri}'" if uri else "empty"):
        fetch_artifact(uri, cache_dir=tmp_path)
    assert leftovers(tmp_path) == []


def test_local_paths_pass_through_unchanged(artifact_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert fetch_artifact(str(artifact_dir), cache_dir=cache) == artifact_dir
    assert fetch_artifact(f"file://{artifact_dir}", cache_dir=cache) == artifact_dir
    # The caller resolves a relative path, and verifies what is there (or not).
    assert fetch_artifact("artifacts/default", cache_dir=cache) == Path("artifacts/default")
    assert fetch_artifact("file://artifacts/default", cache_dir=cache) == Path("artifacts/default")
    assert fetch_artifact(str(tmp_path / "absent"), cache_dir=cache) == tmp_path / "absent"
    assert not cache.exists()


def test_local_paths_never_import_boto3(artifact_dir: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from fraud_model.store import fetch_artifact; "
        f"from pathlib import Path; cache = Path({str(tmp_path)!r}); "
        f"fetch_artifact({str(artifact_dir)!r}, cache_dir=cache); "
        "fetch_artifact('file://x', cache_dir=cache); "
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, check=True, timeout=60)


def test_a_replica_s_cache_follows_the_environment(
    artifact_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serve_app.loading import open_artifact
    from serve_app.settings import ServiceSettings

    monkeypatch.setenv("FRAUD_ARTIFACT_CACHE", str(tmp_path / "env-cache"))
    uri = upload_artifact(artifact_dir, "models", "fraud/env")
    open_artifact(uri, None, threads=1, cache_dir=ServiceSettings().artifact_cache)
    (cached,) = (tmp_path / "env-cache").rglob("metadata.json")
    assert read_metadata(cached.parent) == read_metadata(artifact_dir)


def test_publishing_writes_an_immutable_version_and_returns_its_pin(
    artifact_dir: Path, tmp_path: Path
) -> None:
    version = read_metadata(artifact_dir).model_version
    boto3.client("s3").create_bucket(Bucket="published")
    published = publish_artifact(artifact_dir, "s3://published/fraud")
    assert published.uri == f"s3://published/fraud/{version}"
    assert published.model_version == version
    assert published.metadata_sha256 == sha256_file(artifact_dir / METADATA_FILE)
    fetched = fetch_artifact(published.uri, published.metadata_sha256, cache_dir=tmp_path)
    assert read_metadata(fetched) == read_metadata(artifact_dir)

    with pytest.raises(ArtifactExistsError, match=f"{published.uri} already holds objects"):
        publish_artifact(artifact_dir, "s3://published/fraud")
    # A partly written version (metadata.json is written last) is not overwritten either.
    boto3.client("s3").delete_object(Bucket="published", Key=f"fraud/{version}/{METADATA_FILE}")
    with pytest.raises(ArtifactExistsError):
        publish_artifact(artifact_dir, "s3://published/fraud")


def test_publishing_to_a_directory_works_the_same_way(artifact_dir: Path, tmp_path: Path) -> None:
    published = publish_artifact(artifact_dir, str(tmp_path / "versions"))
    target = tmp_path / "versions" / read_metadata(artifact_dir).model_version
    assert published.uri == str(target)
    assert load_artifact(target, metadata_sha256=published.metadata_sha256)
    with pytest.raises(ArtifactExistsError, match="immutable"):
        publish_artifact(artifact_dir, str(tmp_path / "versions"))
    assert [p.name for p in (tmp_path / "versions").iterdir()] == [target.name]


def test_a_broken_artifact_is_never_published(artifact_dir: Path) -> None:
    (artifact_dir / "model.onnx").write_bytes(b"tampered")
    boto3.client("s3").create_bucket(Bucket="unpublished")
    with pytest.raises(ArtifactHashMismatchError):
        publish_artifact(artifact_dir, "s3://unpublished/broken")
    listed = boto3.client("s3").list_objects_v2(Bucket="unpublished", Prefix="broken/")
    assert listed.get("KeyCount", 0) == 0


def test_the_publish_command_prints_the_pin_to_put_in_the_config(
    artifact_dir: Path, tmp_path: Path, s3_env: dict[str, str]
) -> None:
    import os

    command = [sys.executable, "-m", "training.publish", str(artifact_dir), "s3://cli-models/fraud"]
    boto3.client("s3").create_bucket(Bucket="cli-models")
    env = os.environ | s3_env
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    version = read_metadata(artifact_dir).model_version
    pin = sha256_file(artifact_dir / METADATA_FILE)
    assert done.stdout == (
        f"artifact_uri: s3://cli-models/fraud/{version}\nmetadata_sha256: {pin}\n"
    )
    again = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert again.returncode == 1 and "already holds objects" in again.stderr
    assert again.stdout == ""


def test_s3_clients_share_what_botocore_has_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every client gets a session of its own (the credential chain is resolved again), but the
    service descriptions and endpoint rules are read from disk once per process."""
    from botocore.loaders import JSONFileLoader

    fraud_model_store.s3_client().list_buckets()
    loader = fraud_model_store._service_descriptions()
    paths = list(loader.search_paths)
    reads: list[str] = []
    read = JSONFileLoader.load_file

    def counted(self: JSONFileLoader, file_path: str) -> object:
        reads.append(file_path)
        return read(self, file_path)

    monkeypatch.setattr(JSONFileLoader, "load_file", counted)
    for _ in range(3):
        fraud_model_store.s3_client(timeout_s=5, attempts=1).list_buckets()
    assert reads == []
    assert loader.search_paths == paths  # boto3 adds a directory at every session: not twice
