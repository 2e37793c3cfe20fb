"""The Serve application builder: `import_path: serve_app.app:build_app` in configs/*.yaml."""

from ray.serve import Application, Deployment

from serve_app.config import AppArgs
from serve_app.ingress import Ingress
from serve_app.model import FraudModel, ModelConfig


def build_app(args: AppArgs) -> Application:
    """The application a Serve config names; FraudModel's `user_config` there picks the model."""
    return build_graph(args, ModelConfig())


def build_graph(args: AppArgs, model_config: ModelConfig) -> Application:
    """The graph: the Ingress (HTTP) holding a handle to the FraudModel deployment. For
    `serve.run` from Python, with the model given here instead of in a config file."""
    # A config's `deployments:` section overrides this user_config, key by key from ModelConfig.
    model = deployment(FraudModel).options(user_config=model_config.model_dump()).bind()
    return deployment(Ingress).bind(model, args)


def deployment(decorated: object) -> Deployment:
    """A class as @serve.deployment left it: a Deployment, which Ray's annotations do not say."""
    if not isinstance(decorated, Deployment):
        raise TypeError(f"{decorated!r} is not a Serve deployment")
    return decorated
