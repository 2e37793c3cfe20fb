"""Where a replica's model comes from: the configured URI, fetched, verified and loaded."""

from pathlib import Path

from fraud_model.artifact import LoadedArtifact, load_artifact
from fraud_model.store import fetch_artifact

# Relative artifact paths in a Serve config (the bundled `artifacts/default`) are taken from here.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def open_artifact(
    uri: str,
    metadata_sha256: str | None,
    threads: int,
    cache_dir: Path,
    max_bytes: int | None = None,
) -> LoadedArtifact:
    """Fetch (an `s3://` artifact into `cache_dir`, at most `max_bytes` of it), check the pin and
    every hash, load the ONNX engine and re-check parity; raises an ArtifactError naming the URI
    and the reason."""
    path = fetch_artifact(
        uri, metadata_sha256, cache_dir=cache_dir, base_dir=PROJECT_ROOT, max_bytes=max_bytes
    )
    return load_artifact(path, threads=threads, metadata_sha256=metadata_sha256)
