"""The cluster runs the local serve command's ingress, and Prometheus can scrape every Ray pod."""

import re

import yaml

from fraud_model.ray_env import RAY_ENVIRONMENT
from serve_app.local_service import ray_environment
from serve_app.routes import API_PREFIX, HEALTH_PATH
from tests.helpers import PROJECT_ROOT


def load(name: str) -> list[dict]:
    return list(yaml.safe_load_all((PROJECT_ROOT / "k8s" / name).read_text()))


def ray_containers() -> list[dict]:
    (service,) = load("rayservice.yaml")
    cluster = service["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [group["template"]["spec"]["containers"][0] for group in groups]


def test_every_ray_pod_and_the_image_run_with_the_ray_environment_of_fraud_serve() -> None:
    """One source (fraud_model.ray_env): the pods, the image and `fraud-serve` set exactly the
    same Ray variables, and none that `fraud-serve` does not set the same way."""
    local = ray_environment("/tmp/state")
    assert local.items() >= RAY_ENVIRONMENT.items()
    for container in ray_containers():
        env = {item["name"]: item.get("value") for item in container["env"]}
        ray = {name: value for name, value in env.items() if name.startswith("RAY_")}
        assert ray == RAY_ENVIRONMENT, container["name"]
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    image = {
        name: value.strip('"')
        for line in dockerfile.replace("\\\n", " ").splitlines()
        if line.startswith("ENV ")
        for name, value in re.findall(r'(RAY_\w+)=("[^"]*"|\S+)', line)
    }
    assert image == RAY_ENVIRONMENT


def test_pod_monitor_scrapes_the_metrics_port_of_every_ray_pod() -> None:
    (monitor,) = [doc for doc in load("monitoring.yaml") if doc["kind"] == "PodMonitor"]
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "PodMonitor")
    spec = monitor["spec"]
    (namespace,) = [
        doc["metadata"]["name"] for doc in load("cluster.yaml") if doc["kind"] == "Namespace"
    ]
    assert spec["namespaceSelector"]["matchNames"] == [namespace]
    # The label KubeRay puts on every head and worker pod, and the port each of them names.
    assert spec["selector"]["matchLabels"] == {"ray.io/is-ray-node": "yes"}
    (endpoint,) = spec["podMetricsEndpoints"]
    for container in ray_containers():
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert ports[endpoint["port"]] == 8080, container["name"]


def test_the_load_balancer_checks_the_apis_own_health_check_and_routes_its_prefix() -> None:
    (ingress,) = [
        doc
        for doc in load("cluster.yaml")
        if doc["kind"] == "Ingress" and doc["metadata"]["name"] == "fraud-scoring"
    ]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == HEALTH_PATH
    (rule,) = ingress["spec"]["rules"]
    assert [path["path"] for path in rule["http"]["paths"]] == [API_PREFIX]
