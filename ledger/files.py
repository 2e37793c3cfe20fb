"""The ledger's files: written once, never overwritten, in a local directory or under s3://.

The location is parsed by fraud_model.store.parse_location, like every other location. A file is
put whole or not at all: locally it is written to a hidden temporary file and hard-linked to its
name (the link fails if the name exists, so nothing is ever replaced; readers skip hidden files);
on S3 it is one PUT with `If-None-Match: *`, which the store refuses with 412 if the key exists.
Reading goes through pyarrow's file systems (S3FileSystem takes the same `AWS_ENDPOINT_URL_S3`
as boto3 does), and hands Arrow data to whoever computes.
"""

import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from fraud_model.store import LocalLocation, S3Location, parse_location, s3_client
from ledger.schema import PARTITION, SCHEMAS

# Files in flight or left by a crash are hidden: every engine that reads the table skips them.
HIDDEN = (".", "_")
_PRECONDITION_FAILED = ("PreconditionFailed", "412", "ConditionalRequestConflict")


class LedgerFileExistsError(FileExistsError):
    """The name is taken: the ledger never replaces a file."""


def _exists(name: str) -> LedgerFileExistsError:
    return LedgerFileExistsError(f"{name} exists; ledger files are written once")


class LedgerStoreError(OSError):
    """The store could not be written (down, access denied, out of space)."""


class LedgerFiles(Protocol):
    """A place that holds the ledger's files."""

    @property
    def uri(self) -> str: ...

    def put_new(self, key: str, data: bytes) -> None:
        """Store `data` under `key` (a path below the ledger's root), unless the key exists:
        then LedgerFileExistsError. Any other failure: LedgerStoreError."""
        ...

    def arrow(self) -> tuple[pafs.FileSystem, str]:
        """A pyarrow file system and the ledger's root path on it, for reading."""
        ...


@dataclass(frozen=True)
class LocalFiles:
    location: LocalLocation

    @property
    def uri(self) -> str:
        return self.location.uri

    def put_new(self, key: str, data: bytes) -> None:
        target = self.location.path / key
        staging = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with staging.open("xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(staging, target)  # atomic, and refuses an existing name
            except FileExistsError as error:
                raise LedgerFileExistsError(
                    f"{target} exists; ledger files are written once"
                ) from error
        except LedgerFileExistsError:
            raise
        except OSError as error:
            raise LedgerStoreError(f"writing {target} failed: {error}") from error
        finally:
            staging.unlink(missing_ok=True)

    def arrow(self) -> tuple[pafs.FileSystem, str]:
        return pafs.LocalFileSystem(), str(self.location.path.resolve())


@dataclass
class S3Files:
    location: S3Location
    timeout_s: float | None = None
    attempts: int | None = None
    _client: Any = field(default=None, repr=False)

    @property
    def uri(self) -> str:
        return self.location.uri

    def put_new(self, key: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        if self._client is None:
            self._client = s3_client(timeout_s=self.timeout_s, attempts=self.attempts)
        full_key = self.location.key(key)
        try:
            self._client.put_object(
                Bucket=self.location.bucket, Key=full_key, Body=data, IfNoneMatch="*"
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            name = f"s3://{self.location.bucket}/{full_key}"
            if code in _PRECONDITION_FAILED:
                raise LedgerFileExistsError(
                    f"{name} exists; ledger files are written once"
                ) from error
            raise LedgerStoreError(f"writing {name} failed: {code or error}") from error
        except BotoCoreError as error:  # no connection, no credentials, a timeout
            raise LedgerStoreError(f"writing {self.uri}/{key} failed: {error}") from error

    def arrow(self) -> tuple[pafs.FileSystem, str]:
        return arrow_s3(), self.location.uri.removeprefix("s3://")


def arrow_s3() -> pafs.S3FileSystem:
    """pyarrow's S3 file system with boto3's settings: the standard credential chain, the
    region and an S3-compatible endpoint (`AWS_ENDPOINT_URL_S3`) from the environment."""
    options: dict[str, Any] = {}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        options |= {"endpoint_override": host or scheme, "scheme": scheme if host else "https"}
    return pafs.S3FileSystem(**options)


def open_files(
    uri: str, *, timeout_s: float | None = None, attempts: int | None = None
) -> LedgerFiles:
    """The ledger at `uri`: a local directory or s3://bucket/prefix."""
    location = parse_location(uri)
    if isinstance(location, LocalLocation):
        return LocalFiles(location)
    return S3Files(location, timeout_s, attempts)


def partition_key(table: str, day: date, name: str) -> str:
    return f"{table}/{PARTITION}={day.isoformat()}/{name}"


def table_dataset(files: LedgerFiles, table: str, paths: Iterable[str] | None = None) -> ds.Dataset:
    """One ledger table as a pyarrow dataset with its `date` partition column, in the current
    schema (columns a file lacks read as nulls). `paths`: only these files (from table_files)."""
    filesystem, root = files.arrow()
    partitioning = ds.partitioning(pa.schema([(PARTITION, pa.date32())]), flavor="hive")
    schema = SCHEMAS[table].append(pa.field(PARTITION, pa.date32()))
    if paths is not None:
        return ds.dataset(
            list(paths),
            schema=schema,
            filesystem=filesystem,
            format="parquet",
            partitioning=partitioning,
            partition_base_dir=f"{root}/{table}",
        )
    base = f"{root}/{table}"
    if filesystem.get_file_info(base).type == pafs.FileType.NotFound:
        return ds.dataset(pa.table({name: pa.array([], type=t) for name, t in
                                    zip(schema.names, schema.types, strict=True)}))  # fmt: skip
    return ds.dataset(
        base,
        schema=schema,
        filesystem=filesystem,
        format="parquet",
        partitioning=partitioning,
        ignore_prefixes=list(HIDDEN),
    )


def table_files(files: LedgerFiles, table: str) -> dict[date, list[str]]:
    """The visible files of a table, by partition day."""
    filesystem, root = files.arrow()
    selector = pafs.FileSelector(f"{root}/{table}", recursive=True, allow_not_found=True)
    by_day: dict[date, list[str]] = {}
    for info in filesystem.get_file_info(selector):
        if info.type != pafs.FileType.File or info.base_name.startswith(HIDDEN):
            continue
        partition = Path(info.path).parent.name
        if not partition.startswith(f"{PARTITION}="):
            continue
        day = date.fromisoformat(partition.removeprefix(f"{PARTITION}="))
        by_day.setdefault(day, []).append(info.path)
    return {day: sorted(paths) for day, paths in sorted(by_day.items())}
