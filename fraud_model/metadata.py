"""The schema of an artifact's `metadata.json`."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fraud_model.decision import DecisionRule
from fraud_model.families import ModelFamily

# The first format that holds a model other than a forest (fraud_model.artifact).
FIRST_FORMAT_WITH_FAMILIES = 5
# The calibrations that read each family's raw score (fraud_model.calibration).
CALIBRATIONS_OF_FAMILY: dict[ModelFamily, tuple[str, ...]] = {
    "random_forest": ("platt", "prior_shift"),
    "hist_gradient_boosting": ("platt_log_odds",),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataFingerprint(_Strict):
    """What the model was trained on, so a model can be traced back to its exact input file."""

    source: str = Field(description="File name of the training data, or 'synthetic(...)'.")
    rows: int = Field(ge=0)
    fraud_count: int = Field(ge=0)
    sha256: str = Field(description="sha256 of the input file's bytes as read (or of the frame).")
    sampling: str | None = Field(
        None, description="Where the rows' design weights came from (strata file, column, none)."
    )


class Calibration(_Strict):
    """How raw model scores become probabilities at the production fraud rate.

    See fraud_model.calibration: `platt` (a forest: two parameters on the log-odds of the smoothed
    score), `platt_log_odds` (boosted trees: two parameters on their own log-odds; format 5), or
    `prior_shift` (fraud_model.prior; artifacts of format 3).
    """

    method: Literal["prior_shift", "platt", "platt_log_odds"] = "prior_shift"
    production_prior: float = Field(gt=0, lt=1, description="Fraud share of live traffic.")
    training_prior: float | None = Field(
        None, gt=0, lt=1, description="prior_shift: the weighted fraud share the trees saw."
    )
    intercept: float | None = Field(None, description="platt: intercept on the log-odds.")
    slope: float | None = Field(None, gt=0, description="platt: slope on the log-odds.")
    trees: int | None = Field(None, ge=1, description="platt: trees the score is a mean over.")
    pseudo_count: float | None = Field(
        None, gt=0, description="platt: votes added to each side before the log-odds."
    )

    @model_validator(mode="after")
    def parameters_of_the_method(self) -> "Calibration":
        needed = {
            "platt": ("intercept", "slope", "trees", "pseudo_count"),
            "platt_log_odds": ("intercept", "slope"),
            "prior_shift": ("training_prior",),
        }[self.method]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"calibration {self.method} needs {', '.join(missing)}")
        return self

    def platt_parameters(self) -> tuple[float, float, int, float]:
        """(intercept, slope, trees, pseudo_count) of a `platt` calibration."""
        if self.intercept is None or self.slope is None or self.trees is None:
            raise ValueError(f"a {self.method} calibration has no Platt parameters")
        return self.intercept, self.slope, self.trees, self.pseudo_count or 0.0

    def linear_parameters(self) -> tuple[float, float]:
        """(intercept, slope) of a `platt_log_odds` calibration."""
        if self.intercept is None or self.slope is None:
            raise ValueError(f"a {self.method} calibration has no intercept and slope")
        return self.intercept, self.slope


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
    """metadata.json. `threshold` is the fixed threshold training chose; `decision` the rule
    that decides (fraud_model.decision)."""

    format_version: int
    model_family: ModelFamily = Field(
        "random_forest",
        description="What the model is (fraud_model.families); artifacts before format 5, which "
        "do not say, hold forests.",
    )
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
    file_sizes: dict[str, int] | None = Field(
        None,
        description="Size in bytes of each file in `files`: a download refuses an object of "
        "another size before writing it (None, or a file left out: bounded only by the "
        "download's own limit, as artifacts written before sizes were recorded).",
    )
    features: list[str]
    threshold: float = Field(ge=0, le=1, description="Decision threshold on fraud_probability.")
    threshold_strategy: str
    decision: DecisionRule | None = Field(
        None,
        description="The decision rule the model ships with (None: fixed_threshold at "
        "`threshold`, as artifacts of format 3).",
    )
    alert_curve_file: str | None = Field(
        None, description="Alerts per threshold on held-out rows, for alert budgets at serving."
    )
    calibration: Calibration
    library_versions: dict[str, str]
    training_params: dict[str, Any]
    data: DataFingerprint
    metrics: dict[str, Any] = Field(description="Held-out evaluation, see training.evaluate.")

    @model_validator(mode="after")
    def sizes_are_sizes(self) -> "ArtifactMetadata":
        if self.file_sizes is not None and any(size < 0 for size in self.file_sizes.values()):
            raise ValueError("a file size is negative")
        return self

    @model_validator(mode="after")
    def family_needs_its_format_and_calibration(self) -> "ArtifactMetadata":
        """A reader of an older format takes every model for a forest: anything else must say
        its format, so that such a reader refuses it instead of scoring it as one. And each
        family's raw score has its own calibrations: another would serve wrong probabilities."""
        other = self.model_family != "random_forest" or self.calibration.method == "platt_log_odds"
        if other and self.format_version < FIRST_FORMAT_WITH_FAMILIES:
            raise ValueError(
                f"a {self.model_family} model with {self.calibration.method} calibration needs "
                f"format_version {FIRST_FORMAT_WITH_FAMILIES} or later, not {self.format_version}"
            )
        if self.calibration.method not in CALIBRATIONS_OF_FAMILY[self.model_family]:
            raise ValueError(
                f"a {self.model_family} model is calibrated by "
                f"{' or '.join(CALIBRATIONS_OF_FAMILY[self.model_family])}, not "
                f"{self.calibration.method}"
            )
        return self

    @property
    def decision_rule(self) -> DecisionRule:
        if self.decision is not None:
            return self.decision
        return DecisionRule(rule="fixed_threshold", threshold=self.threshold)
