"""What the containerised rehearsal takes from the rendered RayService (no Podman needed): each
pod's user, security context, limits and volumes, and KubeRay's `ray start` command."""

import json

from k8s.local_cluster import Mount, NodeSpec, kuberay_start_command, new_api_keys, node_specs
from k8s.local_cluster import rendered_rayservice as rayservice

KEYS_DIR = "/var/run/secrets/fraud-scoring/api-keys"


def test_every_node_runs_as_its_pod_says() -> None:
    keys = new_api_keys()
    head, *workers = node_specs(rayservice(), keys)
    assert len(workers) == 2
    for spec in (head, *workers):
        pod = spec.pod
        assert pod is not None
        assert (pod.user, pod.group, pod.fs_group) == (1000, 100, 100)
        assert pod.read_only_root and pod.no_new_privileges
        assert pod.drop_capabilities == ("ALL",)
        assert (pod.cpus, pod.memory_bytes) == ("2", 4 << 30)
        assert pod.image.endswith("/fraud-scoring:0.1.0")
        by_path = {mount.path: mount for mount in pod.mounts}
        writable = {path for path, mount in by_path.items() if not mount.read_only}
        # The manifest's two emptyDirs, and what KubeRay adds: /dev/shm, /tmp/ray on the head.
        extra = {"/tmp/ray"} if spec.head else set()
        assert writable == {"/tmp", "/home/ray/.cache", "/dev/shm"} | extra
        assert by_path[KEYS_DIR] == Mount(
            "api-keys", KEYS_DIR, "secret", True, "fraud-scoring-api-keys", 0o440
        )
        # The Secret's files, as the kubelet would project them.
        assert {name: json.loads(value) for name, value in spec.secret_files[KEYS_DIR].items()} == {
            key: json.loads(value) for (_, key), value in keys.items()
        }
        assert spec.env["FRAUD_KEYS_DIR"] == KEYS_DIR


def test_the_command_is_kuberay_s() -> None:
    spec = NodeSpec("head", True, {}, {})
    params = {"num-cpus": "0", "block": "true", "dashboard-host": "0.0.0.0", "no-x": "false"}
    assert kuberay_start_command(spec, params) == [
        "/bin/bash",
        "-c",
        "--",
        "ulimit -n ${RAY_START_ULIMIT_OPEN_FILES:-65536}; "
        "ray start --head --block --dashboard-host=0.0.0.0 --num-cpus=0",
    ]
    worker = NodeSpec("cpu-1", False, {}, {})
    assert kuberay_start_command(worker, {"address": "h:6379"})[-1].endswith(
        "; ray start --address=h:6379"
    )
