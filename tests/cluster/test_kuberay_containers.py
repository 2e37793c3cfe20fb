"""The production path rehearsed as the pods run it: the image built from the Dockerfile (on
CI's stand-in for Ray's image), the head and two workers each a container of it started with its
pod's spec (the user, a read-only root filesystem, no capabilities, no privilege escalation,
exactly the manifest's volumes, KubeRay's command and environment), on the host's network on
127.0.0.1. The cluster tests of test_kuberay_path run on it unchanged, in the same order; the
training test is not among them (the serving image holds no training packages).

Under CI a machine without Podman fails these tests: they never skip there.
"""

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraud_model.ray_env import LOG_ROTATION
from k8s.image import build_image, missing_tools, stand_in_base
from k8s.local_cluster import ContainerRayCluster, LocalRayCluster, NodeSpec, quantity_bytes
from tests.cluster import test_kuberay_path as in_processes
from tests.cluster.test_kuberay_path import Rehearsal, rehearsed

pytestmark = [pytest.mark.ray, pytest.mark.cluster]

LEDGER = "s3://cluster-ledger/containers"


@pytest.fixture(scope="module")
def image() -> str:
    """The image, built from the working tree (Podman's layer cache makes a rebuild of
    unchanged layers cheap); skipped only off CI on a machine without Podman."""
    missing = missing_tools()
    if missing:
        reason = f"the image tests need {', '.join(missing)} (Debian's packages; .ci/run installs)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    base = stand_in_base()
    built = build_image(base.pinned)
    print(
        f"\nimage {built.reference} ({built.digest[:19]}) on {base.pinned[:60]}: "
        f"{built.size_bytes / 1e6:.0f} MB, built in {built.build_s:.0f} s"
    )
    return built.reference


@pytest.fixture(scope="module")
def rehearsal(
    image: str, s3_endpoint: str, monkeypatch_module: pytest.MonkeyPatch
) -> Iterator[Rehearsal]:
    def in_containers(
        specs: list[NodeSpec],
        work_dir: Path,
        env: dict[str, str],
        secrets: dict[tuple[str, str], str],
    ) -> LocalRayCluster:
        return ContainerRayCluster(specs, work_dir, extra_env=env, image=image)

    with rehearsed(s3_endpoint, monkeypatch_module, in_containers, LEDGER) as started:
        yield started


# The same tests, collected here with this module's rehearsal, in their order there (the
# node loss last).
monkeypatch_module = in_processes.monkeypatch_module
test_predictions_equal_the_single_node_service_and_models_run_on_workers_only = (
    in_processes.test_predictions_equal_the_single_node_service_and_models_run_on_workers_only
)
test_the_dashboard_and_jobs_api_refuse_requests_without_the_token = (
    in_processes.test_the_dashboard_and_jobs_api_refuse_requests_without_the_token
)
test_the_ray_cli_needs_the_token_too = in_processes.test_the_ray_cli_needs_the_token_too
test_the_api_needs_keys_and_the_docs_are_off = (
    in_processes.test_the_api_needs_keys_and_the_docs_are_off
)
test_a_key_added_to_the_secret_works_and_once_revoked_is_refused_without_a_restart = (
    in_processes.test_a_key_added_to_the_secret_works_and_once_revoked_is_refused_without_a_restart
)
test_a_model_rollout_under_load_loses_nothing_and_reaches_every_replica = (
    in_processes.test_a_model_rollout_under_load_loses_nothing_and_reaches_every_replica
)
test_a_worker_node_lost_under_load_costs_at_most_the_requests_in_flight_on_it = (
    in_processes.test_a_worker_node_lost_under_load_costs_at_most_the_requests_in_flight_on_it
)


# A rotated copy of a log: raylet.1.out (Ray's C++ processes) or serve/replica_x.log.1 (Python's).
_ROTATED_COPY = re.compile(r"\.\d+(?=\.\w+$)|\.\d+$")


def ray_log_streams(volume: Path) -> dict[str, int]:
    """Ray's logs on one pod's volume, a log and its rotated copies as one: {name: bytes}."""
    streams: dict[str, int] = {}
    # /tmp/ray/session_* on /tmp; session_* at the top of KubeRay's volume for /tmp/ray.
    found = [*volume.glob("ray/session_2*"), *volume.glob("session_2*")]
    sessions = {path.resolve() for path in found if path.is_dir()}
    for session in sessions:
        for path in (session / "logs").rglob("*"):
            if path.is_file():
                name = _ROTATED_COPY.sub("", str(path.relative_to(volume)))
                streams[name] = streams.get(name, 0) + path.stat().st_size
    return streams


def test_ray_logs_at_their_rotation_bound_fit_every_pod_s_tmp_volume(rehearsal: Rehearsal) -> None:
    """After everything above (start, keys, a rollout and a node lost under load), every log of
    every pod, grown to its rotation bound, still fits the pod's /tmp volume twice over: the
    processes that replace these later bring logs of their own."""
    per_log = int(LOG_ROTATION["RAY_ROTATION_MAX_BYTES"]) * (
        int(LOG_ROTATION["RAY_ROTATION_BACKUP_COUNT"]) + 1
    )
    groups = rehearsal.rayservice["spec"]["rayClusterConfig"]
    counted = {}
    for node in rehearsal.cluster.nodes:
        group = (
            groups["headGroupSpec"]
            if node.spec.head
            else next(
                group
                for group in groups["workerGroupSpecs"]
                if node.spec.name.rsplit("-", 1)[0] == group["groupName"]
            )
        )
        (tmp,) = [v for v in group["template"]["spec"]["volumes"] if v["name"] == "tmp"]
        # The head's Ray logs are on the volume KubeRay adds for its autoscaler, where it runs
        # one: on the node's disk, with no size limit of its own; held to the same bound here.
        volumes = [node.log.parent / "volume-tmp", node.log.parent / "volume-ray-logs"]
        streams = {
            name: size
            for volume in volumes
            if volume.is_dir()
            for name, size in ray_log_streams(volume).items()
        }
        counted[node.spec.name] = (streams, quantity_bytes(tmp["emptyDir"]["sizeLimit"]))
        print(
            f"\n{node.spec.name}: {len(streams)} Ray logs, "
            f"{sum(streams.values()) / 2**20:.1f} MiB now, "
            f"{len(streams) * per_log / 2**30:.2f} GiB at {per_log / 2**20:.0f} MiB each, "
            f"/tmp {tmp['emptyDir']['sizeLimit']}"
        )
    for name, (streams, size_limit) in counted.items():
        assert streams, f"{name}: no Ray logs found"
        assert all(size <= per_log for size in streams.values()), name
        assert 2 * len(streams) * per_log <= size_limit, (name, len(streams), sorted(streams))
