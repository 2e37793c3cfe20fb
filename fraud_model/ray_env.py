"""Ray's environment for this project: every Ray variable it runs with, in one place.

`fraud-serve` sets these before it starts Ray; `python -m k8s.render` writes them into the
Dockerfile's ENV and every Ray container of the RayService, and its check fails when either
differs from here. Processes that start Ray themselves (training, the tests) set the workers'
one before Ray is imported.
"""

import os
import secrets
import socket
from collections.abc import Mapping, Sequence

# The ports each server or node takes for HAProxy and Serve's fallback proxy, and the first of
# its Ingress replicas' gRPC ports (private_haproxy).
HAPROXY_PORTS = (
    "haproxy_stats",
    "haproxy_metrics",
    "fallback_http",
    "fallback_grpc",
    "replica_grpc",
)
# Room for a server's Ingress replicas' gRPC ports: those of a rollout's old and new replicas,
# and those Serve holds back for a while after a replica stops.
REPLICA_GRPC_PORTS = 64
# Where this project's servers, nodes and tests take their ports: below Ray Serve's default range
# for the Ingress replicas' HTTP ports (30000 to 31000), the kernel's ephemeral range (32768 and
# up by default) and above Ray's default worker ports (10002 to 19999). A port chosen there and
# bound seconds later by HAProxy or a replica cannot have been taken meanwhile by a process
# binding "any free port" (Ray starts many) or by an outgoing connection's local port; one chosen
# by binding port 0 could, and a benchmark's server then failed to start ("cannot bind socket
# (Address already in use)").
# Single ports (free_port) and the replicas' gRPC ranges (free_range) come from two parts of it
# that do not meet: a single port chosen for one server must not lie in a range another server,
# or the same one, has chosen but not yet bound (a test's HAProxy found its HTTP port taken by
# its own server's replica), and ranges are whole blocks, so two never partly overlap.
QUIET_PORTS = range(20_000, 30_000)
SINGLE_PORTS = range(QUIET_PORTS.start, 26_000)
REPLICA_PORT_BLOCKS = range(
    SINGLE_PORTS.stop, QUIET_PORTS.stop - REPLICA_GRPC_PORTS + 1, REPLICA_GRPC_PORTS
)

# Under `uv run`, Ray would notice uv and build its workers a fresh virtual environment from a
# copy of the working directory; the project's own environment is already the right one.
THIS_VENV_FOR_RAY_WORKERS = {"RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}

SERVE_ENVIRONMENT = {
    # Ray Serve's fastest ingress path here (docs/BENCHMARKS.md): HAProxy in front of the
    # replicas' own HTTP servers, and the throughput-optimised request path.
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    # HAProxy replays a request whose Ingress replica closed the connection without answering
    # (it died): scoring has no side effects, so a replay is safe, and the client gets its
    # answer instead of a 500.
    "RAY_SERVE_HAPROXY_RETRY_ON": "conn-failure empty-response",
    # Serve's request metrics (ray_serve_num_http_requests and the rest) come from the Ingress
    # replicas, which count them in memory and export them in batches, and not from HAProxy,
    # which would send Serve's HAProxy manager one log line per request to parse: that parsing
    # was 6 % of the service's CPU per request at 32 clients (docs/BENCHMARKS.md).
    "RAY_SERVE_HAPROXY_METRICS_ENABLED": "0",
    # One HAProxy thread per node, not Ray's 4: on 2 cores the extra threads cost 4 % of the
    # CPU per request at 32 clients (docs/BENCHMARKS.md). One thread relays far more requests
    # a second than a node's Ingress replicas answer.
    "RAY_SERVE_HAPROXY_NBTHREAD": "1",
    # Serve's gRPC servers take messages of up to 2 GiB unless told otherwise: bound them, as the
    # HTTP API bounds its bodies, at gRPC's own default of 4 MiB (a call of 1,000 transactions
    # as columns is about 232 KB). Read by every Ray process at its start.
    "RAY_SERVE_GRPC_MAX_MESSAGE_SIZE": str(4 * 1024 * 1024),
}

# What every Ray process of the service starts with, locally and in the image alike.
LOG_ROTATION = {
    # Each Ray log (a worker's .out and .err among them) rotates at this size, keeping this many
    # old ones: at most 8 MiB x 2 = 16 MiB a log. A pod has one log per Ray process it has run,
    # about 90 on the head (docs/DEPLOY.md, "The pods' disks"), and all of them at this bound
    # must fit its 4 GiB /tmp with room to spare. Ray's default, 512 MiB x 6 = 3 GiB a log,
    # would let one chatty process fill the volume alone.
    "RAY_ROTATION_MAX_BYTES": str(8 * 1024 * 1024),
    "RAY_ROTATION_BACKUP_COUNT": "1",
}

RAY_ENVIRONMENT = THIS_VENV_FOR_RAY_WORKERS | SERVE_ENVIRONMENT | LOG_ROTATION


def private_haproxy(state_dir: str, ports: Mapping[str, int]) -> dict[str, str]:
    """HAProxy's files and ports for one server (or one node), and those of Serve's fallback
    proxy and Ingress replicas behind it: by default they are fixed paths in /tmp and fixed
    ports (8404, 9101, 8500, 9500, and 40000 on for the replicas' gRPC), which a second server on
    the machine (the tests', while the user's is running) or a second node of a local cluster
    would take over. `ports` has one for each of HAPROXY_PORTS."""
    first = ports["replica_grpc"]
    return {
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(ports["fallback_http"]),
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(ports["fallback_grpc"]),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": f"{state_dir}/haproxy.cfg",
        "RAY_SERVE_HAPROXY_SOCKET_PATH": f"{state_dir}/admin.sock",
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": state_dir,
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": f"{state_dir}/server-state",
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": f"{state_dir}/metrics.sock",
        "RAY_SERVE_HAPROXY_STATS_PORT": str(ports["haproxy_stats"]),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(ports["haproxy_metrics"]),
        # Serve 2.60 starts each Ingress replica's gRPC server with SO_REUSEPORT still on (it
        # passes gRPC the option to turn it off as a string, which gRPC ignores). So a replica
        # of a second server on the machine binds the port a first server's replica holds, both
        # taken from Serve's one default range, and the kernel splits the gRPC calls between
        # the two services: the tests' calls were answered, without a key, by the user's
        # server. Each server takes a range of its own. Serve's controller hands out the ports,
        # so the head's range is the one used.
        "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT": str(first),
        "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT": str(first + REPLICA_GRPC_PORTS - 1),
    }


def private_ports() -> dict[str, int]:
    """A port for each of HAPROXY_PORTS that nothing holds now; for the replicas' gRPC, the first
    of a block of REPLICA_GRPC_PORTS that nothing holds, so that no range lies under a running
    server's replicas."""
    ports = {name: free_port() for name in HAPROXY_PORTS if name != "replica_grpc"}
    return ports | {"replica_grpc": free_range()}


def free_port() -> int:
    """A TCP port in SINGLE_PORTS that nothing holds on 127.0.0.1 now, chosen at random (two
    servers starting at once seldom pick the same)."""
    for _ in range(200):
        port = SINGLE_PORTS[secrets.randbelow(len(SINGLE_PORTS))]
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(
        f"no free port on 127.0.0.1 from {SINGLE_PORTS.start} to {SINGLE_PORTS.stop}"
    )


def free_range(blocks: Sequence[int] = REPLICA_PORT_BLOCKS) -> int:
    """The first port of one of `blocks` (each REPLICA_GRPC_PORTS long), chosen at random, of
    which nothing holds any port now."""
    for _ in range(100):
        first = blocks[secrets.randbelow(len(blocks))]
        if all(map(unheld, range(first, first + REPLICA_GRPC_PORTS))):
            return first
    raise RuntimeError(f"found no {REPLICA_GRPC_PORTS} free ports in a row in 100 tries")


def unheld(port: int) -> bool:
    """Whether a socket could bind `port` on every IPv4 address now (it cannot where any
    socket, an IPv6 one on all addresses included, holds the port)."""
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def use_this_venv_for_ray_workers() -> None:
    """Set THIS_VENV_FOR_RAY_WORKERS in this process's environment, unless already set."""
    for name, value in THIS_VENV_FOR_RAY_WORKERS.items():
        os.environ.setdefault(name, value)
