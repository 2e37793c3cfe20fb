"""Where artifacts live: a local directory or an `s3://bucket/prefix`, behind one interface.

`fetch_artifact(uri)` gives a local directory holding the artifact; `publish_artifact` writes a
verified artifact under `<destination>/<model_version>/` and never replaces one that exists.

`s3://bucket/prefix` holds the same files as a local artifact directory, and a published one
ends in its model version, which a replica checks. Credentials come only from boto3's standard
chain (env, IRSA web identity on EKS, instance profile); an S3-compatible endpoint (MinIO, a test
server) is set with boto3's own `AWS_ENDPOINT_URL_S3`. A download is built in a hidden staging
directory, checked (every sha256), and only then renamed into
`<cache>/<bucket>/<prefix>/<model_version>-<metadata sha256[:12]>`, so a failure leaves nothing
behind and nothing unverified is ever handed out.
"""

import functools
import logging
import re
import shutil
import threading
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
    ArtifactHashMismatchError,
    ArtifactMetadataError,
    ArtifactNotFoundError,
    check_pin,
    parse_metadata,
    read_metadata,
    sha256_bytes,
)

logger = logging.getLogger(__name__)

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


class ArtifactVersionMismatchError(ArtifactError):
    """An `s3://` URI does not end in the model version its metadata.json names."""


class ArtifactExistsError(ArtifactError):
    """Publishing would replace a version that is there already: versions are immutable."""


class ArtifactTooLargeError(ArtifactError):
    """The artifact is larger than a download may write: refused before the cache is written."""


class ArtifactSizeMismatchError(ArtifactHashMismatchError):
    """An object is not the size metadata.json records for it, so not the file its sha256
    names: refused before it is written."""


@dataclass(frozen=True)
class LocalLocation:
    path: Path

    @property
    def uri(self) -> str:
        return str(self.path)

    def child(self, name: str) -> "LocalLocation":
        return LocalLocation(self.path / name)


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    @property
    def uri(self) -> str:
        return (
            f"{S3_SCHEME}{self.bucket}/{self.prefix}"
            if self.prefix
            else f"{S3_SCHEME}{self.bucket}"
        )

    def child(self, name: str) -> "S3Location":
        return S3Location(self.bucket, f"{self.prefix}/{name}" if self.prefix else name)

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name


Location = LocalLocation | S3Location


@dataclass(frozen=True)
class PublishedArtifact:
    """Where a published version is, and the pin that names its exact bytes."""

    uri: str
    model_version: str
    metadata_sha256: str


def parse_location(uri: str, base_dir: Path | None = None) -> Location:
    """The one parse of an artifact URI: `s3://bucket/prefix`, `file://path` or a plain path
    (relative paths are taken from `base_dir`, else from the working directory)."""
    if uri.startswith(S3_SCHEME):
        bucket, _, prefix = uri.removeprefix(S3_SCHEME).partition("/")
        if not _DIR_NAME.match(bucket):
            raise InvalidArtifactUriError(f"{uri!r} names no valid bucket")
        prefix = prefix.strip("/")
        # The prefix becomes a path under the cache: never let it climb out.
        if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
            raise InvalidArtifactUriError(f"{uri!r} has an empty, '.' or '..' path segment")
        return S3Location(bucket, prefix)
    if _SCHEME.match(uri) and not uri.startswith(FILE_SCHEME):
        raise InvalidArtifactUriError(f"{uri!r}: only local paths and s3:// URIs are supported")
    if not uri.strip():
        raise InvalidArtifactUriError("the artifact URI is empty")
    path = Path(uri.removeprefix(FILE_SCHEME)).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return LocalLocation(path)


def fetch_artifact(
    uri: str,
    metadata_sha256: str | None = None,
    *,
    cache_dir: Path,
    base_dir: Path | None = None,
    max_bytes: int | None = None,
) -> Path:
    """A local directory holding the artifact at `uri`.

    A local path comes back as is: verifying it is `load_artifact`'s job (with the same pin). An
    `s3://` artifact comes back as a cache directory whose every file matched its metadata:
    `metadata.json` is read first and checked against `metadata_sha256` (if given) and against
    the version the URI ends in, before any other object is read; the model files are
    downloaded only when the cache holds no verified copy of that exact metadata. Nothing is
    written for an object whose size is not the one metadata.json records, nor beyond
    `max_bytes` for the whole artifact (ArtifactTooLargeError).
    Raises an ArtifactError naming the URI and the reason.
    """
    location = parse_location(uri, base_dir)
    if isinstance(location, LocalLocation):
        return location.path
    cache = cache_dir
    source = _S3Artifact(uri, location, _s3_client())
    metadata_bytes = source.read(METADATA_FILE)
    check_pin(metadata_bytes, metadata_sha256, uri)
    version, names, sizes = _version_and_files(metadata_bytes, uri)
    published_as = location.prefix.rsplit("/", 1)[-1]
    if published_as != version:
        raise ArtifactVersionMismatchError(
            f"{uri} holds model version {version}, but an s3:// artifact must be the published "
            f"version its URI names (publish it with `python -m training.publish`)"
        )
    # Named by version and metadata hash: a re-saved artifact (say, a new threshold for the same
    # forest in the same second) gets its own directory instead of reusing a stale one.
    target = (
        cache / location.bucket / location.prefix / f"{version}-{sha256_bytes(metadata_bytes)[:12]}"
    )
    if _is_verified_copy(target, metadata_bytes):
        logger.info("Artifact %s (model %s) is already cached at %s", uri, version, target)
        return target
    budget = _Budget(uri, sizes, max_bytes, len(metadata_bytes))
    _download(source, metadata_bytes, names, cache, target, budget)
    return target


@dataclass
class _Budget:
    """What a download may write: each object exactly its recorded size (when recorded), and
    the artifact as a whole at most `max_bytes` (when set)."""

    uri: str
    sizes: dict[str, int] | None
    max_bytes: int | None
    spent: int

    def __post_init__(self) -> None:
        if self.sizes is not None and self.max_bytes is not None:
            total = self.spent + sum(self.sizes.values())  # a lower bound if one is left out
            if total > self.max_bytes:
                raise ArtifactTooLargeError(
                    f"{self.uri} is {total} bytes, over the limit of {self.max_bytes} for a "
                    "downloaded artifact"
                )

    def allowed(self, name: str, announced: int | None) -> int | None:
        """The most bytes `name` may have; refuses at once an object announced larger."""
        expected = None if self.sizes is None else self.sizes.get(name)
        room = None if self.max_bytes is None else self.max_bytes - self.spent
        if announced is not None and expected is not None and announced != expected:
            raise ArtifactSizeMismatchError(
                f"{self.uri}: {name} is {announced} bytes where metadata.json says {expected}: "
                "not the file its sha256 names"
            )
        limits = [limit for limit in (expected, room) if limit is not None]
        most = min(limits) if limits else None
        if announced is not None and most is not None and announced > most:
            raise ArtifactTooLargeError(
                f"{self.uri}: {name} is {announced} bytes, over the {self.max_bytes} bytes a "
                "downloaded artifact may take"
            )
        return most

    def spend(self, size: int) -> None:
        self.spent += size


def publish_artifact(
    source: Path, destination: str, *, base_dir: Path | None = None
) -> PublishedArtifact:
    """Write the artifact at `source` to `<destination>/<model_version>/`, verified first.

    Never replaces anything: if that version is already there (even partly), raises
    ArtifactExistsError. On S3 every object is written with `If-None-Match: *`, and
    `metadata.json` last, so a version is complete once it can be read at all.
    """
    metadata = read_metadata(source)
    metadata_bytes = (source / METADATA_FILE).read_bytes()
    target = parse_location(destination, base_dir).child(metadata.model_version)
    if isinstance(target, LocalLocation):
        _publish_local(source, target.path)
    else:
        _publish_s3(source, metadata_bytes, list(metadata.files), target)
    published = PublishedArtifact(target.uri, metadata.model_version, sha256_bytes(metadata_bytes))
    logger.info("Published model %s to %s", published.model_version, published.uri)
    return published


def _publish_local(source: Path, target: Path) -> None:
    if target.exists():
        raise ArtifactExistsError(f"{target} already exists; published versions are immutable")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(source, staging)
        staging.rename(target)  # fails if another publisher got there first
    except OSError as error:
        if target.exists():
            raise ArtifactExistsError(
                f"{target} already exists; published versions are immutable"
            ) from error
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish_s3(source: Path, metadata_bytes: bytes, names: list[str], target: S3Location) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    client = _s3_client()
    try:
        existing = client.list_objects_v2(
            Bucket=target.bucket, Prefix=target.key(""), MaxKeys=1
        ).get("KeyCount", 0)
        if existing:
            raise ArtifactExistsError(
                f"{target.uri} already holds objects; published versions are immutable"
            )
        for name in names:
            with (source / name).open("rb") as body:
                client.put_object(
                    Bucket=target.bucket, Key=target.key(name), Body=body, IfNoneMatch="*"
                )
        client.put_object(
            Bucket=target.bucket,
            Key=target.key(METADATA_FILE),
            Body=metadata_bytes,
            IfNoneMatch="*",
            ContentType="application/json",
        )
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            raise ArtifactExistsError(
                f"{target.uri} was written by someone else meanwhile; published versions are "
                "immutable"
            ) from error
        raise ArtifactDownloadError(f"{target.uri}: publishing failed: {code or error}") from error
    except BotoCoreError as error:
        raise ArtifactDownloadError(f"{target.uri}: publishing failed: {error}") from error


@dataclass(frozen=True)
class _S3Artifact:
    """The objects of one artifact in S3, read with errors that name the URI."""

    uri: str
    location: S3Location
    client: Any

    def read(self, name: str) -> bytes:
        body = self._body(name)
        try:
            content: bytes = body.read()
            return content
        except Exception as error:  # botocore's streaming and connection errors
            raise self._failed(name, error) from error
        finally:
            body.close()

    def download(self, name: str, destination: Path, budget: "_Budget") -> int:
        """Stream one object to a file (a big model never sits in memory whole); its size.
        Refused (ArtifactTooLargeError) before a byte is written when the store announces more
        than `budget` allows, and cut off if it sends more than it announced.

        The local disk's errors propagate as OSError, for the caller to report with the cache.
        """
        body, announced = self._object(name)
        most = budget.allowed(name, announced)
        size = 0
        try:
            with destination.open("wb") as handle:
                for chunk in self._chunks(body, name):
                    size += len(chunk)
                    if most is not None and size > most:
                        raise ArtifactTooLargeError(
                            f"{self.uri}: {name} sent more than the {most} bytes it may have"
                        )
                    handle.write(chunk)
        finally:
            body.close()
        budget.spend(size)
        return size

    def _chunks(self, body: Any, name: str) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(_CHUNK)
        except Exception as error:  # botocore's streaming and connection errors
            raise self._failed(name, error) from error

    def _body(self, name: str) -> Any:
        return self._object(name)[0]

    def _object(self, name: str) -> tuple[Any, int | None]:
        """The object's body, and its size as the store announces it."""
        from botocore.exceptions import BotoCoreError, ClientError

        key = self._key(name)
        try:
            answer = self.client.get_object(Bucket=self.location.bucket, Key=key)
            return answer["Body"], answer.get("ContentLength")
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            location = f"s3://{self.location.bucket}/{key}"
            if code == "NoSuchBucket":
                raise ArtifactNotFoundError(
                    f"{self.uri}: bucket {self.location.bucket!r} does not exist"
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
        location = f"s3://{self.location.bucket}/{self._key(name)}"
        return ArtifactDownloadError(f"{self.uri}: reading {location} failed: {reason}")

    def _key(self, name: str) -> str:
        return self.location.key(name)


# Held while a session is made on the shared loader, whose search path boto3 appends to.
_LOADER_PATHS = threading.Lock()


def _s3_client() -> Any:
    return s3_client()


def s3_client(*, timeout_s: float | None = None, attempts: int | None = None) -> Any:
    """A boto3 S3 client from the standard credential chain (and `AWS_ENDPOINT_URL_S3`).

    `timeout_s` bounds connecting and each read, `attempts` the tries of one call; None keeps
    botocore's defaults. A caller that must not hang on a store that is down (the decision
    ledger's writer) sets both.
    """
    import boto3  # only remote locations need it
    import botocore.session
    from botocore.config import Config

    options: dict[str, Any] = {}
    if timeout_s is not None:
        options |= {"connect_timeout": timeout_s, "read_timeout": timeout_s}
    if attempts is not None:
        options["retries"] = {"max_attempts": attempts, "mode": "standard"}
    # A new session per client: the credential chain is resolved again (IRSA tokens rotate).
    # Its data loader is the process's one, which keeps the service descriptions it has read.
    loader = _service_descriptions()
    core = botocore.session.Session()
    core.register_component("data_loader", loader)
    with _LOADER_PATHS:
        paths = list(loader.search_paths)
        session = boto3.session.Session(botocore_session=core)
        loader.search_paths[:] = paths  # boto3 adds its own directory again at every session
    return session.client("s3", config=Config(**options) if options else None)


@functools.cache
def _service_descriptions() -> Any:
    """botocore's data loader for every S3 client of the process. A loader keeps the service
    descriptions and endpoint rules it has read, and each session would make a new one: reading
    them again for every client cost more CPU than a small artifact's fetch or a ledger file's
    put (docs/BENCHMARKS.md). Credentials are the session's, not the loader's."""
    import boto3
    import botocore.session

    core = botocore.session.Session()  # its loader reads AWS_DATA_PATH, as any session's does
    boto3.session.Session(botocore_session=core)  # which adds boto3's own directory to it
    return core.get_component("data_loader")


def _download(
    source: _S3Artifact,
    metadata_bytes: bytes,
    names: list[str],
    cache: Path,
    target: Path,
    budget: _Budget,
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
                total += source.download(name, staging / name, budget)
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


def _version_and_files(
    metadata_bytes: bytes, uri: str
) -> tuple[str, list[str], dict[str, int] | None]:
    """The model version, file names and sizes from a metadata.json not yet trusted: names
    become local paths, so the version must be a plain directory name and each file a plain
    file name."""
    metadata = parse_metadata(metadata_bytes, f"{uri}/{METADATA_FILE}")
    if not _DIR_NAME.match(metadata.model_version):
        raise ArtifactMetadataError(
            f"{uri}: model_version {metadata.model_version!r} is not a plain name"
        )
    return metadata.model_version, list(metadata.files), metadata.file_sizes


def _is_verified_copy(path: Path, metadata_bytes: bytes) -> bool:
    try:
        if (path / METADATA_FILE).read_bytes() != metadata_bytes:
            return False
        read_metadata(path)
    except (OSError, ArtifactError):
        return False
    return True
