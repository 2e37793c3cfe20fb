"""The RayService rehearsed on one machine: a multi-node Ray cluster started the way KubeRay
starts one, and the Serve config applied the way the operator applies it.

From the rendered k8s/rayservice.yaml, each Ray pod becomes a `ray start --block` process
group: the head with its `rayStartParams`, each worker pod of a group with `--address` of the
head, every node with `--num-cpus` and `--memory` from its container's limits, its container's
environment (Secret references resolved from what the caller passes) and, as `authOptions: token`
makes KubeRay do, `RAY_AUTH_MODE=token` and the cluster's token. Then, like the operator, the
Serve config is PUT to the head's dashboard REST API and the application's status is polled.

What cannot be the same on one machine is changed, and only that: every node gets its own free
ports (in Kubernetes each pod has its own address), worker proxies listen on their own port
(the head's is the config's), and HAProxy's files and the artifact cache are per node.

    uv run python -m k8s.local_cluster          # the rehearsal: see main()
    uv run python -m k8s.local_cluster --image localhost/fraud-scoring:rehearsal  # in containers

In container mode (ContainerRayCluster) each node is a container of the service's image, run as
its pod's spec says: user and group, read-only root filesystem, capabilities dropped, no
privilege escalation, CPU and memory limits, exactly the pod's volumes (and the two KubeRay adds:
/dev/shm in memory, /tmp/ray on the head), a Secret volume's files read-only; the command as
KubeRay writes it (`ulimit -n ...; ray start ...` with the completed rayStartParams) and the
environment it adds. They share the host's network, so the ports above are changed the same way.
"""

import argparse
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from fraud_model.ray_env import free_port, private_haproxy, private_ports
from serve_app.config import MODEL

ROOT = Path(__file__).resolve().parent.parent
RAYSERVICE = ROOT / "k8s" / "rayservice.yaml"
SERVE_API = "/api/serve/applications/"
# Seconds a stopping rehearsal node gets before it is killed.
STOP_GRACE_S = 5

logger = logging.getLogger("k8s.local_cluster")


class RehearsalError(RuntimeError):
    """The cluster or the application did not come up as KubeRay would have it."""


@dataclass(frozen=True)
class NodeSpec:
    """One Ray pod of the RayService, as `ray start` arguments and an environment."""

    name: str
    head: bool
    start_params: dict[str, str]
    env: dict[str, str]
    pod: "PodSettings | None" = None  # how the pod runs its container (container mode)
    # The files of each Secret volume, by mount path: {file name: content}.
    secret_files: dict[str, dict[str, str]] = field(default_factory=dict)


def node_specs(
    rayservice: dict, secret_values: Mapping[tuple[str, str], str], workers: int | None = None
) -> list[NodeSpec]:
    """The head and each worker pod (`replicas` of each group, or `workers` of the first).

    `secret_values[(secret name, key)]` stands in for the Kubernetes Secrets the containers'
    `secretKeyRef`s name; a reference without a value is an error, as a missing Secret is.
    """
    cluster = rayservice["spec"]["rayClusterConfig"]
    head = cluster["headGroupSpec"]
    autoscaler = bool(cluster.get("enableInTreeAutoscaling"))
    specs = [_spec("head", True, head, secret_values, autoscaler)]
    for group in cluster["workerGroupSpecs"]:
        count = group["replicas"] if workers is None else workers
        specs += [
            _spec(f"{group['groupName']}-{index}", False, group, secret_values)
            for index in range(1, count + 1)
        ]
        if workers is not None:
            break
    return specs


def _spec(
    name: str, head: bool, group: dict, secret_values: Mapping, autoscaler: bool = False
) -> NodeSpec:
    (container,) = group["template"]["spec"]["containers"]
    limits = container["resources"]["limits"]
    params = {key: str(value) for key, value in group.get("rayStartParams", {}).items()}
    # KubeRay derives these from the container's limits unless rayStartParams sets them.
    params.setdefault("num-cpus", str(int(float(limits["cpu"]))))
    params.setdefault("memory", str(quantity_bytes(limits["memory"])))
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        try:
            env[item["name"]] = secret_values[(ref["name"], ref["key"])]
        except KeyError:
            raise RehearsalError(
                f"{name}: {item['name']} needs Secret {ref['name']!r} key {ref['key']!r}"
            ) from None
    pod = pod_settings(group, head, autoscaler)
    secret_files = {}
    for mount in pod.mounts:
        if mount.kind == "secret":
            files = {k: v for (secret, k), v in secret_values.items() if secret == mount.secret}
            if not files:
                raise RehearsalError(f"{name}: volume {mount.name!r} needs Secret {mount.secret!r}")
            secret_files[mount.path] = files
    return NodeSpec(name, head, params, env, pod, secret_files)


@dataclass(frozen=True)
class Mount:
    """A volume of the pod, mounted into its Ray container."""

    name: str
    path: str
    kind: str  # "emptyDir", "memory" (an emptyDir in memory) or "secret"
    read_only: bool = False
    secret: str | None = None  # the Secret a "secret" volume projects
    file_mode: int = 0o644  # its files' mode (the volume's defaultMode)


@dataclass(frozen=True)
class PodSettings:
    """What a Ray pod's spec says about how its container runs: the image, the user, the
    security context, the CPU and memory limits and the volumes, with the two that KubeRay
    adds to every Ray container (/dev/shm in memory for the object store, and /tmp/ray on a
    head beside the autoscaler)."""

    image: str
    user: int
    group: int
    fs_group: int  # a supplementary group, owning the volumes
    read_only_root: bool
    drop_capabilities: tuple[str, ...]
    no_new_privileges: bool
    cpus: str
    memory_bytes: int
    mounts: tuple[Mount, ...]


def pod_settings(group: dict, head: bool, autoscaler: bool) -> PodSettings:
    pod = group["template"]["spec"]
    (container,) = pod["containers"]
    pod_security = pod.get("securityContext", {})
    security = container.get("securityContext", {})
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    mounts = []
    for mount in container.get("volumeMounts", []):
        file_mode = 0o644
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            medium = volume["emptyDir"].get("medium") == "Memory"
            kind, secret = ("memory" if medium else "emptyDir"), None
        elif "secret" in volume:
            kind, secret = "secret", volume["secret"]["secretName"]
            file_mode = int(volume["secret"].get("defaultMode", 0o644))
        else:
            raise RehearsalError(f"volume {mount['name']!r}: not an emptyDir or a Secret")
        read_only = bool(mount.get("readOnly")) or kind == "secret"
        mounts.append(Mount(mount["name"], mount["mountPath"], kind, read_only, secret, file_mode))
    mounts.append(Mount("shared-mem", "/dev/shm", "memory"))
    if head and autoscaler:
        mounts.append(Mount("ray-logs", "/tmp/ray", "emptyDir"))
    limits = container["resources"]["limits"]
    return PodSettings(
        image=container["image"],
        user=int(security.get("runAsUser", pod_security.get("runAsUser", 0))),
        group=int(security.get("runAsGroup", pod_security.get("runAsGroup", 0))),
        fs_group=int(pod_security.get("fsGroup", 0)),
        read_only_root=bool(security.get("readOnlyRootFilesystem")),
        drop_capabilities=tuple(security.get("capabilities", {}).get("drop", [])),
        no_new_privileges=security.get("allowPrivilegeEscalation") is False,
        cpus=str(limits["cpu"]),
        memory_bytes=quantity_bytes(limits["memory"]),
        mounts=tuple(mounts),
    )


def kuberay_start_command(spec: NodeSpec, params: Mapping[str, str]) -> list[str]:
    """The Ray container's command as KubeRay 1.7 writes it: `ray start` with the completed
    rayStartParams in key order (a "true" is a bare flag), after raising the open-file limit."""
    flags = []
    for key in sorted(params):
        value = str(params[key])
        if value.lower() == "true":
            flags.append(f"--{key}")
        elif value.lower() != "false":
            flags.append(f"--{key}={value}")
    start = " ".join(["ray", "start", *(["--head"] if spec.head else []), *flags])
    return ["/bin/bash", "-c", "--", f"ulimit -n ${{RAY_START_ULIMIT_OPEN_FILES:-65536}}; {start}"]


def quantity_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * factor)
    return int(quantity)


@dataclass
class RayNode:
    spec: NodeSpec
    process: subprocess.Popen
    ports: dict[str, int]
    log: Path

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Every process of this node (`ray start`, raylet, agents, workers), as when its pod
        goes: they all share the session `ray start` began."""
        for pid in self.pids():
            with suppress(ProcessLookupError):
                os.kill(pid, sig)

    def pids(self) -> list[int]:
        """This node's processes, as this machine numbers them."""
        return session_members(self.process.pid)

    def alive(self) -> bool:
        return self.process.poll() is None


def session_members(session: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == session:
                    members.append(int(entry))
            except (ProcessLookupError, PermissionError):
                continue
    return members


@dataclass
class LocalRayCluster:
    """A head and workers on this machine, each its own `ray start --block` process group."""

    specs: list[NodeSpec]
    work_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_hex(32))
    nodes: list[RayNode] = field(default_factory=list)
    # Each node's copy of a Secret volume: (the Secret's name, its directory on this machine).
    secret_dirs: list[tuple[str, Path]] = field(default_factory=list)

    @property
    def head(self) -> RayNode:
        return self.nodes[0]

    @property
    def gcs_address(self) -> str:
        return f"127.0.0.1:{self.head.ports['gcs']}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.head.ports['dashboard']}"

    def client_env(self) -> dict[str, str]:
        """What a client of this cluster (`ray` CLI, a driver) needs in its environment."""
        return {
            "RAY_ADDRESS": self.gcs_address,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": self.token,
        }

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def start(self, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        head, *workers = self.specs
        self.nodes.append(self._start_node(head))
        self._wait(lambda: self._dashboard_answers(), deadline, "the head's dashboard")
        # One at a time: nodes on one machine share the session directory, and two starting at
        # once can pick the same socket name for their object stores.
        for count, spec in enumerate(workers, start=2):
            self.nodes.append(self._start_node(spec))
            self.wait_for_nodes(count, deadline)

    def add_node(self, spec: NodeSpec, timeout_s: float = 120) -> RayNode:
        """A new pod of a group (KubeRay replacing a lost one): a new node with the spec."""
        node = self._start_node(spec)
        self.nodes.append(node)
        alive = len([n for n in self.nodes if n.alive()])
        self.wait_for_nodes(alive, time.monotonic() + timeout_s)
        return node

    def update_secret(self, secret: str, files: Mapping[str, str]) -> None:
        """Change a Secret's files in every node's volume as the kubelet does when the Secret
        changes: each file replaced whole, at once, with its owner and mode."""
        for name, directory in self.secret_dirs:
            if name != secret:
                continue
            for file, content in files.items():
                target, staged = directory / file, directory / f".{file}.updating"
                staged.write_text(content)
                if target.exists():
                    kept = target.stat()
                    os.chown(staged, kept.st_uid, kept.st_gid)
                    staged.chmod(kept.st_mode & 0o777)
                os.replace(staged, target)

    def wait_for_nodes(self, count: int, deadline: float) -> None:
        self._wait(lambda: len(self.alive_node_ids()) >= count, deadline, f"{count} nodes")

    def alive_node_ids(self) -> dict[str, bool]:
        """node id -> is head, for every node the GCS has as alive."""
        answer = httpx.get(
            f"{self.dashboard_url}/nodes?view=summary", headers=self.auth_headers(), timeout=10
        ).json()
        return {
            node["raylet"]["nodeId"]: bool(node["raylet"].get("isHeadNode"))
            for node in answer["data"]["summary"]
            if node["raylet"]["state"] == "ALIVE"
        }

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.kill(signal.SIGTERM)
        # A rehearsal's end needs no graceful drain: what is left after a few seconds is killed.
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and any(node.pids() for node in self.nodes):
            time.sleep(0.5)
        for node in self.nodes:
            node.kill(signal.SIGKILL)
            node.process.wait(timeout=10)

    def _start_node(self, spec: NodeSpec) -> RayNode:
        # Short names: HAProxy's socket paths (this, a node id, a file name) must fit in 97.
        state = self.work_dir / f"n{len(self.nodes)}"
        state.mkdir(parents=True)
        ports = node_ports()
        args = [f"--{key}={value}" for key, value in spec.start_params.items()]
        args += [
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--metrics-export-port={ports['metrics']}",
            f"--dashboard-agent-listen-port={ports['agent']}",
            "--object-store-memory=300000000",  # not a share of this machine's memory
            "--disable-usage-stats",
        ]
        if spec.head:
            ports["gcs"], ports["dashboard"] = free_port(), free_port()
            args += [
                "--head",
                f"--port={ports['gcs']}",
                f"--dashboard-port={ports['dashboard']}",
                f"--ray-client-server-port={ports['client']}",
                f"--temp-dir={self.work_dir / 'ray'}",
            ]
            args = [a for a in args if not a.startswith("--dashboard-host=")]
            args.append("--dashboard-host=127.0.0.1")  # all of this stays on the loopback
        else:
            args.append(f"--address={self.gcs_address}")
        env = os.environ | spec.env | self.extra_env | self._node_env(spec, state, ports)
        log = state / "ray-start.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [str(Path(sys.executable).with_name("ray")), "start", *args],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own session: the node's processes, killable as one
                cwd=ROOT,
            )
        logger.info("Started Ray node %s (ray start pid %d, log %s)", spec.name, process.pid, log)
        return RayNode(spec, process, ports, log)

    def _node_env(self, spec: NodeSpec, state: Path, ports: dict[str, int]) -> dict[str, str]:
        env = {
            # What authOptions: {mode: token} makes KubeRay put in every Ray container.
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": self.token,
            # Per node, as each pod has its own /tmp and cache volume and its own address.
            **private_haproxy(str(state), ports),
            "FRAUD_ARTIFACT_CACHE": str(state / "artifact-cache"),
        }
        # A Secret volume's files, in a directory of the node's own; what names the mount path
        # names that directory.
        for path, files in spec.secret_files.items():
            directory = state / f"secret{len(env)}"
            directory.mkdir()
            for file, content in files.items():
                (directory / file).write_text(content)
            env |= {name: str(directory) for name, value in spec.env.items() if value == path}
            assert spec.pod is not None
            (secret,) = [m.secret for m in spec.pod.mounts if m.path == path and m.secret]
            self.secret_dirs.append((secret, directory))
        if not spec.head:
            ports["serve"], ports["grpc"] = free_port(), free_port()
            env["RAY_SERVE_WORKER_PROXY_HTTP_PORT"] = str(ports["serve"])
            env["RAY_SERVE_WORKER_PROXY_GRPC_PORT"] = str(ports["grpc"])
        return env

    def _dashboard_answers(self) -> bool:
        try:
            version = httpx.get(
                f"{self.dashboard_url}/api/version", headers=self.auth_headers(), timeout=2
            )
            return version.status_code == 200
        except httpx.HTTPError:
            return False

    def _wait(self, condition: Any, deadline: float, what: str) -> None:
        while time.monotonic() < deadline:
            dead = [node for node in self.nodes if not node.alive()]
            if dead:
                raise RehearsalError(f"Ray node {dead[0].spec.name} exited:\n{_tail(dead[0].log)}")
            try:
                if condition():
                    return
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.5)
        raise RehearsalError(
            f"timed out waiting for {what}; the head's log:\n{_tail(self.head.log)}"
        )


def node_ports() -> dict[str, int]:
    """The ports a node takes besides the head's own: each its own, as each pod has its own
    address."""
    own = {name: free_port() for name in ("metrics", "agent", "client")}
    return own | private_ports()


@dataclass
class ContainerNode(RayNode):
    """A Ray node that is a container: `process` is the `podman run` that holds it."""

    container: str = ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """The container's every process at once, as when the pod's node is lost."""
        _podman("kill", f"--signal={signal.Signals(sig).name}", self.container, check=False)

    def pids(self) -> list[int]:
        if not self.alive():
            return []
        listed = _podman("top", self.container, "hpid", check=False).split()
        return [int(pid) for pid in listed[1:] if pid.isdigit()]


def _podman(*args: str, check: bool = True) -> str:
    from k8s.image import podman_env

    done = subprocess.run(
        ["podman", *args], env=podman_env(), capture_output=True, text=True, timeout=120
    )
    if check and done.returncode != 0:
        raise RehearsalError(f"podman {args[0]} failed: {done.stderr[-800:]}")
    return done.stdout


@dataclass
class ContainerRayCluster(LocalRayCluster):
    """The same cluster with each node a container of `image`, run as its pod's spec says: its
    user and group, a read-only root filesystem, every capability dropped, no privilege
    escalation, its CPU and memory limits, and exactly its volumes (emptyDirs as directories of
    their own, a Secret's as its files, read-only); the command as KubeRay writes it; the
    container's environment and what KubeRay adds to it. On the host's network: the nodes listen
    on 127.0.0.1 with the ports a process-mode node gets, which is all that differs."""

    image: str = ""

    def stop(self) -> None:
        containers = [node.container for node in self.nodes if isinstance(node, ContainerNode)]
        if containers:  # all at once: each gets the same grace, as the processes' nodes do
            _podman(
                "rm",
                "--force",
                "--ignore",
                f"--time={STOP_GRACE_S}",
                *reversed(containers),
                check=False,
            )
        for node in self.nodes:
            with suppress(subprocess.TimeoutExpired):
                node.process.wait(timeout=30)

    def _start_node(self, spec: NodeSpec) -> RayNode:
        if spec.pod is None:
            raise RehearsalError(f"{spec.name}: the manifest gives no pod settings")
        state = self.work_dir / f"n{len(self.nodes)}"
        state.mkdir(parents=True)
        ports = node_ports()
        params = dict(spec.start_params) | {
            # What KubeRay completes rayStartParams with ...
            "block": "true",
            # ... with this machine's ports instead of the pod's (8080, 52365, 6379, 8265).
            "metrics-export-port": str(ports["metrics"]),
            "dashboard-agent-listen-port": str(ports["agent"]),
            "node-ip-address": "127.0.0.1",
            "object-store-memory": "300000000",  # not a share of this machine's memory
            "disable-usage-stats": "true",
        }
        if spec.head:
            ports["gcs"], ports["dashboard"] = free_port(), free_port()
            params |= {
                "port": str(ports["gcs"]),
                "dashboard-port": str(ports["dashboard"]),
                "dashboard-host": "127.0.0.1",  # all of this stays on the loopback
                "ray-client-server-port": str(ports["client"]),
            }
        else:
            params["address"] = self.gcs_address
        command = kuberay_start_command(spec, params)
        env = spec.env | self.extra_env | self._container_env(spec, ports, command)
        env_file = state / "env"  # the token and keys: never on a command line
        env_file.touch(mode=0o600)
        env_file.write_text("".join(f"{name}={value}\n" for name, value in env.items()))
        name = f"{self.work_dir.name}-{spec.name}"
        args = [
            "run",
            "--rm",
            f"--name={name}",
            "--network=host",
            "--no-healthcheck",  # the image's HEALTHCHECK: Kubernetes runs its probes instead
            f"--user={spec.pod.user}:{spec.pod.group}",
            f"--group-add={spec.pod.fs_group}",
            f"--cpus={spec.pod.cpus}",
            f"--memory={spec.pod.memory_bytes}",
            f"--env-file={env_file}",
            *self._mounts(spec, state),
        ]
        if spec.pod.read_only_root:
            args += ["--read-only", "--read-only-tmpfs=false"]  # no tmpfs the pod lacks
        args += [f"--cap-drop={capability}" for capability in spec.pod.drop_capabilities]
        if spec.pod.no_new_privileges:
            args.append("--security-opt=no-new-privileges")
        log = state / "ray-start.log"
        from k8s.image import podman_env

        with log.open("wb") as output:
            process = subprocess.Popen(
                ["podman", *args, self.image, *command],
                env=podman_env(),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        logger.info("Started Ray node %s (container %s, log %s)", spec.name, name, log)
        return ContainerNode(spec, process, ports, log, container=name)

    def _container_env(
        self, spec: NodeSpec, ports: dict[str, int], command: list[str]
    ) -> dict[str, str]:
        env = {
            # What KubeRay puts in every Ray container of a RayService with authOptions: token.
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": self.token,
            "RAY_ADDRESS": self.gcs_address if not spec.head else f"127.0.0.1:{ports['gcs']}",
            "RAY_USAGE_STATS_KUBERAY_IN_USE": "1",
            "RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE": "1",
            "RAY_TIMEOUT_MS_TASK_WAIT_FOR_DEATH_INFO": "0",
            "RAY_GCS_SERVER_REQUEST_TIMEOUT_SECONDS": "5",
            "RAY_SERVE_KV_TIMEOUT_S": "5",
            "KUBERAY_GEN_RAY_START_CMD": command[-1].split("; ", 1)[1],
            # HAProxy's files stay where Serve puts them (each container has its own /tmp);
            # its ports are this machine's.
            **private_haproxy("/tmp/haproxy-serve", ports),
        }
        if not spec.head:
            ports["serve"], ports["grpc"] = free_port(), free_port()
            env["RAY_SERVE_WORKER_PROXY_HTTP_PORT"] = str(ports["serve"])
            env["RAY_SERVE_WORKER_PROXY_GRPC_PORT"] = str(ports["grpc"])
        return env

    def _mounts(self, spec: NodeSpec, state: Path) -> list[str]:
        """The pod's volumes: an emptyDir is a new directory owned by the pod's user and its
        fsGroup, a Secret volume its files (owned by root and the fsGroup, with the volume's
        mode), read-only."""
        assert spec.pod is not None
        pod = spec.pod
        args = []
        for mount in pod.mounts:
            if mount.kind == "memory":
                args.append(f"--mount=type=tmpfs,destination={mount.path},tmpfs-size=1g")
                continue
            source = state / f"volume-{mount.name}"
            source.mkdir()
            if mount.kind == "secret":
                assert mount.secret is not None
                self.secret_dirs.append((mount.secret, source))
                for file, content in spec.secret_files[mount.path].items():
                    (source / file).write_text(content)
                    os.chown(source / file, 0, pod.fs_group)
                    (source / file).chmod(mount.file_mode)
                source.chmod(0o755)
                args.append(f"--volume={source}:{mount.path}:ro")
                continue
            os.chown(source, pod.user, pod.fs_group)
            options = "ro" if mount.read_only else "rw"
            args.append(f"--volume={source}:{mount.path}:{options}")
        return args


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError as error:
        return f"({log}: {error})"


class ServeOperator:
    """What the KubeRay operator does with a RayService's serveConfigV2: submit it to the
    head's dashboard and poll the application status it reports on the RayService."""

    def __init__(self, dashboard_url: str, token: str) -> None:
        self._url = dashboard_url + SERVE_API
        self._headers = {"Authorization": f"Bearer {token}"}

    def apply(self, serve_config: dict) -> None:
        response = httpx.put(self._url, json=serve_config, headers=self._headers, timeout=60)
        if response.status_code != 200:
            raise RehearsalError(f"the dashboard refused the Serve config: {response.text[-800:]}")

    def details(self) -> dict:
        response = httpx.get(self._url, headers=self._headers, timeout=30)
        response.raise_for_status()
        return response.json()

    def wait_for_status(self, app: str, wanted: str = "RUNNING", timeout_s: float = 240) -> dict:
        """The application's details once its status is `wanted`; DEPLOY_FAILED is an error."""
        deadline = time.monotonic() + timeout_s
        status, message = "absent", ""
        while time.monotonic() < deadline:
            application = self.details()["applications"].get(app)
            if application is not None:
                status, message = application["status"], application.get("message", "")
                if status == wanted:
                    return application
                if status == "DEPLOY_FAILED":
                    raise RehearsalError(f"{app} failed to deploy: {message}")
            time.sleep(1)
        raise RehearsalError(f"{app} is {status}, not {wanted}, after {timeout_s:g} s: {message}")


def rehearsal_serve_config(
    rayservice: dict,
    port: int,
    grpc_port: int,
    model_config: Mapping[str, Any] | None = None,
    ledger: str | None = None,
) -> dict:
    """The RayService's serveConfigV2, with what one machine needs instead: Serve on
    127.0.0.1:`port` and gRPC on `grpc_port` (the head's), FraudModel's user_config updated
    with `model_config` (the artifact of a local S3 server instead of the production bucket),
    and the decision ledger at `ledger` (on that server) instead of the production bucket."""
    config = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    config["http_options"] |= {"host": "127.0.0.1", "port": port}
    config["grpc_options"]["port"] = grpc_port
    for application in config["applications"]:
        if ledger is not None:
            application["args"]["ledger"] |= {"location": ledger}
        for deployment in application["deployments"]:
            if deployment["name"] == MODEL and model_config:
                deployment["user_config"] = {**deployment["user_config"], **model_config}
    return config


def rendered_rayservice() -> dict:
    return yaml.safe_load(RAYSERVICE.read_text())


def new_api_keys() -> dict[tuple[str, str], str]:
    """Values for the fraud-scoring-api-keys Secret: one scoring and one operator key."""
    return {
        ("fraud-scoring-api-keys", "scoring"): json.dumps([secrets.token_urlsafe(32)]),
        ("fraud-scoring-api-keys", "operator"): json.dumps([secrets.token_urlsafe(32)]),
    }


@contextmanager
def local_s3() -> Iterator[dict[str, str]]:
    """moto's S3 server on a loopback port, with the standard AWS settings that reach it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield {
            "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "rehearsal",
            "AWS_SECRET_ACCESS_KEY": "rehearsal",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    """Publish the bundled model to a local S3, start the cluster, apply the Serve config, and
    keep it all running until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m k8s.local_cluster", description=__doc__)
    parser.add_argument("--workers", type=int, default=2, help="worker nodes (default: 2)")
    parser.add_argument("--port", type=int, default=8000, help="the head's Serve port")
    parser.add_argument("--grpc-port", type=int, default=9000, help="the head's gRPC port")
    parser.add_argument(
        "--artifact", type=Path, default=ROOT / "artifacts" / "default", help="model to publish"
    )
    parser.add_argument(
        "--image",
        help="run each node as a container of this image, as its pod runs it (build one with "
        "`python -m k8s.image`: localhost/fraud-scoring:rehearsal)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for chatty in ("httpx", "werkzeug"):  # a line per request
        logging.getLogger(chatty).setLevel(logging.WARNING)
    from fraud_model.store import publish_artifact

    rayservice = rendered_rayservice()
    keys = new_api_keys()
    work_dir = Path(tempfile.mkdtemp(prefix="rc-"))  # short: Ray's socket paths have a limit
    with local_s3() as s3_env:
        os.environ.update(s3_env)
        import boto3

        boto3.client("s3").create_bucket(Bucket="rehearsal")
        published = publish_artifact(args.artifact, "s3://rehearsal/fraud")
        specs = node_specs(rayservice, keys, workers=args.workers)
        cluster = (
            ContainerRayCluster(specs, work_dir, extra_env=s3_env, image=args.image)
            if args.image
            else LocalRayCluster(specs, work_dir, extra_env=s3_env)
        )
        try:
            cluster.start()
            operator = ServeOperator(cluster.dashboard_url, cluster.token)
            model = {
                "artifact_uri": published.uri,
                "metadata_sha256": published.metadata_sha256,
            }
            operator.apply(rehearsal_serve_config(rayservice, args.port, args.grpc_port, model))
            operator.wait_for_status("fraud")
            scoring = json.loads(keys[("fraud-scoring-api-keys", "scoring")])[0]
            logger.info(
                "Serving %s on http://127.0.0.1:%d (gRPC on %d) with %d worker nodes.\n"
                "Scoring key: %s\nRay dashboard (token needed): %s\nRAY_AUTH_TOKEN=%s\n"
                "Ctrl-C stops everything.",
                published.model_version,
                args.port,
                args.grpc_port,
                args.workers,
                scoring,
                cluster.dashboard_url,
                cluster.token,
            )
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            logger.info("Stopping the cluster")
        finally:
            for stop in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut it short
                signal.signal(stop, signal.SIG_IGN)
            cluster.stop()
            shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
