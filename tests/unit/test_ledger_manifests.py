"""The ledger report's RayJob and its companions, checked offline like the RayService."""

import copy
import shlex

import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft7Validator

from fraud_model.store import S3Location, parse_location
from ledger.report import arguments
from tests.helpers import PROJECT_ROOT
from tests.unit.test_deploy_manifests import DOCKERFILE, KUBERNETES_VERSION, strict

CRD = PROJECT_ROOT / "tests" / "data" / "kuberay" / "ray.io_rayjobs.yaml"  # v1.7.0
RAYJOB = yaml.safe_load((PROJECT_ROOT / "k8s" / "rayjob-report.yaml").read_text())
RAYSERVICE = yaml.safe_load((PROJECT_ROOT / "k8s" / "rayservice.yaml").read_text())
COMPANIONS = list(yaml.safe_load_all((PROJECT_ROOT / "k8s" / "ledger-report.yaml").read_text()))


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    crd = yaml.load(CRD.read_text(), Loader=yaml.CSafeLoader)
    (v1,) = [version for version in crd["spec"]["versions"] if version["name"] == "v1"]
    return Draft7Validator(strict(v1["schema"]["openAPIV3Schema"]))


def pods(cluster: dict) -> list[dict]:
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [group["template"] for group in groups]


def test_the_rayjob_matches_the_kuberay_crd(validator: Draft7Validator) -> None:
    assert [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(RAYJOB)] == []
    typo = copy.deepcopy(RAYJOB)
    typo["spec"]["shutdownAfterJobFinish"] = True
    assert any("shutdownAfterJobFinish" in e.message for e in validator.iter_errors(typo))


def assert_hardened_like_the_rayservice(
    rayjob: dict, service_account: str, image_suffix: str = ""
) -> None:
    """A RayJob's cluster runs the RayService's Ray and image (or its `image_suffix` variant)
    as the RayService's pods do: token auth, the same security contexts, fixed resources,
    only emptyDir volumes, and its own service account."""
    cluster, serving = rayjob["spec"]["rayClusterSpec"], RAYSERVICE["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == serving["rayVersion"]
    assert cluster["authOptions"] == {"mode": "token"}
    (serving_pod, *_) = pods(serving)
    (serving_container,) = serving_pod["spec"]["containers"]
    for pod in pods(cluster):
        assert pod["spec"]["serviceAccountName"] == service_account
        assert pod["spec"]["securityContext"] == serving_pod["spec"]["securityContext"]
        (container,) = pod["spec"]["containers"]
        assert container["image"] == serving_container["image"] + image_suffix
        assert container["securityContext"] == serving_container["securityContext"]
        assert container["resources"]["requests"] == container["resources"]["limits"]
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert all("emptyDir" in volumes[m["name"]] for m in container["volumeMounts"])


def test_it_runs_the_serving_image_and_ray_hardened_like_the_rayservice() -> None:
    assert_hardened_like_the_rayservice(RAYJOB, "fraud-ledger-report")
    # The image holds the package and the report's dependencies.
    assert "COPY --chown=ray:users ledger/ ledger/" in DOCKERFILE
    assert "--extra report" in DOCKERFILE
    assert RAYJOB["spec"]["shutdownAfterJobFinishes"] is True


def test_the_entrypoint_is_a_valid_report_command_into_a_new_directory() -> None:
    words = shlex.split(RAYJOB["spec"]["entrypoint"].replace("$(date -u +%Y%m%dT%H%MZ)", "NOW"))
    assert words[:3] == ["python", "-m", "ledger.report"]
    args = arguments().parse_args(words[3:])
    assert args.ray is True
    assert isinstance(parse_location(args.ledger), S3Location)
    assert args.out.endswith("/reports/NOW")  # a report is written once: one per run


@pytest.mark.parametrize("doc", COMPANIONS, ids=lambda doc: doc["metadata"]["name"])
def test_the_companions_match_the_kubernetes_schemas(doc: dict) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def assert_companions_select_the_job_s_pods(
    rayjob: dict, companions: list[dict], service_account: str
) -> None:
    """The companions' NetworkPolicies (the cluster's, the operator's, egress) select the
    RayJob's pods, and its service account has an IRSA role."""
    labels = [pod["metadata"]["labels"] for pod in pods(rayjob["spec"]["rayClusterSpec"])]
    cluster, operator, egress = [doc for doc in companions if doc["kind"] == "NetworkPolicy"]
    assert egress["spec"]["podSelector"] == cluster["spec"]["podSelector"]
    assert all(
        cluster["spec"]["podSelector"]["matchLabels"].items() <= pod.items() for pod in labels
    )
    head = labels[0] | {"ray.io/node-type": "head"}
    assert operator["spec"]["podSelector"]["matchLabels"].items() <= head.items()
    (account,) = [doc for doc in companions if doc["kind"] == "ServiceAccount"]
    assert account["metadata"]["name"] == service_account
    assert "eks.amazonaws.com/role-arn" in account["metadata"]["annotations"]


def test_the_network_policies_select_the_report_s_pods() -> None:
    assert_companions_select_the_job_s_pods(RAYJOB, COMPANIONS, "fraud-ledger-report")
