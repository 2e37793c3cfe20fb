"""The Serve application builder: `import_path: serve_app.app:build_app` in configs/*.yaml."""

from typing import Any

from ray.serve import Application, Deployment

from serve_app.config import AppArgs
from serve_app.ingress import Ingress
from serve_app.model import CHALLENGER, FraudModel, ModelConfig

# The challenger's load is shed first: beyond this many calls waiting for a Challenger replica
# (per Ingress replica), a call fails at once with BackPressureError and is counted as
# overloaded, while the champion's queue (FraudModel's 128) is untouched.
CHALLENGER_MAX_QUEUED_REQUESTS = 8


def build_app(args: AppArgs) -> Application:
    """The application a Serve config names; FraudModel's `user_config` there picks the model,
    and, with `args.challenger`, the Challenger's `user_config` the challenger."""
    # The Challenger gets no model here: its config entry names one, or it refuses to start.
    return _graph(args, ModelConfig().model_dump(), {} if args.challenger else None)


def build_graph(
    args: AppArgs, model_config: ModelConfig, challenger_config: ModelConfig | None = None
) -> Application:
    """The graph: the Ingress (HTTP) holding a handle to the FraudModel deployment, and to the
    Challenger deployment when `args.challenger` is set. For `serve.run` from Python, with the
    models given here instead of in a config file."""
    if (args.challenger is None) != (challenger_config is None):
        raise ValueError("give challenger_config exactly when args.challenger is set")
    challenger = None if challenger_config is None else challenger_config.model_dump()
    return _graph(args, model_config.model_dump(), challenger)


def _graph(
    args: AppArgs, model_config: dict[str, Any], challenger_config: dict[str, Any] | None
) -> Application:
    # A config's `deployments:` section overrides this user_config, key by key from ModelConfig.
    model = deployment(FraudModel).options(user_config=model_config).bind()
    if challenger_config is None:
        # No challenger, no Challenger deployment: not one replica more.
        return deployment(Ingress).bind(model, args)
    challenger = challenger_deployment().options(user_config=challenger_config).bind()
    return deployment(Ingress).bind(model, args, challenger)


def challenger_deployment() -> Deployment:
    """The challenger's deployment: FraudModel's class, options and autoscaling, under its own
    name (so that a config's `deployments:` sets its model and replicas apart) and with a short
    queue."""
    return deployment(FraudModel).options(
        name=CHALLENGER, max_queued_requests=CHALLENGER_MAX_QUEUED_REQUESTS
    )


def deployment(decorated: object) -> Deployment:
    """A class as @serve.deployment left it: a Deployment, which Ray's annotations do not say."""
    if not isinstance(decorated, Deployment):
        raise TypeError(f"{decorated!r} is not a Serve deployment")
    return decorated
