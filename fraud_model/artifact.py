"""Model artifacts: a directory holding the model file and `metadata.json`.

Writing is atomic (build in a hidden sibling directory, then rename), so a server never sees a
half-written artifact. Loading verifies every file's sha256 *before* unpickling anything.
"""

import hashlib
import json
import logging
import os
import platform
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from pydantic import ValidationError

from fraud_model.features import FEATURE_NAMES
from fraud_model.metadata import ArtifactMetadata, Calibration, DataFingerprint
from fraud_model.prior import adjust_to_prior

logger = logging.getLogger(__name__)

ARTIFACT_FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
MODEL_FILE = "model.joblib"


class ArtifactError(Exception):
    """Base class: the artifact at a path cannot be used."""


class ArtifactNotFoundError(ArtifactError):
    pass


class ArtifactFileMissingError(ArtifactError):
    pass


class ArtifactMetadataError(ArtifactError):
    pass


class UnsupportedArtifactVersionError(ArtifactError):
    pass


class ArtifactHashMismatchError(ArtifactError):
    pass


class FeatureMismatchError(ArtifactError):
    pass


@dataclass(frozen=True)
class LoadedArtifact:
    path: Path
    metadata: ArtifactMetadata
    model: Any

    def fraud_probability(self, features: np.ndarray) -> np.ndarray:
        """Probability of fraud at the production fraud rate for each row of an (n, 29) matrix."""
        raw = self.model.predict_proba(features)[:, 1]
        calibration = self.metadata.calibration
        return adjust_to_prior(raw, calibration.training_prior, calibration.production_prior)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    import ray
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "joblib": joblib.__version__,
        "ray": ray.__version__,
    }


def save_artifact(
    output_dir: str | Path,
    model: Any,
    *,
    threshold: float,
    threshold_strategy: str,
    calibration: Calibration,
    training_params: dict[str, Any],
    data: DataFingerprint,
    metrics: dict[str, Any],
    overwrite: bool = False,
) -> ArtifactMetadata:
    """Write `model` and its metadata to `output_dir` atomically and return the metadata."""
    final = Path(output_dir)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} already exists; artifacts are immutable (pass overwrite)")
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        joblib.dump(model, staging / MODEL_FILE, compress=3)
        model_sha = sha256_file(staging / MODEL_FILE)
        created_at = datetime.now(UTC).replace(microsecond=0)
        metadata = ArtifactMetadata(
            format_version=ARTIFACT_FORMAT_VERSION,
            model_version=f"{created_at:%Y%m%dT%H%M%SZ}-{model_sha[:8]}",
            created_at=created_at,
            model_file=MODEL_FILE,
            files={MODEL_FILE: model_sha},
            features=list(FEATURE_NAMES),
            threshold=threshold,
            threshold_strategy=threshold_strategy,
            calibration=calibration,
            library_versions=library_versions(),
            training_params=training_params,
            data=data,
            metrics=metrics,
        )
        (staging / METADATA_FILE).write_text(metadata.model_dump_json(indent=2) + "\n")
        for file in staging.iterdir():
            _fsync(file)
        _replace_dir(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("Wrote artifact %s (model_version %s)", final, metadata.model_version)
    return metadata


def read_metadata(path: str | Path) -> ArtifactMetadata:
    """Parse and check `metadata.json` and every file hash, without loading the model."""
    root = Path(path)
    if not root.is_dir():
        raise ArtifactNotFoundError(f"No model artifact directory at {root}")
    metadata_path = root / METADATA_FILE
    if not metadata_path.is_file():
        raise ArtifactFileMissingError(f"{metadata_path} is missing; {root} is not an artifact")
    try:
        raw = json.loads(metadata_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArtifactMetadataError(f"{metadata_path} is not valid JSON: {error}") from error
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if version != ARTIFACT_FORMAT_VERSION:
        raise UnsupportedArtifactVersionError(
            f"{metadata_path} has format_version {version!r}; this code reads version "
            f"{ARTIFACT_FORMAT_VERSION}"
        )
    try:
        metadata = ArtifactMetadata.model_validate(raw)
    except ValidationError as error:
        raise ArtifactMetadataError(
            f"{metadata_path} does not match the schema: {error}"
        ) from error
    _check_features(metadata.features, metadata_path)
    _check_files(root, metadata)
    return metadata


def load_artifact(path: str | Path) -> LoadedArtifact:
    """Verify an artifact and load its model; raises a specific ArtifactError on any problem."""
    root = Path(path)
    metadata = read_metadata(root)
    model = joblib.load(root / metadata.model_file)  # safe to unpickle: its hash was checked
    n_features = getattr(model, "n_features_in_", None)
    if n_features != len(FEATURE_NAMES) or not hasattr(model, "predict_proba"):
        raise FeatureMismatchError(
            f"{root / metadata.model_file} holds a {type(model).__name__} expecting "
            f"{n_features} features; the contract has {len(FEATURE_NAMES)}"
        )
    return LoadedArtifact(path=root, metadata=metadata, model=model)


def _check_features(features: list[str], metadata_path: Path) -> None:
    if features == list(FEATURE_NAMES):
        return
    missing = [name for name in FEATURE_NAMES if name not in features]
    unexpected = [name for name in features if name not in FEATURE_NAMES]
    detail = f"missing {missing}, unexpected {unexpected}" if missing or unexpected else "order"
    raise FeatureMismatchError(
        f"{metadata_path} lists features that differ from the contract ({detail})"
    )


def _check_files(root: Path, metadata: ArtifactMetadata) -> None:
    if metadata.model_file not in metadata.files:
        raise ArtifactMetadataError(f"model_file {metadata.model_file!r} has no hash in 'files'")
    # Names come from a file we did not necessarily write: never follow them out of the dir.
    for name in metadata.files:
        if Path(name).name != name or name in {".", "..", METADATA_FILE}:
            raise ArtifactMetadataError(f"Artifact file name {name!r} is not a plain file name")
    for name, expected in metadata.files.items():
        file = root / name
        if not file.is_file():
            raise ArtifactFileMissingError(f"{file} is listed in {METADATA_FILE} but missing")
        actual = sha256_file(file)
        if actual != expected:
            raise ArtifactHashMismatchError(
                f"{file} has sha256 {actual}, {METADATA_FILE} expects {expected}"
            )


def _fsync(file: Path) -> None:
    fd = os.open(file, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_dir(staging: Path, final: Path) -> None:
    """Move `staging` to `final`; an existing `final` is swapped out, then deleted."""
    if not final.exists():
        staging.rename(final)
        return
    retired = final.parent / f".{final.name}.retired-{uuid.uuid4().hex[:8]}"
    final.rename(retired)
    staging.rename(final)
    shutil.rmtree(retired)
