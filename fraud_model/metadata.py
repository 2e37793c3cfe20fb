"""The schema of an artifact's `metadata.json`."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataFingerprint(_Strict):
    """What the model was trained on, so a model can be traced back to its exact input file."""

    source: str = Field(description="File name of the training data, or 'synthetic(...)'.")
    rows: int = Field(ge=0)
    fraud_count: int = Field(ge=0)
    sha256: str = Field(description="sha256 of the input file's bytes as read (or of the frame).")


class Calibration(_Strict):
    """How raw forest scores become probabilities at the production fraud rate.

    See fraud_model.prior.
    """

    method: Literal["prior_shift"] = "prior_shift"
    training_prior: float = Field(gt=0, lt=1, description="Weighted fraud share the trees saw.")
    production_prior: float = Field(gt=0, lt=1, description="Fraud share of live traffic.")


class Parity(_Strict):
    """Both engines scored the probe rows in `probe_file`; their largest difference."""

    probe_file: str
    rows: int = Field(ge=1)
    max_abs_diff: float = Field(ge=0)
    tolerance: float = Field(gt=0)


class ScoreBins(_Strict):
    """Held-out served scores in fixed bins: the reference for live score drift (PSI)."""

    edges: list[float] = Field(description="Inner bin edges; a score s is in bin searchsorted.")
    shares: list[float] = Field(description="Share of the reference scores in each bin.")


class ArtifactMetadata(_Strict):
    format_version: int
    model_version: str
    created_at: datetime
    engines: dict[Literal["onnx", "sklearn"], str] = Field(
        description="Model file of each scoring engine."
    )
    parity: Parity
    explainer_file: str = Field(description="The trees as plain arrays, for reason codes.")
    score_bins: ScoreBins
    report_file: str | None = Field(None, description="The training report, if one was made.")
    files: dict[str, str] = Field(description="sha256 of every file of the artifact but this one.")
    features: list[str]
    threshold: float = Field(ge=0, le=1, description="Decision threshold on fraud_probability.")
    threshold_strategy: str
    calibration: Calibration
    library_versions: dict[str, str]
    training_params: dict[str, Any]
    data: DataFingerprint
    metrics: dict[str, Any] = Field(description="Held-out evaluation, see training.evaluate.")
