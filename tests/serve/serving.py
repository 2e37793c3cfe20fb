"""Helpers of the Serve tier: the shipped config, deploying an app the way `serve deploy` does,
reading Ray's metrics endpoint, listing replicas."""

import json
from pathlib import Path
from typing import Any

import httpx
import yaml

from serve_app.app import AppArgs
from tests.helpers import PROJECT_ROOT


def shipped_config() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "configs" / "serve_config.yaml").read_text())


def shipped_app_args(ledger: Path | None = None, **overrides: object) -> AppArgs:
    """The args of configs/serve_config.yaml, as Serve would validate them, with overrides; the
    decision ledger in `ledger` (written every half second), or off."""
    (application,) = shipped_config()["applications"]
    return AppArgs.model_validate(application["args"] | ledger_args(ledger) | overrides)


def ledger_args(ledger: Path | None) -> dict[str, Any]:
    """The app args that put the decision ledger in `ledger`, or turn it off: a test never
    writes into the project's own directory."""
    if ledger is None:
        return {"ledger": None}
    return {"ledger": {"location": str(ledger), "flush_interval_s": 0.5}}


def deploy_app(
    name: str,
    artifact_uri: str,
    *,
    user_config: dict | None = None,
    model_options: dict | None = None,
    args: dict | None = None,
    wait: bool = True,
    more_deployments: list[dict] | None = None,
    logs_dir: Path | None = None,
    ledger: Path | None = None,
) -> str:
    """Apply a Serve config of one app, as `serve deploy` (and KubeRay) would; returns its
    route prefix. It is the shipped config's app, where FraudModel serves `artifact_uri`, with
    more of its `user_config` and other `model_options` if given; its ledger in `ledger` (else
    none); `args` are added to the shipped args, and `more_deployments` (the Challenger's entry,
    the Ingress's options) to its `deployments:`, each merged into the shipped entry of its
    name. Like any config, it replaces the apps an earlier config deployed (not the `fraud_app`
    fixture's)."""
    # The client `serve deploy` ends up in: its public road is the dashboard's REST API, which
    # the test cluster does not start (it would add seconds and a port to every session).
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    shipped = shipped_config()
    (application,) = shipped["applications"]
    model = {
        "name": "FraudModel",
        **(model_options or {}),
        "user_config": {"artifact_uri": artifact_uri, **(user_config or {})},
    }
    app = {
        "name": name,
        "route_prefix": f"/{name}",
        "import_path": "serve_app.app:build_app",
        "args": application["args"] | ledger_args(ledger) | (args or {}),
        "deployments": merged_by_name(
            application["deployments"], [model, *(more_deployments or [])]
        ),
        # JSON lines, as the shipped config's
        "logging_config": shipped["logging_config"]
        | ({"logs_dir": str(logs_dir)} if logs_dir else {}),
    }
    config = ServeDeploySchema.model_validate({"applications": [app]})
    _get_global_client().deploy_apps(config, _blocking=wait)
    return app["route_prefix"]


def ingress_with(env: dict[str, str]) -> dict[str, Any]:
    """One Ingress replica whose process has `env` (keys, an S3 endpoint): a deployments entry."""
    return {
        "name": "Ingress",
        "num_replicas": 1,
        "ray_actor_options": {"num_cpus": 0, "runtime_env": {"env_vars": env}},
    }


def deploy_keyed_app(
    name: str, artifact: Path, scoring: str, operator: str, ledger: Path | None = None
) -> str:
    """The app with these API keys and no anonymous access (one Ingress replica), its ledger in
    `ledger` (else none); its prefix."""
    keys = {"FRAUD_API_KEYS": f'["{scoring}"]', "FRAUD_OPERATOR_KEYS": f'["{operator}"]'}
    return deploy_app(
        name,
        str(artifact),
        args={"allow_anonymous": False},
        more_deployments=[ingress_with(keys)],
        ledger=ledger,
    )


def merged_by_name(shipped: list[dict], more: list[dict]) -> list[dict]:
    """The shipped deployment entries, each updated by the entry of its name in `more` (key by
    key), then the entries of `more` for other deployments."""
    entries = {entry["name"]: dict(entry) for entry in shipped}
    for entry in more:
        entries[entry["name"]] = entries.get(entry["name"], {}) | entry
    return list(entries.values())


def metrics_text() -> str:
    """Ray's Prometheus metrics endpoint on the test cluster's node."""
    import ray

    (node,) = [node for node in ray.nodes() if node["Alive"]]  # the test cluster has one
    return httpx.get(f"http://127.0.0.1:{node['MetricsExportPort']}/metrics", timeout=10).text


def metric_value(name: str, **tags: str) -> float:
    """The sum of a metric's samples whose labels include `tags` (0 if none is exported yet)."""
    wanted = [f'{key}="{value}"' for key, value in tags.items()]
    total = 0.0
    for line in metrics_text().splitlines():
        if line.startswith(f"{name}{{") and all(tag in line for tag in wanted):
            total += float(line.rsplit(" ", 1)[1])
    return total


def replica_names(app: str, deployment: str = "FraudModel") -> set[str]:
    import ray

    actors = ray.util.list_named_actors(all_namespaces=True)
    return {actor["name"] for actor in actors if f"{app}#{deployment}" in actor["name"]}


def json_log_records(pattern: str, directory: Path) -> list[dict]:
    """The JSON records of the log files matching `pattern` (e.g. replica_fraud_*.log) in
    `directory`, where an app's `logging_config` sent them."""
    records = []
    for file in directory.glob(pattern):
        for line in file.read_text().splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
    return records
