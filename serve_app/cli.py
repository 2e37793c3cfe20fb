"""`fraud-serve`: the local service.

    fraud-serve [CONFIG]         run `serve run CONFIG` in the environment this project needs
    fraud-serve apply [CONFIG]   apply CONFIG (model, threshold, batching, challenger) to the
                                 running service

CONFIG defaults to configs/serve_config.yaml. The server's own files (HAProxy's, and a note of
where its Ray dashboard is, for `apply`) are removed when it stops; Ctrl-C and SIGTERM stop it
without a stack dump.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from fraud_model.ray_env import RAY_ENVIRONMENT, private_haproxy
from serve_app.config import INGRESS, MODEL
from serve_app.loading import PROJECT_ROOT
from serve_app.routes import CHALLENGER_PATH, MODEL_PATH

DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "serve_config.yaml"
# Where each running server notes its dashboard, by Serve port: `apply CONFIG` finds the server
# CONFIG's port names, whichever other servers (the tests', say) are running.
RUNNING_DIR = Path.home() / ".cache" / "fraud-serving" / "running"
_DASHBOARD_LINE = re.compile(r"View the dashboard at \S*?(http://[\w.:-]+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def ray_environment(state_dir: str) -> dict[str, str]:
    """Environment for Ray, set before it starts."""
    return {
        **RAY_ENVIRONMENT,
        **private_haproxy(state_dir, free_port(), free_port()),
        # Serve's fallback proxy behind HAProxy listens on fixed ports (8500, 9500) otherwise.
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(free_port()),
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(free_port()),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_port(config: Path) -> int:
    return int(yaml.safe_load(config.read_text()).get("http_options", {}).get("port", 8000))


def serve(config: Path) -> int:
    """`serve run CONFIG` as a child; its output passes through, and its end ends this."""
    errors = config_errors(config)
    if errors:
        sys.stderr.write("Config refused, nothing started:\n" + "".join(f"  {e}\n" for e in errors))
        return 1
    state_dir = Path(tempfile.mkdtemp(prefix="fraud-serve-"))
    running_note = RUNNING_DIR / f"{serve_port(config)}.json"
    env = ray_environment(str(state_dir)) | dict(os.environ)  # the caller's environment wins
    child = subprocess.Popen(
        [str(Path(sys.executable).with_name("serve")), "run", str(config)],
        cwd=PROJECT_ROOT,  # serve run resolves import_path from the working directory
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        bufsize=1,
        # Ctrl-C must stop `serve run` even when this process was started with it ignored (as a
        # shell's background job is).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # Ctrl-C reaches `serve run` from the terminal, as it is in this foreground process group;
    # this process only waits for it. SIGTERM is passed on as the Ctrl-C `serve run` handles
    # (SIGTERM itself would make Ray print a stack dump). Set after the start: an ignored signal
    # would be ignored in the child too.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGINT))
    try:
        assert child.stderr is not None
        for line in child.stderr:
            sys.stderr.write(line)
            found = _DASHBOARD_LINE.search(_ANSI.sub("", line))
            if found:
                RUNNING_DIR.mkdir(parents=True, exist_ok=True)
                note = {"dashboard": found.group(1), "pid": os.getpid(), "config": str(config)}
                running_note.write_text(json.dumps(note))
        code = child.wait()
    finally:
        if running_note.exists() and json.loads(running_note.read_text())["pid"] == os.getpid():
            running_note.unlink()
        shutil.rmtree(state_dir, ignore_errors=True)
    # Stopped by Ctrl-C or SIGTERM is a normal end.
    return 0 if code in (0, -signal.SIGINT, 130) else code


def apply(config: Path) -> int:
    """Apply CONFIG to the running local service as `serve deploy` does (through its Ray
    dashboard, with Ray's token), then say which model it serves, or why a reload was refused,
    and how it uses its challenger, if any."""
    errors = config_errors(config)
    if errors:
        sys.stderr.write("Config refused, nothing applied:\n" + "".join(f"  {e}\n" for e in errors))
        return 1
    port = serve_port(config)
    running_note = RUNNING_DIR / f"{port}.json"
    if not running_note.exists():
        sys.stderr.write(f"No fraud-serve is serving port {port} (the port {config} names).\n")
        return 1
    dashboard = json.loads(running_note.read_text())["dashboard"]
    env = dict(os.environ) | {"RAY_AUTH_MODE": "token"}  # local Ray clusters demand the token
    deploy = subprocess.run(
        [str(Path(sys.executable).with_name("serve")), "deploy", "-a", dashboard, str(config)],
        env=env,
        capture_output=True,
        text=True,
    )
    if deploy.returncode != 0:
        sys.stderr.write(deploy.stderr)
        return deploy.returncode
    return report_model(port, config) or report_challenger(port, config)


def config_errors(config: Path) -> list[str]:
    """What the replicas would refuse in CONFIG (serve_app.serve_config)."""
    from serve_app.serve_config import config_errors as errors_of

    try:
        document = yaml.safe_load(config.read_text())
    except (OSError, yaml.YAMLError) as error:
        return [f"{config} is not a Serve config: {error}"]
    return errors_of(document)


def report_model(port: int, config: Path, timeout_s: float = 60) -> int:
    """Wait until the replicas took CONFIG's model (or refused it), and say which."""
    (application,) = yaml.safe_load(config.read_text())["applications"]
    model = next(d for d in application["deployments"] if d["name"] == MODEL)
    from serve_app.model import ModelConfig

    wanted = model.get("user_config", {}).get("artifact_uri", ModelConfig().artifact_uri)
    keys = json.loads(os.environ.get("FRAUD_OPERATOR_KEYS", "[]"))
    headers = {"Authorization": f"Bearer {keys[0]}"} if keys else {}
    deadline = time.monotonic() + timeout_s
    request = urllib.request.Request(f"http://127.0.0.1:{port}{MODEL_PATH}", headers=headers)
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                info = json.loads(answer.read())
        except (OSError, ValueError):  # not up yet, or an error answer
            info = {}
        if info:
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
    sys.stderr.write(f"The service did not report serving {wanted} within {timeout_s:g} s.\n")
    return 1


def report_challenger(port: int, config: Path, timeout_s: float = 60) -> int:
    """With a challenger in CONFIG, wait until the Ingress uses it as CONFIG says and its model
    answers (its first replica may have to start), and say which model it is, or why none."""
    (application,) = yaml.safe_load(config.read_text())["applications"]
    ingress: dict[str, Any] = next(
        (d for d in application["deployments"] if d["name"] == INGRESS), {}
    )
    wanted = (ingress.get("user_config") or {}).get("challenger")
    if not wanted:
        return 0
    keys = json.loads(os.environ.get("FRAUD_OPERATOR_KEYS", "[]"))
    headers = {"Authorization": f"Bearer {keys[0]}"} if keys else {}
    url = f"http://127.0.0.1:{port}{CHALLENGER_PATH}"
    deadline = time.monotonic() + timeout_s
    info: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, timeout=10) as answer:
                info = json.loads(answer.read())
        except (OSError, ValueError):  # not configured yet (404), or not up
            info = {}
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
    sys.stderr.write(f"The challenger did not answer within {timeout_s:g} s ({unavailable}).\n")
    return 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = serve
    if args and args[0] == "apply":
        command, args = apply, args[1:]
    if len(args) > 1 or (args and args[0].startswith("-")):
        sys.stderr.write(__doc__ or "")
        return 2
    config = Path(args[0]).resolve() if args else DEFAULT_CONFIG
    return command(config)
