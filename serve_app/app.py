"""The Serve application builder: `import_path: serve_app.app:build_app` in configs/*.yaml."""

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from ray.serve import Application

from fraud_model.artifact import read_metadata
from fraud_model.engines import EngineName
from serve_app.api import DEFAULT_MAX_TRANSACTIONS
from serve_app.ingress import Ingress
from serve_app.model import DEFAULT_MAX_BATCH_SIZE, FraudModel, ModelTuning

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ARTIFACT = "artifacts/default"


class AppArgs(BaseModel):
    """The `args:` of the application in a Serve config. Unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")

    artifact_path: str = Field(
        DEFAULT_ARTIFACT,
        description="Model artifact directory; a relative path is taken from the project root.",
    )
    engine: EngineName = Field(
        "onnx",
        description="'onnx' (compiled, never unpickles) or 'sklearn' (unpickles model.joblib "
        "after its hash check; a fallback).",
    )
    max_transactions_per_request: int = Field(
        DEFAULT_MAX_TRANSACTIONS, ge=1, le=100_000, description="Limit of the batch endpoint."
    )


def resolve_artifact_path(path: str) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else PROJECT_ROOT / candidate


def build_app(args: AppArgs) -> Application:
    artifact = resolve_artifact_path(args.artifact_path)
    # Check the artifact here, when the config is applied, so a wrong path or a corrupt file
    # fails the deploy with its reason instead of crash-looping replicas.
    read_metadata(artifact)
    model = FraudModel.options(
        # Defaults; the config's `deployments:` section overrides both. Tuning lives in
        # user_config because Serve applies a user_config change to running replicas in place,
        # while any change to `args` builds new ones.
        user_config=ModelTuning().model_dump(),
        # A batch never exceeds the requests a replica holds at once: room for two full batches
        # lets one fill while the other is scored.
        max_ongoing_requests=2 * DEFAULT_MAX_BATCH_SIZE,
    ).bind(artifact_path=str(artifact), engine=args.engine)
    return Ingress.bind(model, max_transactions_per_request=args.max_transactions_per_request)
