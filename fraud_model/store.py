"""Where an artifact URI points: a local directory, or `s3://bucket/prefix` downloaded into a
verified local cache.

`s3://bucket/prefix` holds the same files as a local artifact directory. Credentials come only
from boto3's standard chain (env, IRSA web identity on EKS, instance profile); an S3-compatible
endpoint (MinIO, a test server) is set with boto3's own `AWS_ENDPOINT_URL_S3`. A download is
built in a hidden staging directory, checked by `read_metadata` (every sha256), and only then
renamed into `<cache>/<bucket>/<prefix>/<model_version>-<metadata sha256[:12]>`, so a failure
leaves nothing behind and nothing unverified is ever handed out.
"""

import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
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
S3_SCHEME = "s3://"
FILE_SCHEME = "file://"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# A bucket or model version becomes a directory name: no ".", "..", "/" or hidden names.
_DIR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CHUNK = 1 << 20


class InvalidArtifactUriError(ArtifactError):
    """The URI is neither a local path nor a well-formed `s3://bucket/prefix`."""


class ArtifactDownloadError(ArtifactError):
    """The store could not be read (access denied, no credentials, network) or the cache written."""


def is_remote(uri: str) -> bool:
    """True if `fetch_artifact` downloads `uri`; anything else is a local path (or refused)."""
    return uri.startswith(S3_SCHEME)


def default_cache_dir() -> Path:
    """`$FRAUD_ARTIFACT_CACHE`, else `~/.cache/fraud-serving/artifacts`."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "fraud-serving" / "artifacts"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix/` -> ("bucket", "some/prefix"); the prefix may be empty."""
    if not is_remote(uri):
        raise InvalidArtifactUriError(f"{uri!r} is not an s3:// URI")
    bucket, _, prefix = uri.removeprefix(S3_SCHEME).partition("/")
    if not _DIR_NAME.match(bucket):
        raise InvalidArtifactUriError(f"{uri!r} names no valid bucket")
    prefix = prefix.strip("/")
    # The prefix becomes a path under the cache: never let it climb out.
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise InvalidArtifactUriError(f"{uri!r} has an empty, '.' or '..' path segment")
    return bucket, prefix


def fetch_artifact(uri: str, cache_dir: Path | None = None) -> Path:
    """A local directory holding the artifact at `uri`.

    A local path (no scheme, or `file://`) comes back as a Path, unchanged and unchecked:
    resolving relative paths and verifying are the caller's. An `s3://` artifact comes back as
    a cache directory whose every file matched `metadata.json`'s sha256. `metadata.json` is
    read from the store every time, since the URI may now hold another model; the model files
    are downloaded only when the cache holds no verified copy of that exact metadata.
    Raises an ArtifactError naming the URI and the reason.
    """
    if not _SCHEME.match(uri):
        return Path(uri)
    if uri.startswith(FILE_SCHEME):
        return Path(uri.removeprefix(FILE_SCHEME))
    if not is_remote(uri):
        raise InvalidArtifactUriError(f"{uri!r}: only local paths and s3:// URIs are supported")
    bucket, prefix = parse_s3_uri(uri)
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    source = _S3Artifact(uri, bucket, prefix, _s3_client())
    metadata_bytes = source.read(METADATA_FILE)
    version, names = _version_and_files(metadata_bytes, uri)
    # Named by version and metadata hash: a re-saved artifact (say, a new threshold for the same
    # forest in the same second) gets its own directory instead of reusing a stale one.
    digest = hashlib.sha256(metadata_bytes).hexdigest()[:12]
    target = cache / bucket / prefix / f"{version}-{digest}"
    if _is_verified_copy(target, metadata_bytes):
        logger.info("Artifact %s (model %s) is already cached at %s", uri, version, target)
        return target
    _download(source, metadata_bytes, names, cache, target)
    return target


@dataclass(frozen=True)
class _S3Artifact:
    """The objects of one artifact in S3, read with errors that name the URI."""

    uri: str
    bucket: str
    prefix: str
    client: Any

    def read(self, name: str) -> bytes:
        body = self._body(name)
        try:
            return body.read()
        except Exception as error:  # botocore's streaming and connection errors
            raise self._failed(name, error) from error
        finally:
            body.close()

    def download(self, name: str, destination: Path) -> int:
        """Stream one object to a file (a big model never sits in memory whole); its size.

        The local disk's errors propagate as OSError, for the caller to report with the cache.
        """
        body = self._body(name)
        size = 0
        try:
            with destination.open("wb") as handle:
                for chunk in self._chunks(body, name):
                    handle.write(chunk)
                    size += len(chunk)
        finally:
            body.close()
        return size

    def _chunks(self, body: Any, name: str) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(_CHUNK)
        except Exception as error:  # botocore's streaming and connection errors
            raise self._failed(name, error) from error

    def _body(self, name: str) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self._key(name)
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            location = f"s3://{self.bucket}/{key}"
            if code == "NoSuchBucket":
                raise ArtifactNotFoundError(
                    f"{self.uri}: bucket {self.bucket!r} does not exist"
                ) from error
            if code in ("NoSuchKey", "404"):
                missing = (
                    ArtifactNotFoundError if name == METADATA_FILE else ArtifactFileMissingError
                )
                raise missing(f"{self.uri}: {location} does not exist") from error
            if code in ("AccessDenied", "403"):
                raise ArtifactDownloadError(
                    f"{self.uri}: access to {location} denied (the role needs s3:GetObject on it)"
                ) from error
            raise self._failed(name, code or error) from error
        except BotoCoreError as error:  # no credentials, no connection, ...
            raise self._failed(name, error) from error

    def _failed(self, name: str, reason: object) -> ArtifactDownloadError:
        location = f"s3://{self.bucket}/{self._key(name)}"
        return ArtifactDownloadError(f"{self.uri}: reading {location} failed: {reason}")

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name


def _s3_client() -> Any:
    import boto3  # only remote artifacts need it

    # A new session per fetch: the credential chain is resolved again (IRSA tokens rotate).
    return boto3.session.Session().client("s3")


def _download(
    source: _S3Artifact, metadata_bytes: bytes, names: list[str], cache: Path, target: Path
) -> None:
    # Staged beside the cache's entries, not inside them: a failure leaves no empty directories.
    staging = cache / f".partial-{uuid.uuid4().hex}"
    logger.info("Downloading artifact %s (%d files) into %s", source.uri, len(names) + 1, target)
    started, total = time.perf_counter(), len(metadata_bytes)
    try:
        try:
            staging.mkdir(parents=True)
            (staging / METADATA_FILE).write_bytes(metadata_bytes)
            for name in names:
                total += source.download(name, staging / name)
        except OSError as error:
            raise ArtifactDownloadError(
                f"{source.uri}: cannot write to the cache {cache}: {error}"
            ) from error
        _verify(staging, source.uri)
        _publish(staging, target, metadata_bytes, source.uri)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info(
        "Downloaded and verified artifact %s: %d bytes in %.2f s, at %s",
        source.uri,
        total,
        time.perf_counter() - started,
        target,
    )


def _verify(staging: Path, uri: str) -> None:
    """Every sha256 against metadata.json, before anything can load the download."""
    try:
        read_metadata(staging)
    except ArtifactError as error:
        raise type(error)(f"{uri}: {error}") from error


def _publish(staging: Path, target: Path, metadata_bytes: bytes, uri: str) -> None:
    """Rename the verified download into place; the rename is what makes it visible."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            staging.rename(target)
            return
        except OSError:
            if not target.exists():
                raise
            if _is_verified_copy(target, metadata_bytes):
                return  # another replica on this node finished the same download first
        # What is there fails its hashes (a damaged disk, a cleaner that removed files):
        # swap the verified download in, so the cache heals instead of failing forever.
        damaged = target.with_name(f".{target.name}.damaged-{uuid.uuid4().hex[:8]}")
        target.rename(damaged)
        staging.rename(target)
        shutil.rmtree(damaged, ignore_errors=True)
        logger.warning("Replaced a cached copy of %s that failed verification", uri)
    except OSError as error:
        raise ArtifactDownloadError(
            f"{uri}: cannot write to the cache at {target}: {error}"
        ) from error


def _version_and_files(metadata_bytes: bytes, uri: str) -> tuple[str, list[str]]:
    """The model version and file names from a metadata.json not yet trusted: both become local
    paths, so the version must be a plain directory name and each file a plain file name
    (the rule `read_metadata` applies)."""
    try:
        raw = json.loads(metadata_bytes)
    except ValueError as error:
        raise ArtifactMetadataError(f"{uri}: {METADATA_FILE} is not valid JSON: {error}") from error
    files = raw.get("files") if isinstance(raw, dict) else None
    if not isinstance(files, dict):
        raise ArtifactMetadataError(f"{uri}: {METADATA_FILE} has no 'files' mapping")
    version = raw.get("model_version")
    if not isinstance(version, str) or not _DIR_NAME.match(version):
        raise ArtifactMetadataError(f"{uri}: model_version {version!r} is not a plain name")
    for name in files:
        if not _is_plain_file_name(name):
            raise ArtifactMetadataError(f"{uri}: {name!r} is not a plain file name")
    return version, list(files)


def _is_plain_file_name(name: str) -> bool:
    return (
        name not in ("", ".", "..", METADATA_FILE)
        and "\x00" not in name
        and Path(name).name == name
    )


def _is_verified_copy(path: Path, metadata_bytes: bytes) -> bool:
    try:
        if (path / METADATA_FILE).read_bytes() != metadata_bytes:
            return False
        read_metadata(path)
    except (OSError, ArtifactError):
        return False
    return True
