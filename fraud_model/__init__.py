"""Feature contract, model artifact format and scoring shared by training and serving."""

from fraud_model.artifact import (
    ARTIFACT_FORMAT_VERSION,
    ArtifactError,
    ArtifactFileMissingError,
    ArtifactHashMismatchError,
    ArtifactMetadataError,
    ArtifactNotFoundError,
    ArtifactParityError,
    FeatureMismatchError,
    LoadedArtifact,
    UnsupportedArtifactVersionError,
    load_artifact,
    save_artifact,
)
from fraud_model.features import FEATURE_NAMES, TARGET_COLUMN, feature_matrix
from fraud_model.metadata import ArtifactMetadata
from fraud_model.prior import adjust_to_prior

__all__ = [
    "ARTIFACT_FORMAT_VERSION",
    "FEATURE_NAMES",
    "TARGET_COLUMN",
    "ArtifactError",
    "ArtifactFileMissingError",
    "ArtifactHashMismatchError",
    "ArtifactMetadata",
    "ArtifactMetadataError",
    "ArtifactNotFoundError",
    "ArtifactParityError",
    "FeatureMismatchError",
    "LoadedArtifact",
    "UnsupportedArtifactVersionError",
    "adjust_to_prior",
    "feature_matrix",
    "load_artifact",
    "save_artifact",
]
