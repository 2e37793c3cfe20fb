"""The Serve application builder: `import_path: serve_app.app:build_app` in configs/*.yaml."""

from ray.serve import Application

from serve_app.config import AppArgs
from serve_app.ingress import Ingress
from serve_app.model import DEFAULT_MAX_BATCH_SIZE, FraudModel, ModelConfig


def build_app(args: AppArgs) -> Application:
    """The application a Serve config names; FraudModel's `user_config` there picks the model."""
    return build_graph(args, ModelConfig())


def build_graph(args: AppArgs, model_config: ModelConfig) -> Application:
    """The graph: the Ingress (HTTP) holding a handle to the FraudModel deployment. For
    `serve.run` from Python, with the model given here instead of in a config file."""
    model = FraudModel.options(
        # Defaults; a config's `deployments:` section overrides both.
        user_config=model_config.model_dump(),
        # A batch never exceeds the requests a replica holds at once: room for two full batches
        # lets one fill while the other is scored.
        max_ongoing_requests=2 * DEFAULT_MAX_BATCH_SIZE,
    ).bind()
    return Ingress.bind(model, args)
