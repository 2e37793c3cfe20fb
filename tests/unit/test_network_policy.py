"""Who can connect to which port of the Ray pods, and where the Ray pods can connect, by the
NetworkPolicies in k8s/cluster.yaml.

The policies are evaluated here with Kubernetes' rules, for ingress and egress alike: a pod
selected by any policy of a direction accepts (or opens) only what one of those policies' rules
allows; peers are matched by pod labels (in the policy's namespace), namespace labels, or both,
or by an IP block for addresses outside the cluster's pods; a rule without ports allows every
port, a port entry without a protocol means TCP.
"""

import ipaddress
from dataclasses import dataclass, field

import pytest
import yaml

from tests.helpers import PROJECT_ROOT

# Every policy of the namespace: serving's, and the ledger report's RayJob's.
POLICIES = [
    doc
    for name in ("cluster.yaml", "ledger-report.yaml")
    for doc in yaml.safe_load_all((PROJECT_ROOT / "k8s" / name).read_text())
    if doc["kind"] == "NetworkPolicy"
]
NAMESPACE = "fraud"
RAY = {"app.kubernetes.io/name": "fraud-scoring", "ray.io/is-ray-node": "yes"}
HEAD = RAY | {"ray.io/node-type": "head"}
WORKER = RAY | {"ray.io/node-type": "worker"}
REPORT = {"app.kubernetes.io/name": "fraud-ledger-report", "ray.io/is-ray-node": "yes"}


@dataclass(frozen=True)
class Source:
    namespace: str | None = None  # None: not a pod of the cluster (then `ip` is its address)
    labels: dict[str, str] = field(default_factory=dict)
    ip: str | None = None


def matches(selector: dict, labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


def peer_matches(peer: dict, source: Source) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        if source.ip is None or source.namespace is not None:
            return False  # ip blocks are for traffic from outside the cluster's pods
        inside = ipaddress.ip_address(source.ip) in ipaddress.ip_network(block["cidr"])
        excluded = any(
            ipaddress.ip_address(source.ip) in ipaddress.ip_network(cidr)
            for cidr in block.get("except", [])
        )
        return inside and not excluded
    if source.namespace is None:
        return False
    namespace_labels = {"kubernetes.io/metadata.name": source.namespace}
    if "namespaceSelector" in peer:
        if not matches(peer["namespaceSelector"], namespace_labels):
            return False
    elif source.namespace != NAMESPACE:
        return False  # a podSelector alone means pods of the policy's own namespace
    return "podSelector" not in peer or matches(peer["podSelector"], source.labels)


def allowed(source: Source, target: dict[str, str], port: int) -> bool:
    """Whether `source` may connect to a pod of this namespace labelled `target` on TCP `port`."""
    return _admitted("Ingress", target, source, port, "TCP")


def egress_allowed(
    pod: dict[str, str], destination: Source, port: int, protocol: str = "TCP"
) -> bool:
    """Whether a pod of this namespace labelled `pod` may connect to `destination` on `port`."""
    return _admitted("Egress", pod, destination, port, protocol)


def _admitted(direction: str, pod: dict[str, str], peer: Source, port: int, protocol: str) -> bool:
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    selecting = [
        policy
        for policy in POLICIES
        if direction in policy["spec"]["policyTypes"]
        and matches(policy["spec"]["podSelector"], pod)
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get(rules_key, []):
            ports = [
                (entry["port"], entry.get("protocol", "TCP")) for entry in rule.get("ports", [])
            ]
            if ports and (port, protocol) not in ports:
                continue
            if peers_key not in rule or any(
                peer_matches(rule_peer, peer) for rule_peer in rule[peers_key]
            ):
                return True
    return False


CONTROL_PLANE = [6379, 8265, 10001, 52365]  # GCS, dashboard and Jobs API, Ray Client, agent
OPERATOR = Source("kuberay-system", {"app.kubernetes.io/name": "kuberay-operator"})
PROMETHEUS = Source("monitoring", {"app.kubernetes.io/name": "prometheus"})
OTHER_POD = Source("default", {"app": "someone-else"})
OTHER_POD_HERE = Source(NAMESPACE, {"app": "debug-shell"})
LOAD_BALANCER = Source(ip="10.0.102.34")  # in one of the ALB's subnets
ELSEWHERE_IN_THE_VPC = Source(ip="10.0.12.34")  # a node, another workload's pod by IP
INTERNET = Source(ip="203.0.113.9")
INSTANCE_METADATA = Source(ip="169.254.169.254")
DNS = Source("kube-system", {"k8s-app": "kube-dns"})
S3_AND_STS_ENDPOINT = Source(ip="10.0.201.17")  # an interface endpoint's address
API_SERVER = Source(ip="10.0.1.40")  # an EKS control plane ENI


def test_every_pod_of_the_namespace_is_default_deny() -> None:
    assert not allowed(OTHER_POD, {"app": "anything"}, 80)
    assert not allowed(OTHER_POD_HERE, {}, 443)


@pytest.mark.parametrize("target", [HEAD, WORKER], ids=["head", "worker"])
@pytest.mark.parametrize(
    "source",
    [OTHER_POD, OTHER_POD_HERE, PROMETHEUS, LOAD_BALANCER, INTERNET],
    ids=["other-namespace", "same-namespace", "prometheus", "load-balancer", "internet"],
)
@pytest.mark.parametrize("port", CONTROL_PLANE)
def test_no_one_outside_the_ray_cluster_reaches_its_control_plane(
    target: dict, source: Source, port: int
) -> None:
    assert not allowed(source, target, port)


def test_the_operator_reaches_only_the_head_dashboard() -> None:
    assert allowed(OPERATOR, HEAD, 8265)
    assert not any(allowed(OPERATOR, HEAD, port) for port in (6379, 8000, 8080, 10001))
    assert not allowed(OPERATOR, WORKER, 8265)


@pytest.mark.parametrize("target", [HEAD, WORKER], ids=["head", "worker"])
def test_the_ray_pods_reach_each_other_on_any_port(target: dict) -> None:
    ray_pod = Source(NAMESPACE, WORKER)
    assert all(allowed(ray_pod, target, port) for port in [*CONTROL_PLANE, 8000, 8080, 45123])


@pytest.mark.parametrize("target", [HEAD, WORKER], ids=["head", "worker"])
def test_the_load_balancer_reaches_the_api_and_prometheus_the_metrics(target: dict) -> None:
    for api in (8000, 9000):  # HTTP and gRPC
        assert allowed(LOAD_BALANCER, target, api)
        assert not allowed(INTERNET, target, api)
        assert not allowed(OTHER_POD, target, api)
        assert not allowed(ELSEWHERE_IN_THE_VPC, target, api)  # the ALB's subnets only
    assert allowed(PROMETHEUS, target, 8080)
    assert not allowed(PROMETHEUS, target, 8000)
    assert not allowed(Source("monitoring", {"app": "grafana"}), target, 8080)


def test_the_evaluation_would_catch_an_open_control_plane() -> None:
    opened = {
        "kind": "NetworkPolicy",
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "fraud-scoring"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {}}]}],
        },
    }
    POLICIES.append(opened)
    try:
        assert allowed(OTHER_POD, HEAD, 8265)
    finally:
        POLICIES.remove(opened)


@pytest.mark.parametrize("pod", [HEAD, WORKER], ids=["head", "worker"])
def test_the_ray_pods_reach_dns_s3_sts_and_each_other_and_nothing_else(pod: dict) -> None:
    assert egress_allowed(pod, DNS, 53, "UDP") and egress_allowed(pod, DNS, 53, "TCP")
    assert egress_allowed(pod, S3_AND_STS_ENDPOINT, 443)
    assert all(egress_allowed(pod, Source(NAMESPACE, WORKER), port) for port in (6379, 45123))
    assert not egress_allowed(pod, S3_AND_STS_ENDPOINT, 80)
    assert not egress_allowed(pod, INTERNET, 443)
    assert not egress_allowed(pod, ELSEWHERE_IN_THE_VPC, 443)
    assert not egress_allowed(pod, OTHER_POD, 80)
    assert not egress_allowed(pod, Source("kube-system", {"k8s-app": "metrics-server"}), 53, "UDP")


@pytest.mark.parametrize(
    "pod", [HEAD, WORKER, {"app": "debug-shell"}], ids=["head", "worker", "other-pod"]
)
@pytest.mark.parametrize("port", [80, 443])
def test_no_pod_of_the_namespace_reaches_the_instance_metadata_service(
    pod: dict, port: int
) -> None:
    assert not egress_allowed(pod, INSTANCE_METADATA, port)


def test_only_the_head_reaches_the_api_server() -> None:
    assert egress_allowed(HEAD, API_SERVER, 443)  # KubeRay's autoscaler sidecar
    assert not egress_allowed(WORKER, API_SERVER, 443)
    assert not egress_allowed(HEAD, API_SERVER, 10250)  # not the kubelets


def test_the_egress_evaluation_would_catch_an_open_egress() -> None:
    opened = {
        "kind": "NetworkPolicy",
        "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]},
    }
    POLICIES.append(opened)
    try:
        assert egress_allowed(WORKER, INSTANCE_METADATA, 80)
    finally:
        POLICIES.remove(opened)


@pytest.mark.parametrize("node", ["head", "worker"])
def test_the_ledger_report_s_pods_reach_what_they_need_and_nothing_else(node: str) -> None:
    pod = REPORT | {"ray.io/node-type": node}
    other = Source(NAMESPACE, REPORT | {"ray.io/node-type": "worker"})
    assert egress_allowed(pod, other, 6379) and egress_allowed(pod, other, 45123)
    assert egress_allowed(pod, DNS, 53, "UDP") and egress_allowed(pod, S3_AND_STS_ENDPOINT, 443)
    assert not egress_allowed(pod, INSTANCE_METADATA, 80)
    assert not egress_allowed(pod, API_SERVER, 443)
    assert not egress_allowed(pod, INTERNET, 443)
    assert not egress_allowed(pod, Source(NAMESPACE, HEAD), 8265)  # serving's control plane
