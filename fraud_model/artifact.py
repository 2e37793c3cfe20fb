"""Model artifacts: a directory holding the model as ONNX (what serving loads), the trees as
plain arrays (reason codes), a parity probe, optionally the training report and `model.joblib`
(the scikit-learn object, for notebooks), and `metadata.json` with every other file's sha256.

Reading verifies every hash before anything is loaded, and nothing here ever unpickles. An
artifact is pinned by the sha256 of its `metadata.json`: that one hash covers every file. The
writing side lives in `training.save`.
"""

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import ValidationError

from fraud_model.calibration import calibrated_probability
from fraud_model.decision import AlertCurve, read_alert_curve
from fraud_model.engines import OnnxEngine
from fraud_model.explain import ForestExplainer
from fraud_model.families import ModelFamily
from fraud_model.features import FEATURE_DTYPE, FEATURE_NAMES
from fraud_model.metadata import FIRST_FORMAT_WITH_FAMILIES, ArtifactMetadata

logger = logging.getLogger(__name__)

# 5: a model family (fraud_model.families) other than the forest: boosted trees, with their
# platt_log_odds calibration and their own trees file. A forest's artifact did not change, so it
# is still written as format 4, which code from before format 5 serves too. 4: the platt
# calibration, a decision rule and the alert curve. Format 3 (prior shift, a fixed threshold)
# still loads.
ARTIFACT_FORMAT_VERSION = FIRST_FORMAT_WITH_FAMILIES
FORMAT_VERSION_OF_FAMILY: dict[ModelFamily, int] = {
    "random_forest": 4,
    "hist_gradient_boosting": ARTIFACT_FORMAT_VERSION,
}
READABLE_FORMAT_VERSIONS = (3, 4, 5)
METADATA_FILE = "metadata.json"
SERVING_ENGINE: Literal["onnx"] = "onnx"


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


class ArtifactPinMismatchError(ArtifactError):
    """`metadata.json` is not the one the serving config pinned by its sha256."""


@dataclass(frozen=True)
class LoadedArtifact:
    path: Path
    metadata: ArtifactMetadata
    metadata_sha256: str  # the pin that names exactly these files
    engine: OnnxEngine
    alert_curve: AlertCurve | None = None  # for alert budgets set at serving

    def fraud_probability(self, features: np.ndarray) -> np.ndarray:
        """Probability of fraud at the production fraud rate for each row of an (n, 29) matrix."""
        raw = self.engine.raw_fraud_scores(np.asarray(features, dtype=FEATURE_DTYPE))
        return calibrated_probability(raw, self.metadata.calibration)

    def load_explainer(self) -> ForestExplainer:
        """The trees as arrays (hash-checked with the rest), for reason codes; no unpickling.
        Refuses a trees file of another family than the model's: its reason codes would not add
        up to the served score."""
        path = self.path / self.metadata.explainer_file
        try:
            explainer = ForestExplainer.load(path)
        except (KeyError, ValueError, OSError) as error:
            raise ArtifactMetadataError(f"{path} is not a trees file: {error}") from error
        if explainer.family != self.metadata.model_family:
            raise ArtifactMetadataError(
                f"{path} holds {explainer.family} trees; the model is {self.metadata.model_family}"
            )
        return explainer


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(metadata_bytes: bytes) -> str:
    """The pin of an artifact: the sha256 of its `metadata.json` bytes."""
    return hashlib.sha256(metadata_bytes).hexdigest()


def check_pin(metadata_bytes: bytes, expected: str | None, where: str) -> None:
    """Refuse a `metadata.json` other than the pinned one, before anything of it is trusted."""
    if expected is None:
        return
    actual = sha256_bytes(metadata_bytes)
    if actual != expected:
        raise ArtifactPinMismatchError(
            f"{where}: {METADATA_FILE} has sha256 {actual}, the config pins {expected}; "
            "this is not the artifact the config names"
        )


def read_metadata(path: str | Path, metadata_sha256: str | None = None) -> ArtifactMetadata:
    """Parse and check `metadata.json` and every file hash, without loading the model.

    `metadata_sha256`, if given, is checked against `metadata.json` before anything else.
    """
    root = Path(path)
    if not root.is_dir():
        raise ArtifactNotFoundError(f"No model artifact directory at {root}")
    metadata_path = root / METADATA_FILE
    if not metadata_path.is_file():
        raise ArtifactFileMissingError(f"{metadata_path} is missing; {root} is not an artifact")
    metadata_bytes = metadata_path.read_bytes()
    check_pin(metadata_bytes, metadata_sha256, str(root))
    metadata = parse_metadata(metadata_bytes, str(metadata_path))
    _check_files(root, metadata)
    return metadata


def parse_metadata(metadata_bytes: bytes, where: str) -> ArtifactMetadata:
    """`metadata.json` parsed and checked against the schema and the feature contract."""
    try:
        raw = json.loads(metadata_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArtifactMetadataError(f"{where} is not valid JSON: {error}") from error
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if version not in READABLE_FORMAT_VERSIONS:
        raise UnsupportedArtifactVersionError(
            f"{where} has format_version {version!r}; this code reads versions "
            f"{', '.join(map(str, READABLE_FORMAT_VERSIONS))} (retrain with `python -m training`)"
        )
    try:
        metadata = ArtifactMetadata.model_validate(raw)
    except ValidationError as error:
        raise ArtifactMetadataError(f"{where} does not match the schema: {error}") from error
    _check_features(metadata.features, where)
    for name in metadata.files:
        # Names come from a file we did not necessarily write: never follow them out of the dir.
        if not is_plain_file_name(name):
            raise ArtifactMetadataError(f"{where}: artifact file name {name!r} is not a plain name")
    return metadata


def is_plain_file_name(name: str) -> bool:
    return (
        name not in ("", ".", "..", METADATA_FILE)
        and "\x00" not in name
        and Path(name).name == name
    )


def load_artifact(
    path: str | Path, threads: int = 1, metadata_sha256: str | None = None
) -> LoadedArtifact:
    """Verify an artifact and load its ONNX engine; raises a specific ArtifactError if unusable."""
    root = Path(path)
    metadata = read_metadata(root, metadata_sha256)
    model_file = root / metadata.engines[SERVING_ENGINE]
    try:
        engine = OnnxEngine(model_file, threads=threads)
    except Exception as error:  # onnxruntime raises its own exception types
        raise ArtifactMetadataError(
            f"{model_file} is not a loadable ONNX model: {error}"
        ) from error
    _check_parity(root, metadata, engine)
    curve = None
    if metadata.alert_curve_file is not None:
        try:
            curve = read_alert_curve(root / metadata.alert_curve_file)
        except ValueError as error:  # JSON or schema: hash-checked, so a bad training run
            raise ArtifactMetadataError(
                f"{root / metadata.alert_curve_file} is not an alert curve: {error}"
            ) from error
    pin = sha256_bytes((root / METADATA_FILE).read_bytes())
    return LoadedArtifact(
        path=root, metadata=metadata, metadata_sha256=pin, engine=engine, alert_curve=curve
    )


def _check_parity(root: Path, metadata: ArtifactMetadata, engine: OnnxEngine) -> None:
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


def _check_features(features: list[str], where: str) -> None:
    if features == list(FEATURE_NAMES):
        return
    missing = [name for name in FEATURE_NAMES if name not in features]
    unexpected = [name for name in features if name not in FEATURE_NAMES]
    detail = f"missing {missing}, unexpected {unexpected}" if missing or unexpected else "order"
    raise FeatureMismatchError(f"{where} lists features that differ from the contract ({detail})")


def _check_files(root: Path, metadata: ArtifactMetadata) -> None:
    referenced = [*metadata.engines.values(), metadata.parity.probe_file, metadata.explainer_file]
    referenced += [name for name in (metadata.report_file, metadata.alert_curve_file) if name]
    unhashed = [name for name in referenced if name not in metadata.files]
    if unhashed:
        raise ArtifactMetadataError(f"{unhashed} have no sha256 in 'files'")
    for name, expected in metadata.files.items():
        file = root / name
        if not file.is_file():
            raise ArtifactFileMissingError(f"{file} is listed in {METADATA_FILE} but missing")
        actual = sha256_file(file)
        if actual != expected:
            raise ArtifactHashMismatchError(
                f"{file} has sha256 {actual}, {METADATA_FILE} expects {expected}"
            )
