"""The production path rehearsed as the pods run it: the image built from the Dockerfile (on
CI's stand-in for Ray's image), the head and two workers each a container of it started with its
pod's spec (the user, a read-only root filesystem, no capabilities, no privilege escalation,
exactly the manifest's volumes, KubeRay's command and environment), on the host's network on
127.0.0.1. The cluster tests of test_kuberay_path run on it unchanged, in the same order; the
training test is not among them (the serving image holds no training packages).

Under CI a machine without Podman fails these tests: they never skip there.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from k8s.image import build_image, missing_tools, stand_in_base
from k8s.local_cluster import ContainerRayCluster, LocalRayCluster, NodeSpec
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
