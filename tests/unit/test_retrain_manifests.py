"""The retraining RayJob and its companions, checked offline like the report's."""

import copy
import shlex

import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft7Validator

from fraud_model.store import S3Location, parse_location
from k8s import render
from tests.helpers import PROJECT_ROOT
from tests.unit.test_deploy_manifests import (
    DOCKERFILE,
    KUBERNETES_VERSION,
    restricted_violations,
    strict,
)
from tests.unit.test_ledger_manifests import (
    CRD,
    assert_companions_select_the_job_s_pods,
    assert_hardened_like_the_rayservice,
    pods,
)
from training.cli import build_parser as training_parser
from training.retrain_job import OWN_TRAINING_OPTIONS, build_parser

RAYJOB = yaml.safe_load(render.RETRAIN_RAYJOB.read_text())
RAYSERVICE = yaml.safe_load(render.RAYSERVICE.read_text())
COMPANIONS = list(yaml.safe_load_all((PROJECT_ROOT / "k8s" / "retrain.yaml").read_text()))


def test_the_committed_rayjob_is_the_rendering() -> None:
    assert render.RETRAIN_RAYJOB.read_text() == render.render()[render.RETRAIN_RAYJOB]


def test_the_rayjob_matches_the_kuberay_crd() -> None:
    crd = yaml.load(CRD.read_text(), Loader=yaml.CSafeLoader)
    (v1,) = [version for version in crd["spec"]["versions"] if version["name"] == "v1"]
    validator = Draft7Validator(strict(v1["schema"]["openAPIV3Schema"]))
    assert [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(RAYJOB)] == []
    typo = copy.deepcopy(RAYJOB)
    typo["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParam"] = {}
    assert any("rayStartParam" in e.message for e in validator.iter_errors(typo))


def test_its_pods_meet_restricted_in_the_namespace() -> None:
    assert RAYJOB["metadata"]["namespace"] == "fraud"
    for pod in pods(RAYJOB["spec"]["rayClusterSpec"]):
        assert restricted_violations(pod["spec"], pod["spec"]["containers"]) == []


def test_it_runs_the_training_variant_of_the_serving_image_hardened_like_the_rayservice() -> None:
    assert_hardened_like_the_rayservice(RAYJOB, "fraud-retrain", render.TRAINING_TAG_SUFFIX)
    cluster, serving = RAYJOB["spec"]["rayClusterSpec"], RAYSERVICE["spec"]["rayClusterConfig"]
    # The same shape as the RayService's cluster, on which the rehearsal runs it: a head without
    # CPUs (the trees go to the workers) and workers of the same size.
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    (group,) = cluster["workerGroupSpecs"]
    (serving_group,) = serving["workerGroupSpecs"]
    (worker,) = group["template"]["spec"]["containers"]
    (serving_worker,) = serving_group["template"]["spec"]["containers"]
    assert worker["resources"]["limits"]["cpu"] == serving_worker["resources"]["limits"]["cpu"]
    # The image variant holds the training package and its locked extra.
    assert "COPY --chown=ray:users training/ training/" in DOCKERFILE
    assert "${EXTRAS}" in DOCKERFILE
    assert "training/" not in (PROJECT_ROOT / ".dockerignore").read_text().split()
    assert RAYJOB["spec"]["shutdownAfterJobFinishes"] is True


def test_the_entrypoint_runs_the_retrain_module_from_s3_to_s3() -> None:
    words = shlex.split(RAYJOB["spec"]["entrypoint"])
    assert words[:3] == ["python", "-m", "training.retrain_job"]
    args, rest = build_parser().parse_known_args(words[3:])
    assert isinstance(parse_location(args.data), S3Location)
    assert args.data.endswith((".csv", ".csv.gz"))
    assert isinstance(parse_location(args.models), S3Location)
    # The models prefix is the one the production Serve config pins its versions under.
    pinned = yaml.safe_load(RAYSERVICE["spec"]["serveConfigV2"])
    uris = [
        d["user_config"]["artifact_uri"]
        for app in pinned["applications"]
        for d in app["deployments"]
        if "artifact_uri" in d.get("user_config", {})
    ]
    assert uris and all(uri.rsplit("/", 1)[0] == args.models for uri in uris)
    assert all(word.split("=", 1)[0] not in OWN_TRAINING_OPTIONS for word in rest)


def test_what_the_job_sets_itself_are_training_options() -> None:
    flags = {flag for action in training_parser()._actions for flag in action.option_strings}
    assert set(OWN_TRAINING_OPTIONS) <= flags


@pytest.mark.parametrize("doc", COMPANIONS, ids=lambda doc: doc["metadata"]["name"])
def test_the_companions_match_the_kubernetes_schemas(doc: dict) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_network_policies_select_the_job_s_pods() -> None:
    assert_companions_select_the_job_s_pods(RAYJOB, COMPANIONS, "fraud-retrain")
