"""The Serve application builder: `import_path: serve_app.app:build_app` in configs/*.yaml."""

from pydantic import BaseModel, ConfigDict, Field
from ray.serve import Application

from fraud_model.artifact import read_metadata
from fraud_model.engines import EngineName
from serve_app.api import DEFAULT_MAX_TRANSACTIONS, DEFAULT_REQUEST_TIMEOUT_S
from serve_app.ingress import Ingress
from serve_app.loading import is_local, resolve_local
from serve_app.model import DEFAULT_MAX_BATCH_SIZE, FraudModel, ModelTuning

DEFAULT_ARTIFACT = "artifacts/default"


class AppArgs(BaseModel):
    """The `args:` of the application in a Serve config. Unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")

    artifact_uri: str = Field(
        DEFAULT_ARTIFACT,
        description="Model artifact: a directory (relative paths are taken from the project "
        "root) or an s3://bucket/prefix URI. FraudModel's user_config.artifact_uri overrides it "
        "without restarting replicas.",
    )
    engine: EngineName = Field(
        "onnx",
        description="'onnx' (compiled, never unpickles) or 'sklearn' (unpickles model.joblib "
        "after its hash check; a fallback).",
    )
    max_transactions_per_request: int = Field(
        DEFAULT_MAX_TRANSACTIONS, ge=1, le=100_000, description="Limit of the batch endpoint."
    )
    request_timeout_s: float = Field(
        DEFAULT_REQUEST_TIMEOUT_S,
        gt=0,
        le=60,
        description="How long a request may wait for the model before it gets a 504.",
    )


def build_app(args: AppArgs) -> Application:
    if is_local(args.artifact_uri):
        # Check a local artifact here, when the config is applied, so a wrong path or a corrupt
        # file fails the deploy with its reason. Remote ones are verified by each replica.
        read_metadata(resolve_local(args.artifact_uri))
    model = FraudModel.options(
        # Defaults; the config's `deployments:` section overrides both. Tuning lives in
        # user_config because Serve applies a user_config change to running replicas in place,
        # while any change to `args` builds new ones.
        user_config=ModelTuning().model_dump(),
        # A batch never exceeds the requests a replica holds at once: room for two full batches
        # lets one fill while the other is scored.
        max_ongoing_requests=2 * DEFAULT_MAX_BATCH_SIZE,
    ).bind(artifact_uri=args.artifact_uri, engine=args.engine)
    return Ingress.bind(
        model,
        max_transactions_per_request=args.max_transactions_per_request,
        request_timeout_s=args.request_timeout_s,
    )
