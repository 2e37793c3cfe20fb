"""What a Serve config sets in the code: the application's `args:`, the Ingress's
`user_config` and the model deployments' autoscaling defaults (FraudModel's `user_config` is
serve_app.model.ModelConfig)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from ledger.settings import LedgerSettings

# The deployments of the application (serve_app.app), by the names a Serve config gives them.
INGRESS = "Ingress"
MODEL = "FraudModel"
CHALLENGER = "Challenger"  # FraudModel's class, serving the challenger model
MODEL_DEPLOYMENTS = (MODEL, CHALLENGER)

# How often a stopping replica checks whether its requests are done (Serve's default is 2 s).
# Scoring takes milliseconds and every stop (a scale-down, a rollout, Ctrl-C) waits at least
# one check, so the check is frequent; it costs nothing while no replica is stopping.
STOP_CHECK_INTERVAL_S = 0.1
# What a FraudModel replica is to the application: told through its constructor.
ModelRole = Literal["champion", "challenger"]


class ChallengerConfig(BaseModel):
    """The Ingress's `user_config.challenger`: how it uses the second model, the `Challenger`
    deployment (docs/CHALLENGER.md), whose artifact and pin are the Challenger's own
    `user_config`."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["shadow", "canary"] = Field(
        "shadow",
        description="shadow: the challenger scores a share of requests after the champion "
        "answered, and only the comparison is kept; the client always gets the champion's answer. "
        "canary: the challenger answers a share of requests (its model_version says so), the "
        "champion scoring them beside it as the fallback and for the comparison.",
    )
    share: float = Field(
        ge=0,
        le=1,
        description="Share of requests (single and batch alike) sent to the challenger, 0 to 1. "
        "Required: there is no safe default for how much traffic a new model sees.",
    )
    timeout_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How long a challenger call may take. A shadow call is then cancelled and "
        "counted as a timeout; a canary request is answered by the champion instead.",
    )
    max_in_flight: int = Field(
        64,
        ge=1,
        le=10_000,
        description="Challenger calls under way at once, per Ingress replica. A call beyond it "
        "is not sent (counted as dropped): a slow challenger never piles up work in the Ingress.",
    )


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
        description="Serve the OpenAPI spec and Swagger UI with the API (off in production).",
    )
    ledger: LedgerSettings | None = Field(
        default_factory=LedgerSettings,
        description="The decision ledger: where every answered decision and refusal is kept, "
        "and how each Ingress replica buffers and writes it (docs/LEDGER.md). A local directory "
        "by default (relative to the project root), s3://bucket/prefix in production; null: "
        "no ledger.",
    )


class IngressConfig(BaseModel):
    """The Ingress's `user_config`: applied by its reconfigure() to running replicas, so adding,
    changing or removing a challenger restarts nothing (a change to `args` would replace every
    replica of the application, FraudModel's too)."""

    model_config = ConfigDict(extra="forbid")

    challenger: ChallengerConfig | None = Field(
        None,
        description="A challenger in shadow or canary mode. None: the Challenger deployment is "
        "sent nothing and has no replicas.",
    )

    local_scoring: bool = Field(
        True,
        description="Score single transactions in the Ingress replica, with its copy of the "
        "model the FraudModel deployment serves (serve_app.champion_copy), instead of a call "
        "to that deployment each. Batches, columns and explanations go to the deployment either "
        "way.",
    )

    @model_validator(mode="after")
    def canary_leaves_time_for_the_champion(self, info: ValidationInfo) -> "IngressConfig":
        """With `context={"request_timeout_s": ...}` (the app's args), a canary's timeout must
        leave part of the request's budget: a canary request falls back to the champion after
        it, and a slow challenger would otherwise turn into 504s."""
        budget = (info.context or {}).get("request_timeout_s")
        challenger = self.challenger
        if (
            budget is not None
            and challenger is not None
            and challenger.mode == "canary"
            and challenger.timeout_s >= budget
        ):
            raise ValueError(
                f"challenger.timeout_s ({challenger.timeout_s:g}) must be below the app's "
                f"request_timeout_s ({budget:g}) in canary mode"
            )
        return self


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


class ChallengerAutoscaling(ModelAutoscaling):
    """The Challenger's `autoscaling_config` defaults: FraudModel's, but down to no replica at
    all while nothing is sent to it (no challenger configured). The first calls after that wait
    for a replica to start, and shadow calls that wait too long are counted as timeouts."""

    min_replicas: int = 0
