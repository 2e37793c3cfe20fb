"""`fraud-serve apply [CONFIG]`: apply CONFIG (model, threshold, decision rule, batching,
challenger) to the running local service, as `serve deploy` does through its Ray dashboard with
Ray's token, then say which model it serves, or why a reload was refused, and how it uses its
challenger.

What the replicas serve is read from the operator endpoints, with an operator key: the one
`fraud-serve --with-keys` made for this run (found in its running note), else the first of
FRAUD_OPERATOR_KEYS in this shell. A refused check (401, 403) is said at once, with what to set:
it never passes for "not serving yet".
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from serve_app.config import INGRESS, MODEL
from serve_app.local_service import RUNNING_DIR, serve_port
from serve_app.routes import CHALLENGER_PATH, MODEL_PATH

WAIT_S = 60


class CheckRefused(RuntimeError):
    """The service refused apply's check of what it serves (401 or 403)."""


def apply(config: Path) -> int:
    errors = config_errors(config)
    if errors:
        sys.stderr.write("Config refused, nothing applied:\n" + "".join(f"  {e}\n" for e in errors))
        return 1
    port = serve_port(config)
    running_note = RUNNING_DIR / f"{port}.json"
    if not running_note.exists():
        sys.stderr.write(f"No fraud-serve is serving port {port} (the port {config} names).\n")
        return 1
    note = json.loads(running_note.read_text())
    env = dict(os.environ) | {"RAY_AUTH_MODE": "token"}  # local Ray clusters demand the token
    deploy = subprocess.run(
        [
            str(Path(sys.executable).with_name("serve")),
            "deploy",
            "-a",
            note["dashboard"],
            str(config),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if deploy.returncode != 0:
        sys.stderr.write(deploy.stderr)
        return deploy.returncode
    headers = operator_headers(note)
    try:
        return report_model(port, config, headers) or report_challenger(port, config, headers)
    except CheckRefused as refused:
        sys.stderr.write(f"{refused}\n")
        return 1


def operator_headers(note: dict[str, Any]) -> dict[str, str]:
    key = note.get("operator_key")
    if key is None:
        keys = json.loads(os.environ.get("FRAUD_OPERATOR_KEYS", "[]"))
        key = keys[0] if keys else None
    return {"Authorization": f"Bearer {key}"} if key else {}


def config_errors(config: Path) -> list[str]:
    """What the replicas would refuse in CONFIG (serve_app.serve_config)."""
    from serve_app.serve_config import config_errors as errors_of

    try:
        document = yaml.safe_load(config.read_text())
    except (OSError, yaml.YAMLError) as error:
        return [f"{config} is not a Serve config: {error}"]
    return errors_of(document)


def fetch(url: str, headers: dict[str, str]) -> dict[str, Any]:
    """The endpoint's JSON; {} while it is not there yet (not up, 404); CheckRefused for a
    refused key."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            found: dict[str, Any] = json.loads(answer.read())
            return found
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            what = "no" if not headers else "this"
            raise CheckRefused(
                "The config was applied, but the service refused apply's check of what it "
                f"serves ({error.code} at GET {path_of(url)} with {what} operator key). apply "
                "needs the service's operator key: start the service with `fraud-serve "
                "--with-keys` (apply then finds its key), or set FRAUD_OPERATOR_KEYS in this "
                "shell to the keys the service was started with."
            ) from None
        return {}
    except (OSError, ValueError):
        return {}


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def report_model(port: int, config: Path, headers: dict[str, str]) -> int:
    """Wait until the replicas took CONFIG's model (or refused it), and say which."""
    from serve_app.model import ModelConfig

    (application,) = yaml.safe_load(config.read_text())["applications"]
    model = next(d for d in application["deployments"] if d["name"] == MODEL)
    wanted = model.get("user_config", {}).get("artifact_uri", ModelConfig().artifact_uri)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        info = fetch(f"http://127.0.0.1:{port}{MODEL_PATH}", headers)
        refused = info.get("last_reload_error") or {}
        if refused.get("artifact_uri") == wanted:
            sys.stderr.write(
                f"Reload refused: {refused['error']}\n"
                f"Still serving {info['model_version']} from {info['artifact_uri']}.\n"
            )
            return 1
        if info.get("artifact_uri") == wanted:
            sys.stdout.write(
                f"Serving {info['model_version']} from {info['artifact_uri']}, threshold "
                f"{info['threshold']}\n"
            )
            return 0
        time.sleep(1)
    sys.stderr.write(f"The service did not report serving {wanted} within {WAIT_S:g} s.\n")
    return 1


def report_challenger(port: int, config: Path, headers: dict[str, str]) -> int:
    """With a challenger in CONFIG, wait until the Ingress uses it as CONFIG says and its model
    answers (its first replica may have to start), and say which model it is, or why none."""
    (application,) = yaml.safe_load(config.read_text())["applications"]
    ingress: dict[str, Any] = next(
        (d for d in application["deployments"] if d["name"] == INGRESS), {}
    )
    wanted = (ingress.get("user_config") or {}).get("challenger")
    if not wanted:
        return 0
    deadline = time.monotonic() + WAIT_S
    info: dict[str, Any] = {}
    while time.monotonic() < deadline:
        info = fetch(f"http://127.0.0.1:{port}{CHALLENGER_PATH}", headers)
        applied = info and all(info.get(key) == value for key, value in wanted.items())
        model = info.get("model") or {}
        if applied and model.get("idle"):
            sys.stderr.write(f"Challenger has no model: {model['idle']}\n")
            return 1
        if applied and model.get("model_version"):
            sys.stdout.write(
                f"Challenger {model['model_version']} from {model['artifact_uri']}, "
                f"{info['mode']} for {info['share']:.0%} of requests; comparison at "
                f"GET {CHALLENGER_PATH}\n"
            )
            return 0
        time.sleep(1)
    unavailable = info.get("model_unavailable") if info else "the Ingress does not use it yet"
    sys.stderr.write(f"The challenger did not answer within {WAIT_S:g} s ({unavailable}).\n")
    return 1
