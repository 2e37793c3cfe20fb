"""`fraud-serve [--with-keys] [CONFIG]`: the service on this machine, `serve run CONFIG` in the
environment this project needs.

HAProxy's files live in a private directory on a short path, removed when the service stops, as
is the note that tells `fraud-serve apply` where the service's Ray dashboard is (and, with
`--with-keys`, its operator key). One line says when the service is ready to take traffic.
"""

import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from fraud_model.ray_env import RAY_ENVIRONMENT, private_haproxy, private_ports
from serve_app.loading import PROJECT_ROOT
from serve_app.routes import DOCS_PATH, HEALTH_PATH

DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "serve_config.yaml"
# Where each running service notes its dashboard, by Serve port: `apply CONFIG` finds the
# service CONFIG's port names, whichever other services (the tests', say) are running.
RUNNING_DIR = Path.home() / ".cache" / "fraud-serving" / "running"
# `serve run` starts its own Ray and has no public way to say where that Ray's dashboard is
# (ray.init's RayContext.dashboard_url is the starting process's only): it is read from the line
# Ray prints. The one place this project reads Ray's output.
_DASHBOARD_LINE = re.compile(r"View the dashboard at \S*?(http://[\w.:-]+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Serve's controller ends its own graceful shutdown with ray.kill on itself, and Ray's raylet
# then reports the task as failed, on every stop: not a warning to show after a Ctrl-C.
_CONTROLLER_STOPPED = re.compile(r"Task ServeController\.graceful_shutdown failed")
# Unix socket paths are short: HAProxy refuses one over 97 characters (and Ray derives names
# from the paths it is given), Ray one over 107, and Ray's own sit about 75 characters below its
# temporary directory (ray/session_<date>_<time>_<pid>/sockets/plasma_store). So the server's
# files go below a directory of at most MAX_BASE characters, whatever TMPDIR is.
MAX_BASE = 30
MAX_STATE_DIR = 40
STATE_PREFIX = "fraud-serve-"
READY_TIMEOUT_S = 600
GRPC_HEALTH_METHOD = "/ray.serve.RayServeAPIService/Healthz"
# Signals closer together than this are one Ctrl-C, delivered twice (see `stop`).
SAME_SIGNAL_S = 1.0


class StatePathError(RuntimeError):
    """No short enough directory for HAProxy's state."""


@dataclass(frozen=True)
class Endpoints:
    """Where a Serve config serves, as a client on this machine reaches it."""

    http: str
    grpc: str | None

    @classmethod
    def of(cls, config: dict[str, Any]) -> "Endpoints":
        http = config.get("http_options", {})
        host = http.get("host", "127.0.0.1")
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        grpc = config.get("grpc_options", {}).get("port")
        return cls(f"http://{host}:{http.get('port', 8000)}", f"{host}:{grpc}" if grpc else None)


def serve(config: Path, with_keys: bool = False) -> int:
    """`serve run CONFIG` as a child; its output passes through, and its end ends this."""
    from serve_app.apply_config import config_errors

    errors = config_errors(config)
    if errors:
        sys.stderr.write("Config refused, nothing started:\n" + "".join(f"  {e}\n" for e in errors))
        return 1
    try:
        base = short_base()
        state_dir = Path(tempfile.mkdtemp(prefix=STATE_PREFIX, dir=base))
    except StatePathError as error:
        sys.stderr.write(f"{error}\n")
        return 1
    document = yaml.safe_load(config.read_text())
    endpoints = Endpoints.of(document)
    running_note = RUNNING_DIR / f"{serve_port(config)}.json"
    keys = new_keys() if with_keys else {}
    # The caller's environment wins, but for keys this run made and TMPDIR. Ray's own temporary
    # directory goes to the short base too, unless the caller chose one; so does every child's
    # TMPDIR, where Python's multiprocessing binds its sockets (Ray's dashboard failed to start
    # below a 100-character TMPDIR).
    env = (
        ray_environment(str(state_dir))
        | {"RAY_TMPDIR": str(base)}
        | dict(os.environ)
        | keys
        | {"TMPDIR": str(base)}
    )
    child = subprocess.Popen(
        [sys.executable, "-m", "serve_app.serve_run", str(config)],
        cwd=PROJECT_ROOT,  # serve run resolves import_path from the working directory
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        bufsize=1,
        # A session of its own, with Ray's processes: the terminal's Ctrl-C goes to this
        # process only, which passes it on to `serve run` alone. Sent to every process of the
        # group, it would stop Ray's workers under Serve, whose controller then waits 30 s for
        # replicas that no longer answer, and the Ingress replicas could not write the ledger.
        start_new_session=True,
        # Ctrl-C must stop `serve run` even when this process was started with it ignored (as a
        # shell's background job is).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )

    stopping = threading.Event()
    last_signal = -math.inf

    def stop(*_: object) -> None:
        # A terminal's Ctrl-C reaches this process twice, from the terminal and from `uv run`,
        # which passes it on. Both passed to `serve run` would abort its graceful stop, the one
        # that writes the ledger: one Ctrl-C, one stop. A second Ctrl-C later still aborts.
        nonlocal last_signal
        now = time.monotonic()
        if now - last_signal < SAME_SIGNAL_S:
            return
        last_signal = now
        # The Ctrl-C `serve run` handles: it stops Serve gracefully, then its Ray. (SIGTERM
        # itself would make Ray print a stack dump.)
        stopping.set()
        child.send_signal(signal.SIGINT)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    announcer = threading.Thread(
        target=announce_when_ready, args=(endpoints, keys, child), daemon=True
    )
    announcer.start()
    assert child.stdout is not None and child.stderr is not None
    # Ray prints its processes' lines on stdout.
    threading.Thread(
        target=pass_through, args=(child.stdout, sys.stdout, stopping), daemon=True
    ).start()
    try:
        for line in child.stderr:
            if stopping.is_set() and _CONTROLLER_STOPPED.search(line):
                continue
            sys.stderr.write(line)
            found = _DASHBOARD_LINE.search(_ANSI.sub("", line))
            if found:
                note = {"dashboard": found.group(1), "pid": os.getpid(), "config": str(config)}
                if keys:
                    note["operator_key"] = json.loads(keys["FRAUD_OPERATOR_KEYS"])[0]
                write_private(running_note, json.dumps(note))
        code = child.wait()
    finally:
        if running_note.exists() and json.loads(running_note.read_text())["pid"] == os.getpid():
            running_note.unlink()
        shutil.rmtree(state_dir, ignore_errors=True)
    # Stopped by Ctrl-C or SIGTERM is a normal end.
    return 0 if code in (0, -signal.SIGINT, 130) else code


def pass_through(lines: IO[str], out: IO[str], stopping: threading.Event) -> None:
    """`lines` to `out` as they come, but for Ray's report of Serve's own stop."""
    for line in lines:
        if not (stopping.is_set() and _CONTROLLER_STOPPED.search(line)):
            out.write(line)
            out.flush()


def announce_when_ready(
    endpoints: Endpoints, keys: dict[str, str], child: subprocess.Popen[str]
) -> None:
    """One line once the health check answers: where to send traffic, and how to stop."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while child.poll() is None and time.monotonic() < deadline:
        if http_answers(endpoints.http) and (
            endpoints.grpc is None or grpc_answers(endpoints.grpc)
        ):
            break
        time.sleep(0.5)
    else:
        return
    grpc = f", gRPC on {endpoints.grpc}" if endpoints.grpc else ""
    lines = [
        f"fraud-serve is ready: {endpoints.http} (API docs at {endpoints.http}{DOCS_PATH}"
        f"{grpc}). Ctrl-C stops it."
    ]
    if keys:
        scoring = json.loads(keys["FRAUD_API_KEYS"])[0]
        operator = json.loads(keys["FRAUD_OPERATOR_KEYS"])[0]
        lines.append(
            "API keys for this run only, shown once (send `Authorization: Bearer <key>`): "
            f"scoring {scoring} , operator {operator} . `fraud-serve apply` finds the "
            "operator key itself."
        )
    sys.stderr.write("".join(f"{line}\n" for line in lines))


def http_answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + HEALTH_PATH, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def grpc_answers(target: str) -> bool:
    """Serve's gRPC health check answers through HAProxy's gRPC port: HAProxy marks its gRPC
    backends up apart from its HTTP ones, and a call between the two was refused."""
    import grpc

    with grpc.insecure_channel(target) as channel:
        healthz: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            GRPC_HEALTH_METHOD
        )
        try:
            healthz(b"", timeout=2)
        except grpc.RpcError:
            return False
    return True


def new_keys() -> dict[str, str]:
    """A scoring and an operator key for this run, as the service reads them."""
    return {
        "FRAUD_API_KEYS": json.dumps([secrets.token_urlsafe(32)]),
        "FRAUD_OPERATOR_KEYS": json.dumps([secrets.token_urlsafe(32)]),
    }


def write_private(path: Path, text: str) -> None:
    """`text` in a file only this user can read (it may hold an operator key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


def ray_environment(state_dir: str) -> dict[str, str]:
    """Environment for Ray, set before it starts."""
    return {
        **RAY_ENVIRONMENT,
        **private_haproxy(state_dir, private_ports()),
        # A stopping Ingress replica stays reachable this long so that a load balancer can
        # deregister it (30 s by default, which made every Ctrl-C take 35 s). Here HAProxy is
        # the only one, it is told of a stopping replica at once, and it replays a refused
        # connection on another replica (RAY_SERVE_HAPROXY_RETRY_ON): a fifth of a second is
        # enough, and Ctrl-C waits for it. The pods keep Serve's default.
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "0.2",
    }


def short_base() -> Path:
    """A writable directory on a short path for the server's sockets and Ray's: TMPDIR when it
    is short, else /tmp."""
    for base in (tempfile.gettempdir(), "/tmp"):
        if len(base) <= MAX_BASE and os.access(base, os.W_OK):
            return Path(base)
    raise StatePathError(
        f"The sockets of HAProxy and Ray need a directory of at most {MAX_BASE} characters, "
        f"and neither TMPDIR ({tempfile.gettempdir()}) nor /tmp is short and writable: set "
        "TMPDIR to a short writable directory."
    )


def serve_port(config: Path) -> int:
    return int(yaml.safe_load(config.read_text()).get("http_options", {}).get("port", 8000))
