"""Request and response bodies of the HTTP API."""

from operator import attrgetter
from typing import Annotated, Any, NotRequired, Self, TypedDict

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, JsonValue, create_model, model_validator

from fraud_model.engines import PARITY_TOLERANCE
from fraud_model.features import FEATURE_DTYPE, FEATURE_NAMES

# Input bounds. The real data's PCA components lie within about ±121 and its largest amount is
# 25,691; values far outside are a broken client, not a transaction to score.
MAX_ABS_COMPONENT = 1_000.0
MAX_AMOUNT = 1_000_000.0

_EXAMPLE: dict[str, JsonValue] = {
    **{name: 0.0 for name in FEATURE_NAMES},
    "V14": -0.31,
    "Amount": 149.62,
}
_features_in_order = attrgetter(*FEATURE_NAMES)


# The rows of one request in the feature contract's order: an (n, 29) float32 matrix from a
# batch request, or the lists of floats of single transactions coalesced by an Ingress.
FeatureRows = np.ndarray | list[list[float]]


class Answer(TypedDict):
    """One scored transaction as the model replica returns it (the fields of Prediction)."""

    fraud_probability: float
    is_fraud: bool
    threshold: float
    model_version: str
    decision_rule: NotRequired[str]  # fraud_model.decision's rule name
    explanation: NotRequired[dict[str, Any]]  # with explain=true: Explanation's fields


class ColumnarAnswer(TypedDict):
    """The answers to a columnar batch, as columns (the fields of ColumnarPrediction)."""

    fraud_probability: list[float]
    is_fraud: list[bool]
    threshold: float
    model_version: str
    decision_rule: NotRequired[str]


class TransactionBody(BaseModel):
    # JSON numbers only (no numeric strings, booleans, NaN or Infinity), and no unknown fields:
    # a typo such as "v1" or "amount" is refused, never ignored.
    model_config = ConfigDict(
        strict=True,
        allow_inf_nan=False,
        extra="forbid",
        json_schema_extra={"examples": [_EXAMPLE]},
    )

    def feature_row(self) -> list[float]:
        """The features in the model's order."""
        return list(_features_in_order(self))  # one C-level call (operator.attrgetter)


def feature_bounds(name: str) -> tuple[float, float]:
    """The lowest and the highest value the API takes for a feature."""
    if name == "Amount":
        return 0, MAX_AMOUNT
    return -MAX_ABS_COMPONENT, MAX_ABS_COMPONENT


def _feature_field(name: str) -> Any:
    low, high = feature_bounds(name)
    if name == "Amount":
        return float, Field(ge=low, le=high, description="Transaction amount")
    return float, Field(ge=low, le=high, description="PCA component of the card transaction")


def _feature_column(name: str, max_transactions: int) -> Any:
    _, bounds = _feature_field(name)
    return list[Annotated[float, bounds]], Field(
        min_length=1,
        max_length=max_transactions,
        description=f"{name} of each transaction, in order ({bounds.description}).",
    )


# Generated from the feature contract, so the API can never drift from what the model reads.
Transaction: type[TransactionBody] = create_model(
    "Transaction",
    __base__=TransactionBody,
    __doc__="One card transaction: the 28 PCA components V1..V28 and the Amount. All fields "
    "are required finite JSON numbers; unknown fields are refused.",
    **{name: _feature_field(name) for name in FEATURE_NAMES},
)


class Contribution(BaseModel):
    feature: str
    value: float = Field(description="The transaction's value of this feature.")
    contribution: float = Field(
        description="How far this feature moved fraud_probability (positive: towards fraud)."
    )


class Explanation(BaseModel):
    base: float = Field(description="fraud_probability before any feature is looked at.")
    contributions: list[Contribution] = Field(
        description="The top_k features by absolute contribution, largest first."
    )
    other: float = Field(
        description="The summed contribution of the features not listed (0 when top_k covers "
        "all 29). base + the sum of contributions + other = fraud_probability (within the "
        f"engines' parity tolerance, {PARITY_TOLERANCE:g})."
    )


DECISION_RULE = (
    "The rule that decided is_fraud: fixed_threshold (fraud_probability >= threshold), "
    "alert_budget (fraud_probability >= threshold, the threshold its alert budget gives) or "
    "expected_cost (fraud_probability * Amount >= threshold, the review cost)."
)
THRESHOLD = (
    "The decision rule's cut: a threshold on fraud_probability, or under expected_cost the "
    "review cost, a threshold on fraud_probability * Amount."
)


class Prediction(BaseModel):
    fraud_probability: float = Field(
        ge=0, le=1, description="Probability of fraud at the production fraud rate."
    )
    is_fraud: bool = Field(description="Whether decision_rule flags the transaction.")
    threshold: float = Field(description=THRESHOLD)
    model_version: str = Field(description="Version of the model artifact that scored this.")
    decision_rule: str | None = Field(None, description=DECISION_RULE)
    explanation: Explanation | None = Field(
        None, description="Reason codes, only with ?explain=true."
    )


class BatchPrediction(BaseModel):
    predictions: list[Prediction] = Field(description="One answer per transaction, in order.")


class BatchRequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    transactions: list[Transaction]

    def feature_matrix(self) -> np.ndarray:
        """The transactions as one (n, 29) float32 matrix in the model's feature order: the
        model replica gets one buffer, not n lists of floats to unpickle and convert."""
        rows = list(map(_features_in_order, self.transactions))
        return np.array(rows, dtype=FEATURE_DTYPE)


def batch_request_model(max_transactions: int) -> type[BatchRequestBody]:
    """The batch body, `{"transactions": [...]}`, with the configured size limit."""
    return create_model(
        "BatchRequest",
        __base__=BatchRequestBody,
        transactions=(list[Transaction], Field(min_length=1, max_length=max_transactions)),
    )


class ColumnarBatchBody(BaseModel):
    # The same rules as a transaction's fields: JSON numbers only, finite, no unknown keys.
    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid")

    @model_validator(mode="after")
    def same_length(self) -> Self:
        lengths = {name: len(getattr(self, name)) for name in FEATURE_NAMES}
        expected = lengths[FEATURE_NAMES[0]]
        for name, length in lengths.items():
            if length != expected:
                raise ValueError(
                    f"column {name} has {length} values where {FEATURE_NAMES[0]} has "
                    f"{expected}: every column needs one value per transaction"
                )
        return self

    def feature_matrix(self) -> np.ndarray:
        """The transactions as one (n, 29) float32 matrix in the model's feature order."""
        columns = np.array(_features_in_order(self), dtype=FEATURE_DTYPE)
        return np.ascontiguousarray(columns.T)


def columnar_request_model(max_transactions: int) -> type[ColumnarBatchBody]:
    """The columnar batch body, `{"V1": [...], ..., "Amount": [...]}`: each feature's values,
    one per transaction, in the same order in every column."""
    return create_model(
        "ColumnarBatchRequest",
        __base__=ColumnarBatchBody,
        __doc__="Transactions as columns: every feature (V1..V28, Amount) is a list with one "
        "finite JSON number per transaction, all lists of the same length.",
        **{name: _feature_column(name, max_transactions) for name in FEATURE_NAMES},
    )


class ColumnarPrediction(BaseModel):
    fraud_probability: list[float] = Field(
        description="Probability of fraud at the production fraud rate, per transaction in order."
    )
    is_fraud: list[bool] = Field(description="Whether decision_rule flags it, per transaction.")
    threshold: float = Field(description=THRESHOLD)
    model_version: str = Field(description="Version of the model artifact that scored these.")
    decision_rule: str | None = Field(None, description=DECISION_RULE)


class ErrorItem(BaseModel):
    type: str = Field(description="Machine-readable kind, e.g. missing, extra_forbidden.")
    loc: list[str | int] = Field(description="Where: e.g. ['body', 'V1'] or ['header'].")
    msg: str = Field(description="What is wrong, naming the field or the limit.")


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer of the API has this shape (FastAPI's validation-error shape)."""

    detail: list[ErrorItem]
