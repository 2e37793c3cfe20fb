"""Where a replica's model comes from: a local directory or an `s3://` URI, verified, loaded."""

from pathlib import Path

from fraud_model.artifact import LoadedArtifact, load_artifact
from fraud_model.engines import EngineName

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def resolve_local(uri: str) -> Path:
    """A local artifact path; relative paths are taken from the project root."""
    path = Path(uri.removeprefix("file://")).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def locate_artifact(uri: str) -> Path:
    """A verified local copy of the artifact at `uri` (downloaded and cached if remote)."""
    if is_local(uri):
        return resolve_local(uri)
    from fraud_model.store import fetch_artifact  # boto3 only for remote artifacts

    return fetch_artifact(uri)


def open_artifact(uri: str, engine: EngineName, threads: int) -> LoadedArtifact:
    """Fetch, verify every hash, load one engine and re-check parity; raises ArtifactError."""
    return load_artifact(locate_artifact(uri), engine=engine, threads=threads)
