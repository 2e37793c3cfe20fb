"""Model artifacts: a directory with the forest as ONNX and as joblib, a parity probe and
`metadata.json`.

Writing is atomic (build in a hidden sibling directory, then rename), so a server never sees a
half-written artifact. Loading verifies every file's sha256 before reading any model, and the
default ONNX engine never unpickles anything.
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

from fraud_model.drift import reference_bins
from fraud_model.engines import (
    PARITY_TOLERANCE,
    EngineName,
    OnnxEngine,
    ScoringEngine,
    SklearnEngine,
)
from fraud_model.explain import TREES_FILE, ForestExplainer, save_trees
from fraud_model.features import FEATURE_DTYPE, FEATURE_NAMES
from fraud_model.metadata import (
    ArtifactMetadata,
    Calibration,
    DataFingerprint,
    Parity,
    ScoreBins,
)
from fraud_model.prior import adjust_to_prior

logger = logging.getLogger(__name__)

ARTIFACT_FORMAT_VERSION = 3
METADATA_FILE = "metadata.json"
MODEL_FILES: dict[EngineName, str] = {"onnx": "model.onnx", "sklearn": "model.joblib"}
PROBE_FILE = "parity_probe.npz"


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


class ArtifactParityError(ArtifactError):
    """The engines disagree on the probe rows (a bad export, or a library that changed)."""


@dataclass(frozen=True)
class LoadedArtifact:
    path: Path
    metadata: ArtifactMetadata
    engine: ScoringEngine

    def fraud_probability(self, features: np.ndarray) -> np.ndarray:
        """Probability of fraud at the production fraud rate for each row of an (n, 29) matrix."""
        raw = self.engine.raw_fraud_scores(np.asarray(features, dtype=FEATURE_DTYPE))
        calibration = self.metadata.calibration
        return adjust_to_prior(raw, calibration.training_prior, calibration.production_prior)

    def load_explainer(self) -> ForestExplainer:
        """The trees as arrays (hash-checked with the rest), for reason codes; no unpickling."""
        return ForestExplainer.load(self.path / self.metadata.explainer_file)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    import onnxruntime
    import ray
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "joblib": joblib.__version__,
        "onnxruntime": onnxruntime.__version__,
        "ray": ray.__version__,
    }


def save_artifact(
    output_dir: str | Path,
    model: Any,
    onnx_model: bytes,
    probe: np.ndarray,
    *,
    threshold: float,
    threshold_strategy: str,
    calibration: Calibration,
    training_params: dict[str, Any],
    data: DataFingerprint,
    metrics: dict[str, Any],
    score_bins: ScoreBins | None = None,
    extra_files: dict[str, bytes] | None = None,
    report_file: str | None = None,
    overwrite: bool = False,
) -> ArtifactMetadata:
    """Write the forest (sklearn, ONNX and plain arrays), the parity probe, any extra files
    (the training report) and the metadata, atomically.

    `score_bins`: the drift reference (default: the probe rows' served scores).
    Raises ArtifactParityError, leaving nothing behind, if the engines disagree.
    """
    final = Path(output_dir)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} already exists; artifacts are immutable (pass overwrite)")
    n_features = getattr(model, "n_features_in_", None)
    if n_features != len(FEATURE_NAMES):
        raise FeatureMismatchError(
            f"The model expects {n_features} features; the contract has {len(FEATURE_NAMES)}"
        )
    probe = np.asarray(probe, dtype=FEATURE_DTYPE)
    sklearn_scores = SklearnEngine(model).raw_fraud_scores(probe)
    max_diff = _max_abs_diff(OnnxEngine(onnx_model).raw_fraud_scores(probe), sklearn_scores)
    if max_diff > PARITY_TOLERANCE:
        raise ArtifactParityError(
            f"ONNX export differs from sklearn by {max_diff:.2e} on {len(probe)} probe rows "
            f"(tolerance {PARITY_TOLERANCE:.0e}); not writing {final}"
        )

    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        (staging / MODEL_FILES["onnx"]).write_bytes(onnx_model)
        joblib.dump(model, staging / MODEL_FILES["sklearn"], compress=3)
        np.savez(staging / PROBE_FILE, features=probe, sklearn_scores=sklearn_scores)
        save_trees(model, staging / TREES_FILE)
        for name, content in (extra_files or {}).items():
            (staging / name).write_bytes(content)
        if score_bins is None:
            probe_scores = adjust_to_prior(
                sklearn_scores, calibration.training_prior, calibration.production_prior
            )
            edges, shares = reference_bins(probe_scores)
            score_bins = ScoreBins(edges=edges, shares=shares)
        files = {file.name: sha256_file(file) for file in sorted(staging.iterdir())}
        created_at = datetime.now(UTC).replace(microsecond=0)
        onnx_sha = files[MODEL_FILES["onnx"]]
        metadata = ArtifactMetadata(
            format_version=ARTIFACT_FORMAT_VERSION,
            model_version=f"{created_at:%Y%m%dT%H%M%SZ}-{onnx_sha[:8]}",
            created_at=created_at,
            engines=MODEL_FILES,
            parity=Parity(
                probe_file=PROBE_FILE,
                rows=len(probe),
                max_abs_diff=max_diff,
                tolerance=PARITY_TOLERANCE,
            ),
            explainer_file=TREES_FILE,
            score_bins=score_bins,
            report_file=report_file,
            files=files,
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
            f"{ARTIFACT_FORMAT_VERSION} (retrain with `python -m training`)"
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


def load_artifact(
    path: str | Path, engine: EngineName = "onnx", threads: int = 1
) -> LoadedArtifact:
    """Verify an artifact and load one scoring engine; raises a specific ArtifactError if unusable.

    `engine="sklearn"` unpickles `model.joblib` (after its hash check); `"onnx"` unpickles nothing.
    """
    root = Path(path)
    metadata = read_metadata(root)
    model_file = root / metadata.engines[engine]
    if engine == "onnx":
        try:
            scorer: ScoringEngine = OnnxEngine(model_file, threads=threads)
        except Exception as error:  # onnxruntime raises its own exception types
            raise ArtifactMetadataError(
                f"{model_file} is not a loadable ONNX model: {error}"
            ) from error
    else:
        model = joblib.load(model_file)  # safe to unpickle: its hash was checked
        n_features = getattr(model, "n_features_in_", None)
        if n_features != len(FEATURE_NAMES) or not hasattr(model, "predict_proba"):
            raise FeatureMismatchError(
                f"{model_file} holds a {type(model).__name__} expecting {n_features} features; "
                f"the contract has {len(FEATURE_NAMES)}"
            )
        scorer = SklearnEngine(model)
    _check_parity(root, metadata, scorer)
    return LoadedArtifact(path=root, metadata=metadata, engine=scorer)


def _check_parity(root: Path, metadata: ArtifactMetadata, engine: ScoringEngine) -> None:
    """Re-score the probe rows: a library upgrade that changes scores must not go unnoticed."""
    with np.load(root / metadata.parity.probe_file, allow_pickle=False) as probe:
        features, expected = probe["features"], probe["sklearn_scores"]
    if features.shape[1:] != (len(FEATURE_NAMES),):
        raise FeatureMismatchError(f"Parity probe has shape {features.shape}; expected (n, 29)")
    try:
        max_diff = _max_abs_diff(engine.raw_fraud_scores(features), expected)
    except Exception as error:  # e.g. an ONNX graph built for another input width
        raise FeatureMismatchError(
            f"{engine.name} engine cannot score {len(FEATURE_NAMES)}-feature rows: {error}"
        ) from error
    if max_diff > metadata.parity.tolerance:
        raise ArtifactParityError(
            f"{engine.name} engine scores the probe rows of {root} {max_diff:.2e} away from the "
            f"scores recorded at training (tolerance {metadata.parity.tolerance:.0e})"
        )


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - b))) if len(a) else 0.0


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
    referenced = [*metadata.engines.values(), metadata.parity.probe_file, metadata.explainer_file]
    if metadata.report_file is not None:
        referenced.append(metadata.report_file)
    unhashed = [name for name in referenced if name not in metadata.files]
    if unhashed:
        raise ArtifactMetadataError(f"{unhashed} have no sha256 in 'files'")
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
