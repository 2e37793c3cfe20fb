"""`fraud-serve [CONFIG]`: run `serve run CONFIG` in the environment this project needs."""

import os
import socket
import sys
import tempfile
from pathlib import Path

from serve_app.loading import PROJECT_ROOT

DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "serve_config.yaml"

# Ray Serve's fastest ingress path here (docs/BENCHMARKS.md): HAProxy in front of the replicas'
# own HTTP servers, and the throughput-optimised request path. Set either to 0 to turn it off.
# HAProxy also replays a request whose Ingress replica closed the connection without answering
# (it died): scoring has no side effects, so a replay is safe, and the client gets its answer
# instead of a 500.
FAST_INGRESS = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_HAPROXY_RETRY_ON": "conn-failure empty-response",
}


def ray_environment(state_dir: str) -> dict[str, str]:
    """Environment for Ray, set before it starts."""
    return {
        # Ray would otherwise notice `uv run` and rebuild a virtualenv for its workers from a
        # copy of the working directory; this venv is already right.
        "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
        **FAST_INGRESS,
        # HAProxy's files default to fixed paths in /tmp, which a second server (the tests,
        # while the user's is running) would take over: give each server its own.
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": f"{state_dir}/haproxy.cfg",
        "RAY_SERVE_HAPROXY_SOCKET_PATH": f"{state_dir}/admin.sock",
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": state_dir,
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": f"{state_dir}/server-state",
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": f"{state_dir}/metrics.sock",
        # HAProxy's stats page and metrics listen on fixed ports (8404, 9101) otherwise.
        "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    config = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else DEFAULT_CONFIG
    state_dir = tempfile.mkdtemp(prefix="fraud-serve-")
    for name, value in ray_environment(state_dir).items():
        os.environ.setdefault(name, value)  # the caller's environment wins
    serve = Path(sys.executable).with_name("serve")
    # serve run resolves import_path from the cwd, so run it from the project root.
    os.chdir(PROJECT_ROOT)
    os.execv(serve, [str(serve), "run", str(config)])
