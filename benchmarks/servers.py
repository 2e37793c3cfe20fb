"""Start and stop the servers under test, each on its own loopback port."""

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import yaml

from benchmarks.cpu import ProcessStat, process_table, session_processes
from fraud_model.ray_env import free_port
from serve_app.config import INGRESS
from serve_app.routes import HEALTH_PATH

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Ray Serve's ingress modes (see docs/BENCHMARKS.md); fraud-serve's own default is the last.
PROXY_MODES: dict[str, dict[str, str]] = {
    "default": {"RAY_SERVE_ENABLE_HA_PROXY": "0", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "0"},
    "throughput": {"RAY_SERVE_ENABLE_HA_PROXY": "0", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
    "haproxy": {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "0"},
    "haproxy+throughput": {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
}
# Not an ingress mode: the README's mode without the decision ledger, to show what it costs.
NO_LEDGER = "haproxy+throughput,no-ledger"
# Not an ingress mode either: Serve's background work at a slower pace than its defaults (request
# metrics exported every 100 ms, the controller's loop every 0.1 s), to see what it costs.
QUIETER_BACKGROUND = "haproxy+throughput,quieter-background"
SERVER_VARIANTS = PROXY_MODES | {
    NO_LEDGER: PROXY_MODES["haproxy+throughput"],
    QUIETER_BACKGROUND: PROXY_MODES["haproxy+throughput"]
    | {"RAY_SERVE_METRICS_EXPORT_INTERVAL_MS": "1000", "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "0.5"},
}


class Server(NamedTuple):
    url: str
    session_id: int  # every process of the server (Ray's included) is in this session
    grpc_port: int | None = None  # this service's gRPC port on 127.0.0.1


@contextlib.contextmanager
def seed_server(artifact: Path, workers: int = 2) -> Iterator[Server]:
    """The plain FastAPI app: uvicorn with `workers` processes, sklearn per request."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "benchmarks.seed_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]
    env = os.environ | {"FRAUD_SEED_ARTIFACT": str(artifact)}
    with running(command, env, f"http://127.0.0.1:{port}") as server:
        yield server


@contextlib.contextmanager
def serve_server(mode: str, application: dict | None = None) -> Iterator[Server]:
    """This service as the README starts it (`uv run fraud-serve CONFIG`) on a free port.

    `application` replaces the shipped config's application (for the no-op model), keeping the
    shipped args and settings of the Ingress deployment, so that only the model differs.
    """
    config = yaml.safe_load((PROJECT_ROOT / "configs" / "serve_config.yaml").read_text())
    port = on_free_ports(config)
    if application is not None:
        (shipped,) = config["applications"]
        ingress = [entry for entry in shipped["deployments"] if entry["name"] == INGRESS]
        config["applications"] = [application | {"args": shipped["args"], "deployments": ingress}]
    with tempfile.TemporaryDirectory(prefix="fraud-bench-") as workdir:
        # The ledger in the run's own directory (never the project's), or none at all.
        for app in config["applications"]:
            ledger = None if mode == NO_LEDGER else {"location": f"{workdir}/ledger"}
            app["args"] = app.get("args", {}) | {"ledger": ledger}
        config_path = Path(workdir) / "serve_config.yaml"
        config_path.write_text(yaml.safe_dump(config))
        env = os.environ | SERVER_VARIANTS[mode] | {"RAY_ADDRESS": "local"}
        with running([*FRAUD_SERVE, str(config_path)], env,
                      f"http://127.0.0.1:{port}") as server:  # fmt: skip
            yield server._replace(grpc_port=config["grpc_options"]["port"])


# This environment's own fraud-serve (the harness runs under `uv run`, wherever uv is: the quick
# start puts it in .uv/bin, not on PATH).
FRAUD_SERVE = [str(Path(sys.executable).with_name("fraud-serve"))]


def on_free_ports(config: dict) -> int:
    """Move a Serve config's HTTP port, and its gRPC port if it has one, to free ports, so that
    it runs beside a server on the shipped ones; returns the HTTP port."""
    config["http_options"]["port"] = free_port()
    if "grpc_options" in config:
        config["grpc_options"]["port"] = free_port()
    port: int = config["http_options"]["port"]
    return port


@contextlib.contextmanager
def running(
    command: list[str],
    env: dict,
    url: str,
    timeout_s: float = 180,
    log_path: Path | None = None,
    cwd: Path = PROJECT_ROOT,
    health_path: str = HEALTH_PATH,
) -> Iterator[Server]:
    """Run `command` in its own process group until `url` + `health_path` answers 200; stop it
    afterwards."""
    log_path = log_path or Path(tempfile.mkstemp(prefix="fraud-bench-", suffix=".log")[1])
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            wait_until_healthy(url + health_path, process, timeout_s, log_path)
            yield Server(url, process.pid)  # a new session's id is its first process's pid
        finally:
            stop(process)


def wait_until_healthy(
    health_url: str, process: subprocess.Popen, timeout_s: float, log: Path
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited early; see {log}")
        try:
            if httpx.get(health_url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{health_url} not healthy after {timeout_s} s; see {log}")
        time.sleep(1)


def stop(process: subprocess.Popen) -> None:
    """Ctrl-C the process group (serve run then stops its Ray); kill it if that hangs. Processes
    of the server that started sessions of their own (BentoML's workers), which the group's
    signal does not reach, get time to go with their parent and are killed if they stay."""
    if process.poll() is None:
        escaped = [
            child
            for child in session_processes(process.pid, process_table())
            if child.session != process.pid
        ]
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        kill_survivors(escaped)


def kill_survivors(processes: list[ProcessStat], grace_s: float = 10) -> None:
    deadline = time.monotonic() + grace_s
    while True:
        table = process_table()
        alive = [p for p in processes if p.pid in table and table[p.pid].started == p.started]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for survivor in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(survivor.pid, signal.SIGKILL)
