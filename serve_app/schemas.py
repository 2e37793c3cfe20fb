"""Request and response bodies of the HTTP API."""

from pydantic import BaseModel, ConfigDict, Field, create_model

from fraud_model.features import FEATURE_NAMES

_EXAMPLE = {name: 0.0 for name in FEATURE_NAMES} | {"V14": -0.31, "Amount": 149.62}


class _TransactionBase(BaseModel):
    # JSON numbers only: no numeric strings, no NaN or Infinity.
    model_config = ConfigDict(
        strict=True, allow_inf_nan=False, json_schema_extra={"examples": [_EXAMPLE]}
    )

    def feature_row(self) -> list[float]:
        """The features in the model's order."""
        return [float(getattr(self, name)) for name in FEATURE_NAMES]


_FIELD_DESCRIPTIONS = {name: "PCA component of the card transaction" for name in FEATURE_NAMES[:-1]}
_FIELD_DESCRIPTIONS["Amount"] = "Transaction amount"

# Generated from the feature contract, so the API can never drift from what the model reads.
Transaction: type[_TransactionBase] = create_model(
    "Transaction",
    __base__=_TransactionBase,
    __doc__="One card transaction: the 28 PCA components V1..V28 and the Amount.",
    **{name: (float, Field(description=_FIELD_DESCRIPTIONS[name])) for name in FEATURE_NAMES},
)


class Prediction(BaseModel):
    fraud_probability: float = Field(
        ge=0, le=1, description="Probability of fraud at the production fraud rate."
    )
    is_fraud: bool = Field(description="fraud_probability >= threshold")
    threshold: float = Field(description="Decision threshold of the serving model.")
    model_version: str = Field(description="Version of the model artifact that scored this.")


class BatchPrediction(BaseModel):
    predictions: list[Prediction] = Field(description="One answer per transaction, in order.")


def batch_request_model(max_transactions: int) -> type[BaseModel]:
    """The batch body, `{"transactions": [...]}`, with the configured size limit."""
    return create_model(
        "BatchRequest",
        transactions=(list[Transaction], Field(min_length=1, max_length=max_transactions)),
    )
