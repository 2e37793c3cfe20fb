"""The Serve application builder: `import_path: serve_app.app:build_app` in configs/*.yaml."""

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from ray.serve import Application

from fraud_model.artifact import read_metadata
from fraud_model.engines import EngineName
from serve_app.ingress import Ingress
from serve_app.model import DEFAULT_BATCH_WAIT_TIMEOUT_S, DEFAULT_MAX_BATCH_SIZE, FraudModel

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
    threshold: float | None = Field(
        None, ge=0, le=1, description="Override of the artifact's decision threshold."
    )
    max_batch_size: int = Field(DEFAULT_MAX_BATCH_SIZE, ge=1, le=4096)
    batch_wait_timeout_s: float = Field(DEFAULT_BATCH_WAIT_TIMEOUT_S, ge=0, le=1)


def resolve_artifact_path(path: str) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else PROJECT_ROOT / candidate


def build_app(args: AppArgs) -> Application:
    artifact = resolve_artifact_path(args.artifact_path)
    # Check the artifact here, when the config is applied, so a wrong path or a corrupt file
    # fails the deploy with its reason instead of crash-looping replicas.
    read_metadata(artifact)
    model = FraudModel.options(
        # A batch never exceeds the requests a replica holds at once: room for two full batches
        # lets one fill while the other is scored.
        max_ongoing_requests=2 * args.max_batch_size,
    ).bind(
        artifact_path=str(artifact),
        engine=args.engine,
        threshold=args.threshold,
        max_batch_size=args.max_batch_size,
        batch_wait_timeout_s=args.batch_wait_timeout_s,
    )
    return Ingress.bind(model)
