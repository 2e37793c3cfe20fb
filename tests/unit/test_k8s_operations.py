"""The cluster runs the local serve command's ingress, and Prometheus can scrape every Ray pod."""

import yaml

from serve_app.cli import FAST_INGRESS, GRPC_LIMITS
from tests.helpers import PROJECT_ROOT


def load(name: str) -> list[dict]:
    return list(yaml.safe_load_all((PROJECT_ROOT / "k8s" / name).read_text()))


def ray_containers() -> list[dict]:
    (service,) = load("rayservice.yaml")
    cluster = service["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [group["template"]["spec"]["containers"][0] for group in groups]


def test_every_ray_pod_uses_the_ingress_mode_and_limits_of_fraud_serve() -> None:
    for container in ray_containers():
        env = {item["name"]: item.get("value") for item in container["env"]}
        assert env.items() >= (FAST_INGRESS | GRPC_LIMITS).items(), container["name"]


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
