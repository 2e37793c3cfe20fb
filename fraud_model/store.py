"""Model artifacts in S3: download to a local cache, verify every hash, hand back the directory.

`s3://bucket/prefix` holds the same files as a local artifact directory. Credentials come only
from boto3's standard chain (on EKS: the pod's IAM role through IRSA); an S3-compatible endpoint
(MinIO, a test server) is set with boto3's own `AWS_ENDPOINT_URL_S3`. Nothing is loaded from
the cache until `read_metadata` has checked every file against `metadata.json`, and a download
is built in a hidden staging directory and renamed into place, so a failure leaves nothing behind.
"""

import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from fraud_model.artifact import (
    METADATA_FILE,
    ArtifactError,
    ArtifactFileMissingError,
    ArtifactMetadataError,
    ArtifactNotFoundError,
    read_metadata,
)

logger = logging.getLogger(__name__)

CACHE_ENV = "FRAUD_ARTIFACT_CACHE"
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def is_remote(uri: str) -> bool:
    return uri.startswith("s3://")


def default_cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "fraud-serving" / "artifacts"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix/` -> ("bucket", "some/prefix")."""
    if not is_remote(uri):
        raise ArtifactError(f"{uri!r} is not an s3:// URI")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise ArtifactError(f"{uri!r} names no bucket")
    return bucket, prefix.strip("/")


def fetch_artifact(uri: str, cache_dir: Path | None = None) -> Path:
    """A verified local copy of the artifact at `uri`; raises an ArtifactError naming the URI."""
    bucket, prefix = parse_s3_uri(uri)
    client = _s3_client()
    metadata_bytes = _get(client, bucket, _key(prefix, METADATA_FILE), uri)
    version, names = _version_and_files(metadata_bytes, uri)

    root = (cache_dir or default_cache_dir()) / bucket / prefix
    # Named by version and metadata hash: a re-saved artifact (new threshold, same forest) gets
    # its own directory instead of colliding with the old one.
    target = root / f"{version}-{hashlib.sha256(metadata_bytes).hexdigest()[:12]}"
    if _is_verified_copy(target, metadata_bytes):
        logger.info("Artifact %s (model %s) is already cached at %s", uri, version, target)
        return target

    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    started, total = time.perf_counter(), len(metadata_bytes)
    try:
        (staging / METADATA_FILE).write_bytes(metadata_bytes)
        for name in names:
            body = _get(client, bucket, _key(prefix, name), uri)
            (staging / name).write_bytes(body)
            total += len(body)
        _verify(staging, uri)
        try:
            staging.rename(target)
        except OSError:  # another replica on this node finished the same download first
            if not _is_verified_copy(target, metadata_bytes):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info(
        "Downloaded artifact %s (model %s, %d bytes) in %.2f s to %s",
        uri,
        version,
        total,
        time.perf_counter() - started,
        target,
    )
    return target


def _verify(staging: Path, uri: str) -> None:
    """Every sha256 against metadata.json, before anything can load the download."""
    try:
        read_metadata(staging)
    except ArtifactError as error:
        raise type(error)(f"{uri}: {error}") from error


def _s3_client() -> Any:
    import boto3  # only remote artifacts need it

    # A new session per fetch: the credential chain is resolved again (IRSA tokens rotate).
    return boto3.session.Session().client("s3")


def _key(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def _get(client: Any, bucket: str, key: str, uri: str) -> bytes:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            raise ArtifactNotFoundError(f"{uri}: bucket {bucket!r} does not exist") from error
        if code in ("NoSuchKey", "404"):
            missing = (
                ArtifactNotFoundError if key.endswith(METADATA_FILE) else ArtifactFileMissingError
            )
            raise missing(f"{uri}: s3://{bucket}/{key} does not exist") from error
        raise ArtifactError(
            f"{uri}: reading s3://{bucket}/{key} failed: {code or error}"
        ) from error
    except BotoCoreError as error:  # no credentials, no connection, ...
        raise ArtifactError(f"{uri}: reading s3://{bucket}/{key} failed: {error}") from error


def _version_and_files(metadata_bytes: bytes, uri: str) -> tuple[str, list[str]]:
    """The model version and file names from a metadata.json not yet trusted: both become local
    paths, so each must be a plain file name."""
    try:
        raw = json.loads(metadata_bytes)
        version, names = raw["model_version"], list(raw["files"])
    except (ValueError, KeyError, TypeError) as error:
        raise ArtifactMetadataError(
            f"{uri}: {METADATA_FILE} is not an artifact's: {error}"
        ) from error
    for name in [version, *names]:
        if not isinstance(name, str) or not _PLAIN_NAME.match(name) or name == METADATA_FILE:
            raise ArtifactMetadataError(f"{uri}: {name!r} is not a plain file name")
    return version, names


def _is_verified_copy(path: Path, metadata_bytes: bytes) -> bool:
    if not (path / METADATA_FILE).is_file():
        return False
    if (path / METADATA_FILE).read_bytes() != metadata_bytes:
        return False
    try:
        read_metadata(path)
    except ArtifactError:
        return False
    return True
