"""The application's arguments: the `args:` of the application in a Serve config."""

from pydantic import BaseModel, ConfigDict, Field


class AppArgs(BaseModel):
    """The `args:` of the application in a Serve config. Unknown keys are an error.

    The model itself is not here: it is FraudModel's `user_config` (`ModelConfig`), which Serve
    applies to running replicas in place, while any change to `args` replaces every replica.
    """

    model_config = ConfigDict(extra="forbid")

    max_transactions_per_request: int = Field(
        1000, ge=1, le=100_000, description="Limit of the batch endpoint."
    )
    request_timeout_s: float = Field(
        2.0,
        gt=0,
        le=60,
        description="How long a request may wait for the model before it gets a 504.",
    )
    allow_anonymous: bool = Field(
        False,
        description="Serve without API keys when none are configured. Off by default: an Ingress "
        "replica without FRAUD_API_KEYS or FRAUD_OPERATOR_KEYS refuses to start. The local "
        "config turns it on; production never does.",
    )
    openapi_docs: bool = Field(
        True,
        description="Serve the OpenAPI spec and Swagger UI under /api/v1 (off in production).",
    )


class ModelAutoscaling(BaseModel):
    """FraudModel's `autoscaling_config` defaults.

    Serve replaces a deployment's autoscaling_config as a whole, so a config that set only
    max_replicas would silently get Ray's other defaults (target_ongoing_requests 2, not 16).
    `python -m k8s.render` therefore completes a partial one from these defaults.
    """

    model_config = ConfigDict(extra="allow")  # any other field of Ray's AutoscalingConfig

    min_replicas: int = 1
    max_replicas: int = 2
    target_ongoing_requests: float = 16
    upscale_delay_s: float = 5
    downscale_delay_s: float = 60
