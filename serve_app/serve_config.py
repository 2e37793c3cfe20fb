"""What the replicas would refuse in a Serve config, found before it is applied.

Serve checks neither the application's args nor a deployment's user_config until a replica reads
it, and a running replica keeps its last good one; nor does it know that a model replica can only
batch the requests it holds at once. `fraud-serve` checks a config before it starts or applies
it, and `python -m k8s.render` before it writes the production one.
"""

from typing import Any

from pydantic import ValidationError

from serve_app.app import deployment as deployment_of
from serve_app.config import INGRESS, MODEL_DEPLOYMENTS, AppArgs, IngressConfig
from serve_app.model import MAX_ONGOING_PER_BATCH, FraudModel, ModelConfig


def config_errors(config: Any) -> list[str]:
    """Every error of a Serve config (a parsed YAML document), each naming where it is."""
    try:
        applications = config["applications"]
        iter(applications)
    except (TypeError, KeyError) as error:
        return [f"the config is not a Serve config: it lists no applications ({error!r})"]
    errors = []
    for application in applications:
        try:
            args = AppArgs.model_validate(application.get("args") or {})
        except ValidationError as error:
            errors.append(f"args: {error}")
            continue
        for deployment in application.get("deployments", []):
            errors += deployment_errors(deployment, args)
    return errors


def deployment_errors(deployment: dict[str, Any], args: AppArgs) -> list[str]:
    name, user_config = deployment["name"], deployment.get("user_config")
    try:
        if name == INGRESS and user_config is not None:
            context = {"request_timeout_s": args.request_timeout_s}
            IngressConfig.model_validate(user_config, context=context)
        elif name in MODEL_DEPLOYMENTS:
            tuning = ModelConfig.model_validate(user_config or {})
            return batching_errors(name, deployment, tuning)
    except ValidationError as error:
        return [f"{name}.user_config: {error}"]
    return []


def batching_errors(name: str, entry: dict[str, Any], tuning: ModelConfig) -> list[str]:
    """A batch never holds more requests than the replica does at once: room for
    MAX_ONGOING_PER_BATCH full batches lets one fill while another is scored."""
    default = deployment_of(FraudModel).max_ongoing_requests
    ongoing: int = entry.get("max_ongoing_requests", default)
    needed = MAX_ONGOING_PER_BATCH * tuning.max_batch_size
    if ongoing < needed:
        return [
            f"{name}.max_ongoing_requests ({ongoing}) must be at least {MAX_ONGOING_PER_BATCH} "
            f"times user_config.max_batch_size ({tuning.max_batch_size}): set it to {needed} "
            "or more"
        ]
    return []
