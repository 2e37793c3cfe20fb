"""The container image and the KubeRay manifests, checked offline (no Docker, no cluster)."""

import copy
import re
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft7Validator
from ray.serve.schema import ServeDeploySchema

from fraud_model.store import S3Location, parse_location
from k8s import render
from serve_app.app import AppArgs
from serve_app.model import FraudModel, ModelConfig
from tests.helpers import PROJECT_ROOT

CRD = PROJECT_ROOT / "tests" / "data" / "kuberay" / "ray.io_rayservices.yaml"  # v1.7.0
DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text()


def ray_pin() -> str:
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    (pin,) = [d for d in pyproject["project"]["dependencies"] if d.startswith("ray[")]
    return pin.split("==")[1]


# Every RayService variant passes every check below.
@pytest.fixture(scope="module", params=["rayservice.yaml", "rayservice.gcs-ft.yaml"])
def rayservice(request: pytest.FixtureRequest) -> dict:
    return yaml.safe_load((PROJECT_ROOT / "k8s" / request.param).read_text())


@pytest.fixture(scope="module")
def serve_config(rayservice: dict) -> dict:
    return yaml.safe_load(rayservice["spec"]["serveConfigV2"])


def test_generated_files_are_up_to_date() -> None:
    for path, text in render.render().items():
        assert path.read_text() == text, f"{path.name} is stale: run `python -m k8s.render`"


def test_merge_overrides_by_key_and_by_name() -> None:
    base = {"a": 1, "apps": [{"name": "x", "v": 1, "keep": True}, {"name": "y", "v": 2}]}
    override = {"b": 2, "apps": [{"name": "x", "v": 10}]}
    assert render.merge(base, override) == {
        "a": 1, "b": 2, "apps": [{"name": "y", "v": 2}, {"name": "x", "v": 10, "keep": True}],
    }  # fmt: skip


def test_one_ray_version_everywhere(rayservice: dict) -> None:
    assert re.search(r"^ARG RAY_VERSION=(\S+)$", DOCKERFILE, re.M).group(1) == ray_pin()
    assert "FROM rayproject/ray:${RAY_VERSION}-py311" in DOCKERFILE
    assert "ray.__version__ != '${RAY_VERSION}'" in DOCKERFILE  # the build fails on a mismatch
    assert rayservice["spec"]["rayClusterConfig"]["rayVersion"] == ray_pin()


def test_image_runs_as_non_root_with_wget_and_a_healthcheck() -> None:
    users = re.findall(r"^USER (\S+)$", DOCKERFILE, re.M)
    assert users[-1] not in ("root", "0")
    assert re.search(r"apt-get install .*\bwget\b", DOCKERFILE)
    assert "HEALTHCHECK" in DOCKERFILE
    assert 'CMD ["serve", "run", "configs/serve_config.production.yaml"]' in DOCKERFILE
    # Dependencies are installed from the lock before the code is copied (cached layer).
    assert DOCKERFILE.index("uv.lock") < DOCKERFILE.index("COPY --chown=ray:users serve_app/")
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "tests/", ".env"} <= set(ignored)


def strict(schema: object) -> object:
    """Forbid unknown fields wherever the CRD lists properties (the API server would prune them)."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema.setdefault("additionalProperties", False)
    elif isinstance(schema, list):
        schema = [strict(item) for item in schema]
    return schema


@pytest.fixture(scope="module")
def crd_validator() -> Draft7Validator:
    crd = yaml.load(CRD.read_text(), Loader=yaml.CSafeLoader)
    (v1,) = [version for version in crd["spec"]["versions"] if version["name"] == "v1"]
    return Draft7Validator(strict(v1["schema"]["openAPIV3Schema"]))


def test_rayservice_matches_the_kuberay_crd(
    rayservice: dict, crd_validator: Draft7Validator
) -> None:
    errors = [f"{list(e.path)}: {e.message}" for e in crd_validator.iter_errors(rayservice)]
    assert errors == []


def test_crd_check_catches_a_typo(rayservice: dict, crd_validator: Draft7Validator) -> None:
    typo = copy.deepcopy(rayservice)
    typo["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["minReplica"] = 1
    assert any("minReplica" in e.message for e in crd_validator.iter_errors(typo))


def test_rayservice_follows_the_operator_rules(rayservice: dict) -> None:
    name = rayservice["metadata"]["name"]
    assert len(name) <= 47 and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name)
    assert rayservice["spec"]["upgradeStrategy"]["type"] in (
        "NewCluster", "NewClusterWithIncrementalUpgrade", "None"
    )  # fmt: skip
    cluster = rayservice["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True and cluster["autoscalerOptions"]
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    for group in [head, *cluster["workerGroupSpecs"]]:
        pod = group["template"]["spec"]
        assert pod["serviceAccountName"] == "fraud-scoring"
        (container,) = pod["containers"]
        assert container["resources"]["requests"] == container["resources"]["limits"]
        assert "ray stop" in " ".join(container["lifecycle"]["preStop"]["exec"]["command"])


def test_serve_config_v2_is_valid_for_ray_and_for_the_app(serve_config: dict) -> None:
    ServeDeploySchema.model_validate(serve_config)
    (application,) = serve_config["applications"]
    AppArgs.model_validate(application["args"])
    model = next(d for d in application["deployments"] if d["name"] == "FraudModel")
    ModelConfig.model_validate(model["user_config"])
    assert serve_config["http_options"] == {"host": "0.0.0.0", "port": 8000,
                                            "request_timeout_s": 10}  # fmt: skip


def test_production_serves_one_pinned_version_with_keys_and_no_docs(serve_config: dict) -> None:
    (application,) = serve_config["applications"]
    args = AppArgs.model_validate(application["args"])
    assert args.allow_anonymous is False  # every Ingress replica refuses to start without keys
    assert args.openapi_docs is False
    model = next(d for d in application["deployments"] if d["name"] == "FraudModel")
    config = ModelConfig.model_validate(model["user_config"])
    location = parse_location(config.artifact_uri)
    # A published version (its URI ends in a model version: never a pointer such as `current`),
    # pinned by the sha256 of its metadata.json.
    assert isinstance(location, S3Location)
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", location.prefix.rsplit("/", 1)[-1])
    assert config.metadata_sha256 is not None
    ingress = next(d for d in application["deployments"] if d["name"] == "Ingress")
    assert ingress["max_replicas_per_node"] == 1  # a lost node never takes every Ingress


def ray_pods(rayservice: dict) -> list[dict]:
    cluster = rayservice["spec"]["rayClusterConfig"]
    return [group["template"] for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]]


def test_the_ray_control_plane_needs_the_token_and_has_no_client_port(rayservice: dict) -> None:
    cluster = rayservice["spec"]["rayClusterConfig"]
    assert cluster["authOptions"] == {"mode": "token"}
    ports = {
        port["containerPort"]
        for pod in ray_pods(rayservice)
        for container in pod["spec"]["containers"]
        for port in container.get("ports", [])
    }
    assert ports == {6379, 8265, 8000, 9000, 8080}  # no Ray Client (10001)
    for pod in ray_pods(rayservice):
        for container in pod["spec"]["containers"]:
            names = {env["name"] for env in container.get("env", [])}
            # KubeRay sets these from authOptions; setting them here would fight it.
            assert not names & {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"}


def test_every_ray_container_gets_the_api_keys_from_the_secret(rayservice: dict) -> None:
    for pod in ray_pods(rayservice):
        (container,) = pod["spec"]["containers"]
        env = {item["name"]: item for item in container["env"]}
        for name, key in (("FRAUD_API_KEYS", "scoring"), ("FRAUD_OPERATOR_KEYS", "operator")):
            assert env[name] == {
                "name": name,
                "valueFrom": {"secretKeyRef": {"name": "fraud-scoring-api-keys", "key": key}},
            }


def test_pods_are_hardened_with_writable_volumes_only_where_needed(rayservice: dict) -> None:
    hardened = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }
    cluster = rayservice["spec"]["rayClusterConfig"]
    assert cluster["autoscalerOptions"]["securityContext"] == hardened
    for pod in ray_pods(rayservice):
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        (container,) = spec["containers"]
        assert container["securityContext"] == hardened
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        assert mounts == {"/tmp": "tmp", "/home/ray/.cache": "cache"}
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        assert all("emptyDir" in volumes[name] for name in mounts.values())
    # The artifact cache's default location (the image's HOME is /home/ray) is writable.
    assert Path("/home/ray/.cache/fraud-serving/artifacts").is_relative_to("/home/ray/.cache")


def test_serve_replicas_fit_the_ray_autoscaler_bounds(rayservice: dict, serve_config: dict) -> None:
    (group,) = rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    worker_cpus = int(group["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"])
    (application,) = serve_config["applications"]
    model = next(d for d in application["deployments"] if d["name"] == "FraudModel")
    scaling = model["autoscaling_config"]
    replica_cpus = FraudModel.ray_actor_options["num_cpus"]  # the head has none (num-cpus: "0")
    assert scaling["min_replicas"] * replica_cpus <= group["minReplicas"] * worker_cpus
    assert scaling["max_replicas"] * replica_cpus <= group["maxReplicas"] * worker_cpus
    assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


CLUSTER_DOCS = list(yaml.safe_load_all((PROJECT_ROOT / "k8s" / "cluster.yaml").read_text()))
KUBERNETES_VERSION = "1.33"  # EKS


@pytest.mark.parametrize("doc", CLUSTER_DOCS, ids=lambda doc: doc["kind"])
def test_companions_match_the_kubernetes_schemas(doc: dict) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)  # raises on any error


def test_ingress_routes_only_the_api_to_the_serve_service(rayservice: dict) -> None:
    ingress, _ = [doc for doc in CLUSTER_DOCS if doc["kind"] == "Ingress"]
    annotations = ingress["metadata"]["annotations"]
    assert (
        annotations["alb.ingress.kubernetes.io/healthcheck-path"] == "/api/v1/utils/health-check/"
    )
    assert annotations["alb.ingress.kubernetes.io/listen-ports"] == '[{"HTTPS": 443}]'
    assert annotations["alb.ingress.kubernetes.io/ssl-policy"].startswith("ELBSecurityPolicy-TLS13")
    backends = [path["backend"]["service"] for rule in ingress["spec"]["rules"]
                for path in rule["http"]["paths"]]  # fmt: skip
    assert backends == [
        {"name": f"{rayservice['metadata']['name']}-serve-svc", "port": {"number": 8000}}
    ]


def test_grpc_is_routed_to_the_serving_pods_grpc_port(rayservice: dict, serve_config: dict) -> None:
    from serve_app.grpc_scoring import SERVICE, SERVICER_FUNCTION

    http, grpc = [doc for doc in CLUSTER_DOCS if doc["kind"] == "Ingress"]
    annotations = grpc["metadata"]["annotations"]
    for shared in ("group.name", "scheme", "listen-ports", "certificate-arn", "ssl-policy"):
        key = f"alb.ingress.kubernetes.io/{shared}"
        assert annotations[key] == http["metadata"]["annotations"][key]  # one load balancer
    assert annotations["alb.ingress.kubernetes.io/backend-protocol-version"] == "GRPC"
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == (
        "/ray.serve.RayServeAPIService/Healthz"
    )
    (path,) = [path for rule in grpc["spec"]["rules"] for path in rule["http"]["paths"]]
    assert path["path"] == f"/{SERVICE}"
    (service,) = [doc for doc in CLUSTER_DOCS if doc["kind"] == "Service"]
    assert path["backend"]["service"] == {
        "name": service["metadata"]["name"],
        "port": {"number": service["spec"]["ports"][0]["port"]},
    }
    (port,) = service["spec"]["ports"]
    assert port["port"] == serve_config["grpc_options"]["port"]
    assert serve_config["grpc_options"]["grpc_servicer_functions"] == [SERVICER_FUNCTION]
    # Every Ray pod names the port, and only pods whose Serve proxy is up are selected.
    for pod in ray_pods(rayservice):
        (container,) = pod["spec"]["containers"]
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert named[port["targetPort"]] == port["port"]
        assert (
            service["spec"]["selector"].items()
            <= (pod["metadata"]["labels"] | {"ray.io/serve": "true"}).items()
        )


def test_service_account_uses_irsa_and_the_budget_selects_the_workers(rayservice: dict) -> None:
    kinds = {doc["kind"]: doc for doc in CLUSTER_DOCS}
    account = kinds["ServiceAccount"]
    assert account["metadata"]["name"] == "fraud-scoring"
    assert "eks.amazonaws.com/role-arn" in account["metadata"]["annotations"]
    (group,) = rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    worker_labels = group["template"]["metadata"]["labels"] | {"ray.io/node-type": "worker"}
    selector = kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= worker_labels.items()
    namespace = kinds["Namespace"]["metadata"]["name"]
    assert {doc["metadata"].get("namespace", namespace) for doc in CLUSTER_DOCS} == {namespace}
    assert rayservice["metadata"]["namespace"] == namespace


def test_kubernetes_check_catches_a_typo() -> None:
    ingress, _ = [doc for doc in CLUSTER_DOCS if doc["kind"] == "Ingress"]
    typo = copy.deepcopy(ingress)
    typo["spec"]["ingressClass"] = typo["spec"].pop("ingressClassName")
    with pytest.raises(kubernetes_validate.ValidationError, match="ingressClass"):
        kubernetes_validate.validate(typo, KUBERNETES_VERSION, strict=True)


def test_the_gcs_ft_variant_adds_only_redis_options_that_kuberay_accepts() -> None:
    base, variant = (
        yaml.safe_load((PROJECT_ROOT / "k8s" / name).read_text())
        for name in ("rayservice.yaml", "rayservice.gcs-ft.yaml")
    )
    cluster = variant["spec"]["rayClusterConfig"]
    options = cluster.pop("gcsFaultToleranceOptions")
    head_spec = cluster["headGroupSpec"]
    (head,) = head_spec["template"]["spec"]["containers"]
    redis_env = [env for env in head["env"] if env["name"].startswith("RAY_REDIS_")]
    head["env"] = [env for env in head["env"] if env not in redis_env]
    assert variant == base  # nothing else differs

    assert options["backend"] == "redis"
    # ElastiCache takes an AUTH token only over TLS, and Ray must be able to verify its
    # certificate (Amazon's public root, in the image's system bundle).
    assert re.fullmatch(r"rediss://[a-z0-9.-]+:6379", options["redisAddress"])
    assert redis_env == [
        {"name": "RAY_REDIS_CA_CERT", "value": "/etc/ssl/certs/ca-certificates.crt"}
    ]
    # The password comes from a Secret, never from the manifest.
    assert options["redisPassword"] == {
        "valueFrom": {"secretKeyRef": {"name": "fraud-scoring-redis", "key": "password"}}
    }
    # KubeRay refuses these beside gcsFaultToleranceOptions (it sets them itself).
    assert not {env["name"] for env in head["env"]} & {
        "RAY_REDIS_ADDRESS", "REDIS_PASSWORD", "REDIS_USERNAME"
    }  # fmt: skip
    assert not {"redis-password", "redis-username"} & set(head_spec["rayStartParams"])
    annotations = variant["metadata"].get("annotations", {})
    assert not {"ray.io/ft-enabled", "ray.io/external-storage-namespace"} & set(annotations)
