"""The container image and the KubeRay manifests, checked offline (no Docker, no cluster)."""

import copy
import json
import re
import subprocess
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


def dockerfile_arg(name: str) -> str:
    return re.search(rf"^ARG {name}=(\S+)$", DOCKERFILE, re.M).group(1)


def test_one_ray_version_everywhere(rayservice: dict) -> None:
    assert dockerfile_arg("RAY_VERSION") == ray_pin()
    assert dockerfile_arg("BASE_IMAGE").startswith(f"rayproject/ray:{ray_pin()}-py311-cpu@sha256:")
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


def dockerfile_run(marker: str) -> str:
    """The shell command of the Dockerfile's RUN instruction that contains `marker`."""
    (instruction,) = [
        block
        for block in re.split(r"\n(?=[A-Z]+ )", DOCKERFILE.replace("\\\n", " "))
        if block.startswith("RUN ") and marker in block
    ]
    return instruction.removeprefix("RUN ")


@pytest.mark.parametrize(
    ("base", "accepted"),
    [
        ("rayproject/ray:2.60.0-py311-cpu@sha256:" + "a1" * 32, True),
        ("localhost/fraud-scoring-stand-in-base@sha256:" + "0f" * 32, True),
        ("rayproject/ray:2.60.0-py311-cpu", False),  # a tag can be moved
        ("rayproject/ray@sha256:" + "a1" * 31, False),
        ("rayproject/ray@sha256:" + "A1" * 32, False),
        ("rayproject/ray:2.60.0-py311-cpu@sha256:REPLACE_WITH_THE_DIGEST_OF_THAT_TAG", False),
    ],
    ids=["ray-by-digest", "stand-in-by-digest", "tag", "short", "upper-case", "placeholder"],
)
def test_the_build_refuses_a_base_image_not_pinned_by_digest(base: str, accepted: bool) -> None:
    guard = dockerfile_run("is not pinned by its sha256 digest")
    done = subprocess.run(
        ["sh", "-c", guard], env={"BASE_IMAGE": base}, capture_output=True, text=True, check=False
    )
    assert (done.returncode == 0) is accepted, done.stderr
    # It runs before anything is installed: the first RUN of the image's stage.
    stage = DOCKERFILE[DOCKERFILE.index("FROM ${BASE_IMAGE}") :]
    assert stage.index("is not pinned by its sha256 digest") < stage.index("apt-get")


def test_uv_is_installed_by_the_hash_of_its_wheels() -> None:
    install = dockerfile_run("uv export")
    assert "--require-hashes -r /tmp/uv.txt" in install
    assert "'uv==%s --hash=sha256:%s --hash=sha256:%s\\n'" in install
    for arch in ("X86_64", "AARCH64"):
        assert re.fullmatch(r"[0-9a-f]{64}", dockerfile_arg(f"UV_SHA256_{arch}"))
    # The locked packages too, and nothing else from an index without a hash.
    assert "--require-hashes" in install.split("uv pip install", 1)[1]
    assert 'pip install --no-cache-dir "uv' not in DOCKERFILE


def test_the_ca_bundle_for_the_indexes_is_mounted_never_copied() -> None:
    for marker in ("uv export", "--no-deps -e ."):
        assert dockerfile_run(marker).startswith("--mount=type=bind,from=host-ca,")
    assert "FROM scratch AS host-ca" in DOCKERFILE  # empty unless a build names a directory
    assert not re.search(r"^(COPY|ADD) .*(ca-certificates|\.crt|\.pem)", DOCKERFILE, re.M)


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
    assert head["template"]["spec"]["serviceAccountName"] == "fraud-scoring"
    for group in cluster["workerGroupSpecs"]:
        # Not the head's account, to which KubeRay binds its autoscaler Role; no API token.
        assert group["template"]["spec"]["serviceAccountName"] == "fraud-scoring-worker"
        assert group["template"]["spec"]["automountServiceAccountToken"] is False
    for group in [head, *cluster["workerGroupSpecs"]]:
        pod = group["template"]["spec"]
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


KEYS_DIR = "/var/run/secrets/fraud-scoring/api-keys"


def test_every_ray_container_reads_the_api_keys_from_the_mounted_secret(rayservice: dict) -> None:
    for pod in ray_pods(rayservice):
        (container,) = pod["spec"]["containers"]
        env = {item["name"]: item for item in container["env"]}
        assert env["FRAUD_KEYS_DIR"] == {"name": "FRAUD_KEYS_DIR", "value": KEYS_DIR}
        # Files, not variables: read again when the Secret changes, never in the environment.
        assert not {"FRAUD_API_KEYS", "FRAUD_OPERATOR_KEYS"} & set(env)
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == KEYS_DIR]
        assert mount["readOnly"] is True
        (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == mount["name"]]
        # Readable by the pod's group only (fsGroup), never by others.
        assert volume["secret"] == {"secretName": "fraud-scoring-api-keys", "defaultMode": 0o440}
        assert pod["spec"]["securityContext"]["fsGroup"] == 100


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
        writable = {
            mount["mountPath"]: mount["name"]
            for mount in container["volumeMounts"]
            if not mount.get("readOnly")
        }
        assert writable == {"/tmp": "tmp", "/home/ray/.cache": "cache"}
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        assert all("emptyDir" in volumes[name] for name in writable.values())
        assert {m["mountPath"] for m in container["volumeMounts"]} == {*writable, KEYS_DIR}
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


# The suites of the ALB's predefined policies, as AWS documents them (TLS 1.2 by OpenSSL name;
# TLS 1.3's three AEAD suites are in every TLS13 policy).
ALB_TLS12_SUITES = {
    "ELBSecurityPolicy-TLS13-1-2-2021-06": [
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES128-SHA256", "ECDHE-RSA-AES128-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-AES256-SHA384", "ECDHE-RSA-AES256-SHA384",
    ],
    "ELBSecurityPolicy-TLS13-1-2-Res-2021-06": [
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    ],
}  # fmt: skip


def cbc_suites(policy: str) -> list[str]:
    """The policy's TLS 1.2 suites that are not AEAD (CBC with an HMAC)."""
    return [suite for suite in ALB_TLS12_SUITES[policy] if "-GCM-" not in suite]


def test_the_load_balancer_offers_no_cbc_suite() -> None:
    policies = {
        doc["metadata"]["annotations"]["alb.ingress.kubernetes.io/ssl-policy"]
        for doc in CLUSTER_DOCS
        if doc["kind"] == "Ingress"
    }
    assert len(policies) == 1  # one load balancer, one listener
    (policy,) = policies
    assert policy in ALB_TLS12_SUITES, f"{policy}: add its suites to the table first"
    assert cbc_suites(policy) == []
    assert cbc_suites("ELBSecurityPolicy-TLS13-1-2-2021-06")  # the check can fail


SERVE_SERVICE_LABEL = "ray.io/serve"


def kuberay_serve_service(rayservice: dict, active_cluster: str) -> dict:
    """KubeRay 1.7's serve Service of a RayService (BuildServeService): the head container's
    ports named `serve` or `serve-*`, each replaced by spec.serveService's port of that name,
    selecting the pods of the active RayCluster whose proxy is up."""
    (head,) = rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"][
        "containers"
    ]
    custom = {p["name"]: p for p in rayservice["spec"].get("serveService", {}).get("spec", {}).get(
        "ports", []
    )}  # fmt: skip
    ports = [
        custom.get(port["name"], {"name": port["name"], "port": port["containerPort"]})
        for port in head["ports"]
        if port["name"] == "serve" or port["name"].startswith("serve-")
    ]
    return {
        "metadata": {"name": f"{rayservice['metadata']['name']}-serve-svc"},
        "spec": {
            "selector": {"ray.io/cluster": active_cluster, SERVE_SERVICE_LABEL: "true"},
            "ports": ports,
        },
    }


def upgrade_pods(rayservice: dict) -> list[dict[str, str]]:
    """The labels of every Ray pod during a NewCluster upgrade: the active cluster's and the
    pending one's, whose workers KubeRay labels as serving from their start."""
    cluster = rayservice["spec"]["rayClusterConfig"]
    pods = []
    for name in ("fraud-scoring-active", "fraud-scoring-pending"):
        for group, kind in [(cluster["headGroupSpec"], "head")] + [
            (worker, "worker") for worker in cluster["workerGroupSpecs"]
        ]:
            pods.append(
                group["template"]["metadata"]["labels"]
                | {"ray.io/cluster": name, "ray.io/node-type": kind, SERVE_SERVICE_LABEL: "true"}
            )
    return pods


def selected(service: dict, pods: list[dict[str, str]]) -> set[str]:
    selector = service["spec"]["selector"]
    return {pod["ray.io/cluster"] for pod in pods if selector.items() <= pod.items()}


def test_grpc_reaches_only_the_active_cluster_during_an_upgrade(rayservice: dict) -> None:
    grpc = next(doc for doc in CLUSTER_DOCS if doc["metadata"]["name"] == "fraud-scoring-grpc")
    (path,) = [path for rule in grpc["spec"]["rules"] for path in rule["http"]["paths"]]
    backend = path["backend"]["service"]
    pods = upgrade_pods(rayservice)
    services = {doc["metadata"]["name"]: doc for doc in CLUSTER_DOCS if doc["kind"] == "Service"}
    serve = kuberay_serve_service(rayservice, "fraud-scoring-active")
    services[serve["metadata"]["name"]] = serve
    target = services[backend["name"]]
    assert selected(target, pods) == {"fraud-scoring-active"}
    assert backend["port"]["number"] in {port["port"] for port in target["spec"]["ports"]}
    # Any Service of ours that selects Ray pods follows the active cluster the same way.
    for service in services.values():
        assert len(selected(service, pods)) <= 1, service["metadata"]["name"]


def test_the_selection_rule_would_catch_a_service_across_clusters(rayservice: dict) -> None:
    across = {
        "spec": {
            "selector": {"app.kubernetes.io/name": "fraud-scoring", SERVE_SERVICE_LABEL: "true"}
        }
    }
    assert selected(across, upgrade_pods(rayservice)) == {
        "fraud-scoring-active", "fraud-scoring-pending"
    }  # fmt: skip


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
    serve = kuberay_serve_service(rayservice, "any")
    assert path["backend"]["service"]["name"] == serve["metadata"]["name"]
    (port,) = [
        p
        for p in serve["spec"]["ports"]
        if p["port"] == path["backend"]["service"]["port"]["number"]
    ]
    assert port == {"name": "serve-grpc", "port": 9000, "appProtocol": "kubernetes.io/h2c"}
    assert port["port"] == serve_config["grpc_options"]["port"]
    assert serve_config["grpc_options"]["grpc_servicer_functions"] == [SERVICER_FUNCTION]
    # Every Ray pod serves it on the port of that name.
    for pod in ray_pods(rayservice):
        (container,) = pod["spec"]["containers"]
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert named[port["name"]] == port["port"]


def test_service_accounts_use_irsa_and_the_budget_selects_the_workers(rayservice: dict) -> None:
    kinds = {doc["kind"]: doc for doc in CLUSTER_DOCS}
    accounts = {
        doc["metadata"]["name"]: doc for doc in CLUSTER_DOCS if doc["kind"] == "ServiceAccount"
    }
    cluster = rayservice["spec"]["rayClusterConfig"]
    used = {
        group["template"]["spec"]["serviceAccountName"]
        for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    }
    assert used == set(accounts) == {"fraud-scoring", "fraud-scoring-worker"}
    roles = {
        name: a["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        for name, a in accounts.items()
    }
    assert len(set(roles.values())) == 2  # a role each
    assert accounts["fraud-scoring-worker"]["automountServiceAccountToken"] is False
    for name in accounts:  # each role trusts its own account only
        trust = json.loads((PROJECT_ROOT / "k8s" / "iam" / f"{name}.trust.json").read_text())
        (statement,) = trust["Statement"]
        subjects = [
            v for k, v in statement["Condition"]["StringEquals"].items() if k.endswith(":sub")
        ]
        assert subjects == [f"system:serviceaccount:fraud:{name}"]
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


def test_the_serving_role_reads_artifacts_and_writes_the_ledger_put_only() -> None:
    policy = json.loads((PROJECT_ROOT / "k8s" / "iam" / "serving-permissions.json").read_text())
    allowed = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    actions = {(s["Action"], s["Resource"]) for s in allowed}
    models = "arn:aws:s3:::fraud-scoring-models-123456789012"
    ledger = "arn:aws:s3:::fraud-scoring-ledger-123456789012"
    assert actions == {
        ("s3:GetObject", f"{models}/fraud/*"),  # the artifacts, read only
        ("s3:PutObject", f"{ledger}/ledger/*"),
        ("s3:GetObject", f"{ledger}/ledger/decisions/*"),  # the outcomes endpoint's lookup
        ("s3:ListBucket", ledger),
    }
    (deny,) = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert deny["Action"] == "s3:PutObject" and deny["Resource"] == f"{ledger}/ledger/*"
    assert deny["Condition"] == {"Null": {"s3:if-none-match": "true"}}  # never an overwrite
    # The production config reads and writes exactly there.
    production = yaml.safe_load(
        (PROJECT_ROOT / "configs" / "serve_config.production.yaml").read_text()
    )
    (application,) = production["applications"]
    model = next(d for d in application["deployments"] if d["name"] == "FraudModel")
    assert model["user_config"]["artifact_uri"].startswith(
        "s3://fraud-scoring-models-123456789012/fraud/"
    )
    assert (
        application["args"]["ledger"]["location"] == "s3://fraud-scoring-ledger-123456789012/ledger"
    )


# What the `restricted` Pod Security Standard demands of every container (pod-level settings
# count for its containers), and the volume types it admits.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}  # fmt: skip


def restricted_violations(pod: dict, containers: list[dict]) -> list[str]:
    found = []
    pod_security = pod.get("securityContext", {})
    for container in containers:
        security = pod_security | container.get("securityContext", {})
        name = container.get("name", "?")
        if security.get("runAsNonRoot") is not True or security.get("runAsUser") == 0:
            found.append(f"{name}: may run as root")
        if security.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: privilege escalation")
        if security.get("capabilities", {}).get("drop") != ["ALL"] or security.get(
            "capabilities", {}
        ).get("add", []) not in ([], ["NET_BIND_SERVICE"]):
            found.append(f"{name}: capabilities")
        if security.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: no seccomp profile")
        if security.get("privileged"):
            found.append(f"{name}: privileged")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"volume {volume['name']}: {kinds}")
    if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
        found.append("host namespaces")
    return found


def test_the_namespace_enforces_restricted_and_every_pod_meets_it(rayservice: dict) -> None:
    namespace = next(doc for doc in CLUSTER_DOCS if doc["kind"] == "Namespace")
    labels = namespace["metadata"].get("labels", {})
    assert labels.get("pod-security.kubernetes.io/enforce") == "restricted"
    cluster = rayservice["spec"]["rayClusterConfig"]
    autoscaler = {
        "name": "autoscaler",
        "securityContext": cluster["autoscalerOptions"]["securityContext"],
    }
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        pod = group["template"]["spec"]
        containers = pod["containers"] + ([autoscaler] if group is cluster["headGroupSpec"] else [])
        assert restricted_violations(pod, containers) == []
    assert restricted_violations({}, [{"name": "plain"}])  # the check can fail


def test_the_report_rayjob_in_the_same_namespace_meets_restricted_too() -> None:
    rayjob = yaml.safe_load((PROJECT_ROOT / "k8s" / "rayjob-report.yaml").read_text())
    cluster = rayjob["spec"]["rayClusterSpec"]
    assert rayjob["metadata"]["namespace"] == "fraud"
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        pod = group["template"]["spec"]
        assert restricted_violations(pod, pod["containers"]) == []
