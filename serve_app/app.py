"""The Serve application builder: `import_path: serve_app.app:build_app` in configs/*.yaml."""

from ray.serve import Application, Deployment

from serve_app.config import (
    CHALLENGER,
    INGRESS,
    MODEL,
    AppArgs,
    ChallengerAutoscaling,
    IngressConfig,
)
from serve_app.ingress import Ingress
from serve_app.model import FraudModel, ModelConfig

# The challenger's load is shed first: beyond this many calls waiting for a Challenger replica
# (per Ingress replica), a call fails at once with BackPressureError and is counted as
# overloaded, while the champion's queue (FraudModel's 128) is untouched.
CHALLENGER_MAX_QUEUED_REQUESTS = 8


def build_app(args: AppArgs) -> Application:
    """The application a Serve config names. FraudModel's `user_config` there picks the model;
    a challenger is the Challenger's `user_config` and the Ingress's (docs/CHALLENGER.md)."""
    return build_graph(args, ModelConfig())


def build_graph(
    args: AppArgs,
    model_config: ModelConfig,
    challenger_config: ModelConfig | None = None,
    ingress_config: IngressConfig | None = None,
) -> Application:
    """The graph: the Ingress (HTTP) holding handles to the FraudModel deployment and to the
    Challenger, a second deployment of its class that has no replica while nothing is sent to
    it. For `serve.run` from Python, with the configs given here instead of in a config file."""
    # A config's `deployments:` section overrides each user_config as a whole; each is
    # validated, key by key, by its replicas (ModelConfig, IngressConfig).
    model = (
        deployment(FraudModel)
        .options(name=MODEL, user_config=model_config.model_dump())
        .bind(role="champion")
    )
    # The Challenger gets no model unless the config names one: a replica without one refuses
    # to start, rather than serve the bundled default as a "challenger".
    challenger = (
        challenger_deployment()
        .options(user_config=challenger_config.model_dump() if challenger_config else {})
        .bind(role="challenger")
    )
    ingress = deployment(Ingress).options(
        name=INGRESS, user_config=(ingress_config or IngressConfig()).model_dump()
    )
    return ingress.bind(model, args, challenger)


def challenger_deployment() -> Deployment:
    """The challenger's deployment: FraudModel's class and options under its own name (so that a
    config sets its model and replicas apart), scaling down to no replica while unused, and with
    a short queue."""
    return deployment(FraudModel).options(
        name=CHALLENGER,
        max_queued_requests=CHALLENGER_MAX_QUEUED_REQUESTS,
        autoscaling_config=ChallengerAutoscaling().model_dump(),
    )


def deployment(decorated: object) -> Deployment:
    """A class as @serve.deployment left it: a Deployment, which Ray's annotations do not say."""
    if not isinstance(decorated, Deployment):
        raise TypeError(f"{decorated!r} is not a Serve deployment")
    return decorated
