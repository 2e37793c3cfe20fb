"""The production path, rehearsed: the rendered RayService on a real multi-node Ray cluster
(a head with no CPUs and two workers, token authentication on, all on this machine), its Serve
config applied through the dashboard's REST API as the KubeRay operator applies it, the model
from a real S3 API (moto's server) by a pinned `s3://` version.

The tests run in file order on one cluster, and the last one loses a node.
"""

import gzip
import json
import os
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import boto3
import grpc
import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from fraud_model.artifact import load_artifact
from fraud_model.features import FEATURE_NAMES
from fraud_model.ray_env import free_port
from fraud_model.store import PublishedArtifact, publish_artifact
from k8s.image import missing_tools
from k8s.local_cluster import (
    LocalRayCluster,
    NodeSpec,
    ServeOperator,
    new_api_keys,
    node_specs,
    rehearsal_serve_config,
    rendered_rayservice,
)
from ledger.settings import LedgerSettings
from serve_app.grpc_api import fraud_scoring_pb2 as pb
from serve_app.grpc_api.fraud_scoring_pb2_grpc import FraudScoringStub
from tests.helpers import PROJECT_ROOT, S3_TEST_ENV, ledger_rows, write_other_artifact
from tests.polling import wait_for
from training.data import Dataset

pytestmark = [pytest.mark.ray, pytest.mark.cluster]

APP = "fraud"
SECRET = "fraud-scoring-api-keys"  # the API keys' Secret, mounted as files
LEDGER = "s3://cluster-ledger/ledger"  # on the moto server, as the bucket is in production
BUNDLED = PROJECT_ROOT / "artifacts" / "default"
# The scoring key the tests' clients use gets a rate far above what they send: once a node is
# lost, one Ingress replica takes all of their requests, and the default per-key rate of a
# replica would then answer some with 429, which is not what a test here looks at.
LOAD_KEY_RATE_PER_S = 1_000_000


def load_key(key: str) -> dict:
    """The scoring key's entry in the Secret: the key, with LOAD_KEY_RATE_PER_S."""
    return {"key": key, "rate_per_s": LOAD_KEY_RATE_PER_S}


def real_rows(count: int = 64) -> np.ndarray:
    """Real transactions of the data set, half of them frauds."""
    frame = pd.read_csv(PROJECT_ROOT / "data" / "creditcard_real_subset.csv.gz")
    half = count // 2
    rows = pd.concat(
        [frame[frame["Class"] == 1][:half], frame[frame["Class"] == 0][: count - half]]
    )
    return rows[list(FEATURE_NAMES)].to_numpy(dtype=np.float32)


def as_json(row: np.ndarray) -> dict[str, float]:
    return {name: float(value) for name, value in zip(FEATURE_NAMES, row, strict=True)}


@dataclass
class Rehearsal:
    cluster: LocalRayCluster
    operator: ServeOperator
    url: str  # the head's Serve proxy
    grpc_port: int  # the head's gRPC port
    scoring_key: str
    operator_key: str
    first: PublishedArtifact
    rayservice: dict
    ledger: str  # where the Ingress replicas write the decision ledger

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.scoring_key}"}

    def model_info(self) -> dict:
        response = httpx.get(
            f"{self.url}/api/v1/model", headers=self.headers(self.operator_key), timeout=30
        )
        response.raise_for_status()
        return response.json()

    def replicas(self, deployment: str) -> list[dict]:
        details = self.operator.details()["applications"][APP]["deployments"][deployment]
        return [replica for replica in details["replicas"] if replica["state"] == "RUNNING"]


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def rehearsal(s3_endpoint: str, monkeypatch_module: pytest.MonkeyPatch) -> Iterator[Rehearsal]:
    if not missing_tools():
        # The same tests run on the containers' cluster (test_kuberay_containers), which is
        # this one as the pods run it: rehearsed once, where it is closest to production.
        pytest.skip("rehearsed in containers here (Podman is installed): test_kuberay_containers")
    with rehearsed(s3_endpoint, monkeypatch_module, in_processes, LEDGER) as started:
        yield started


@pytest.fixture(scope="module")
def processes_cluster(request: pytest.FixtureRequest) -> Iterator[LocalRayCluster]:
    """The rendered RayService's nodes as processes, for what the serving image cannot run
    (training): the rehearsal's cluster where it runs here, else one of its own."""
    if missing_tools():
        yield request.getfixturevalue("rehearsal").cluster
        return
    work_dir = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))
    cluster = in_processes(node_specs(rendered_rayservice(), new_api_keys()), work_dir, {}, {})
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(work_dir, ignore_errors=True)


# (node specs, work directory, extra environment, the Secrets' values) -> a cluster to start
ClusterFactory = Callable[
    [list[NodeSpec], Path, dict[str, str], dict[tuple[str, str], str]], LocalRayCluster
]


def in_processes(
    specs: list[NodeSpec], work_dir: Path, env: dict[str, str], secrets: dict[tuple[str, str], str]
) -> LocalRayCluster:
    return LocalRayCluster(specs, work_dir, extra_env=env)


@contextmanager
def rehearsed(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, make_cluster: ClusterFactory, ledger: str
) -> Iterator[Rehearsal]:
    """The rendered RayService on a cluster that `make_cluster` makes (processes or
    containers), the bundled model published to the S3 server, the Serve
    config applied with the decision ledger at `ledger` (on that server) and RUNNING;
    everything stopped at the end."""
    s3_env = {
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name, value in s3_env.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3")
    for bucket in ("cluster-models", ledger.split("/")[2]):
        with suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket)
    first = publish_or_reuse(BUNDLED, "s3://cluster-models/fraud")

    rayservice = rendered_rayservice()
    keys = new_api_keys()
    scoring_key = json.loads(keys[(SECRET, "scoring")])[0]
    keys[(SECRET, "scoring")] = json.dumps([load_key(scoring_key)])
    # Short, not under pytest's tmp_path: Ray's socket paths must fit in 107 characters.
    work_dir = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))
    cluster = make_cluster(node_specs(rayservice, keys), work_dir, s3_env, keys)
    started = time.monotonic()
    try:
        cluster.start()
        nodes_up = time.monotonic() - started
        operator = ServeOperator(cluster.dashboard_url, cluster.token)
        port, grpc_port = free_port(), free_port()
        pin = {"artifact_uri": first.uri, "metadata_sha256": first.metadata_sha256}
        operator.apply(rehearsal_serve_config(rayservice, port, grpc_port, pin, ledger))
        operator.wait_for_status(APP)
        print(
            f"\ncluster ({type(cluster).__name__}): 3 nodes up in {nodes_up:.1f} s, {APP} "
            f"RUNNING {time.monotonic() - started:.1f} s after the start"
        )
        yield Rehearsal(
            cluster,
            operator,
            f"http://127.0.0.1:{port}",
            grpc_port,
            scoring_key,
            json.loads(keys[(SECRET, "operator")])[0],
            first,
            rayservice,
            ledger,
        )
    finally:
        cluster.stop()
        shutil.rmtree(work_dir, ignore_errors=True)


def publish_or_reuse(source: Path, destination: str) -> PublishedArtifact:
    """`source` published under `destination`, or the version a rehearsal before this one in
    the session published there (versions are immutable: the same bytes, the same pin)."""
    from fraud_model.artifact import read_metadata, sha256_bytes
    from fraud_model.store import ArtifactExistsError

    try:
        return publish_artifact(source, destination)
    except ArtifactExistsError:
        version = read_metadata(source).model_version
        pin = sha256_bytes((source / "metadata.json").read_bytes())
        return PublishedArtifact(f"{destination}/{version}", version, pin)


def test_predictions_equal_the_single_node_service_and_models_run_on_workers_only(
    rehearsal: Rehearsal,
) -> None:
    rows = real_rows()
    single_node = load_artifact(BUNDLED).fraud_probability(rows)
    with httpx.Client(base_url=rehearsal.url, headers=rehearsal.headers(), timeout=30) as http:
        answers = [http.post("/api/v1/predict", json=as_json(row)).json() for row in rows]
        batch = http.post(
            "/api/v1/predict/batch", json={"transactions": [as_json(row) for row in rows]}
        ).json()["predictions"]
    assert [answer["fraud_probability"] for answer in answers] == pytest.approx(
        single_node.tolist(), abs=1e-12
    )
    assert [answer["fraud_probability"] for answer in batch] == pytest.approx(
        single_node.tolist(), abs=1e-12
    )
    assert {answer["model_version"] for answer in answers} == {rehearsal.first.model_version}
    flagged = sum(answer["is_fraud"] for answer in answers)
    # The same over gRPC through the head's HAProxy, with the scoring key, and none without.
    key = [("authorization", f"Bearer {rehearsal.scoring_key}")]
    with grpc.insecure_channel(f"127.0.0.1:{rehearsal.grpc_port}") as channel:
        stub = FraudScoringStub(channel)
        scores = [
            stub.Predict(pb.Transaction(**as_json(row)), metadata=key, timeout=30).fraud_probability
            for row in rows
        ]
        with pytest.raises(grpc.RpcError) as refused:
            stub.Predict(pb.Transaction(**as_json(rows[0])), timeout=30)
    assert scores == pytest.approx(single_node.tolist(), abs=1e-12)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

    nodes = rehearsal.cluster.alive_node_ids()
    (head,) = [node for node, is_head in nodes.items() if is_head]
    models = rehearsal.replicas("FraudModel")
    ingresses = rehearsal.replicas("Ingress")
    assert len(models) == 2 and len(ingresses) == 2
    assert all(replica["node_id"] != head for replica in models)
    # max_replicas_per_node: 1 for the Ingress in the production config
    assert len({replica["node_id"] for replica in ingresses}) == 2
    print(
        f"\n{len(rows)} real rows ({flagged} flagged) scored alike over HTTP (single and batch) "
        "and gRPC; "
        f"FraudModel replicas on {sorted(r['node_id'][:8] for r in models)}, head {head[:8]}"
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/jobs/"),
        ("POST", "/api/jobs/"),
        ("GET", "/api/serve/applications/"),
        ("PUT", "/api/serve/applications/"),
        ("GET", "/nodes?view=summary"),
        ("GET", "/api/v0/actors"),
    ],
)
def test_the_dashboard_and_jobs_api_refuse_requests_without_the_token(
    rehearsal: Rehearsal, method: str, path: str
) -> None:
    body = {"entrypoint": "echo pwned"} if method == "POST" else {}
    url = rehearsal.cluster.dashboard_url + path
    anonymous = httpx.request(method, url, json=body, timeout=10)
    assert anonymous.status_code == 401
    wrong = httpx.request(method, url, json=body, timeout=10, headers=rehearsal.headers("x" * 64))
    assert wrong.status_code == 403
    if method == "GET":
        assert httpx.get(url, headers=rehearsal.cluster.auth_headers(), timeout=10).is_success


def clean_environment() -> dict[str, str]:
    """This process's environment without any Ray address or token of its own."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("RAY_AUTH", "RAY_ADDRESS"))
    }


def test_the_ray_cli_needs_the_token_too(rehearsal: Rehearsal) -> None:
    ray = str(Path(sys.executable).with_name("ray"))
    env = clean_environment() | rehearsal.cluster.client_env()
    with_token = subprocess.run(
        [ray, "status"], env=env, capture_output=True, text=True, timeout=60
    )
    assert with_token.returncode == 0, with_token.stderr
    wrong = env | {"RAY_AUTH_TOKEN": "f" * 64}
    refused = subprocess.run([ray, "status"], env=wrong, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0


def test_the_api_needs_keys_and_the_docs_are_off(rehearsal: Rehearsal) -> None:
    row = as_json(real_rows(1)[0])
    assert httpx.post(f"{rehearsal.url}/api/v1/predict", json=row, timeout=30).status_code == 401
    scoring = rehearsal.headers()
    model = httpx.get(f"{rehearsal.url}/api/v1/model", headers=scoring, timeout=30)
    assert model.status_code == 403
    info = rehearsal.model_info()  # an operator key reads it
    assert info["pinned"] is True and info["artifact_uri"].startswith("s3://cluster-models/")
    # The docs are off: not there even for an operator key, and, as any route that is not
    # served, closed to a request without one (docs/SECURITY.md, closed by default).
    docs = f"{rehearsal.url}/api/v1/docs"
    assert (
        httpx.get(docs, headers=rehearsal.headers(rehearsal.operator_key), timeout=30).status_code
        == 404
    )
    assert httpx.get(docs, timeout=30).status_code == 401
    assert httpx.get(f"{rehearsal.url}/api/v1/utils/health-check/", timeout=30).json() is True


def test_a_key_added_to_the_secret_works_and_once_revoked_is_refused_without_a_restart(
    rehearsal: Rehearsal,
) -> None:
    row = as_json(real_rows(1)[0])
    ingresses = {r["replica_id"] for r in rehearsal.replicas("Ingress")}
    added = secrets.token_urlsafe(32)

    def answered(key: str) -> set[int]:
        """The statuses of a few requests with `key`, through the head's proxy to both Ingress
        replicas."""
        return {
            httpx.post(
                f"{rehearsal.url}/api/v1/predict",
                json=row,
                headers=rehearsal.headers(key),
                timeout=30,
            ).status_code
            for _ in range(8)
        }

    assert answered(added) == {401}
    with_added = [load_key(rehearsal.scoring_key), {"id": "rotation-check", "key": added}]
    rehearsal.cluster.update_secret(SECRET, {"scoring": json.dumps(with_added)})
    changed = time.monotonic()
    assert wait_for(lambda: answered(added) == {200}, timeout_s=90), answered(added)
    added_s = time.monotonic() - changed
    rehearsal.cluster.update_secret(
        SECRET, {"scoring": json.dumps([load_key(rehearsal.scoring_key)])}
    )
    changed = time.monotonic()
    assert wait_for(lambda: answered(added) == {401}, timeout_s=90), answered(added)
    revoked_s = time.monotonic() - changed
    assert answered(rehearsal.scoring_key) == {200}
    assert {r["replica_id"] for r in rehearsal.replicas("Ingress")} == ingresses  # no restart
    print(
        f"\nkeys from the Secret's files: a new key accepted {added_s:.1f} s after the files "
        f"changed, refused {revoked_s:.1f} s after it was removed; no Ingress replica restarted"
    )


def run_training(env: dict[str, str], output: Path) -> dict:
    """The training CLI as a user runs it against a cluster; returns the written metadata."""
    argv = [
        sys.executable, "-m", "training", "--synthetic", "4000", "--synthetic-fraud-rate", "0.05",
        "--n-estimators", "8", "--max-depth", "6", "--num-tasks", "4", "--seed", "11",
        "--stability-runs", "0", "--no-progress", "--output", str(output),
    ]  # fmt: skip
    done = subprocess.run(
        argv,
        env=clean_environment() | env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads((output / "metadata.json").read_text())


def test_training_against_the_cluster_builds_the_same_forest_on_both_workers(
    processes_cluster: LocalRayCluster, ray_cluster: str, tmp_path: Path
) -> None:
    on_cluster = run_training(processes_cluster.client_env(), tmp_path / "cluster")
    # The test session's own single-node cluster, with the token settings ray.init gave it.
    own_auth = {name: value for name, value in os.environ.items() if name.startswith("RAY_AUTH")}
    single_node = run_training(own_auth | {"RAY_ADDRESS": ray_cluster}, tmp_path / "single")

    nodes = processes_cluster.alive_node_ids()
    workers = {node for node, is_head in nodes.items() if not is_head}
    built = on_cluster["training_params"]["trees_by_ray_node"]
    assert set(built) == workers and sum(built.values()) == 8  # both workers, not the head
    with (
        np.load(tmp_path / "cluster" / "trees.npz") as cluster_trees,
        np.load(tmp_path / "single" / "trees.npz") as single_trees,
    ):
        assert sorted(cluster_trees.files) == sorted(single_trees.files)
        for name in cluster_trees.files:
            np.testing.assert_array_equal(cluster_trees[name], single_trees[name], err_msg=name)
    assert on_cluster["files"]["model.onnx"] == single_node["files"]["model.onnx"]
    print(f"\ntraining: trees per worker node {sorted(built.values())}; forests identical")


def retraining_sample(rows: int = 3_000) -> tuple[bytes, bytes]:
    """Real rows for a short retraining (gzipped CSV) and their sampling design: every fraud of
    the data set and legitimate rows drawn from both of its legitimate strata, the strata file
    saying how many of each stratum's population rows each stands for."""
    frame = pd.read_csv(PROJECT_ROOT / "data" / "creditcard_real_subset.csv.gz")
    design = json.loads((PROJECT_ROOT / "data" / "creditcard_real_subset.strata.json").read_text())
    frauds = frame[frame["Class"] == 1]
    legitimate = frame[frame["Class"] == 0]
    (fraud_stratum, early, late) = design["strata"]
    head = legitimate[legitimate["Time"] <= early["time_through"]]
    tail = legitimate[legitimate["Time"] > late["time_after"]]
    share = (rows - len(frauds)) // 2
    picked = [
        head.sample(share, random_state=1),
        tail.sample(rows - len(frauds) - share, random_state=2),
    ]
    for stratum, part in zip((early, late), picked, strict=True):
        stratum["sample_rows"] = len(part)
    fraud_stratum["sample_rows"] = len(frauds)
    sample = pd.concat([frauds, *picked]).sort_values("Time")
    return gzip.compress(sample.to_csv(index=False).encode()), json.dumps(design).encode()


def test_the_retraining_rayjob_s_entrypoint_trains_on_the_cluster_and_publishes_a_pinned_version(
    processes_cluster: LocalRayCluster, s3_endpoint: str, tmp_path: Path
) -> None:
    """The rendered RayJob's entrypoint, submitted as the operator submits it (the head's Jobs
    API, with the token), on the RayService's cluster shape (the RayJob's own is the same:
    tests/unit/test_retrain_manifests.py)."""
    from fraud_model.artifact import sha256_bytes
    from fraud_model.store import fetch_artifact
    from k8s.render import RETRAIN_RAYJOB

    entrypoint = yaml.safe_load(RETRAIN_RAYJOB.read_text())["spec"]["entrypoint"]
    words = shlex.split(entrypoint)
    data, models = words[words.index("--data") + 1], words[words.index("--models") + 1]
    s3_env = S3_TEST_ENV | {"AWS_ENDPOINT_URL_S3": s3_endpoint}
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, **boto_credentials())
    data_bucket, data_key = data.removeprefix("s3://").split("/", 1)
    models_bucket = models.removeprefix("s3://").split("/", 1)[0]
    for bucket in (data_bucket, models_bucket):
        with suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket)
    csv, design = retraining_sample()
    s3.put_object(Bucket=data_bucket, Key=data_key, Body=csv)
    strata_key = data_key.removesuffix(".gz").removesuffix(".csv") + ".strata.json"
    s3.put_object(Bucket=data_bucket, Key=strata_key, Body=design)

    # A short forest: the options after the manifest's go to `python -m training`.
    short = " --n-estimators 8 --max-depth 8 --num-tasks 4 --stability-runs 0 --seed 11"
    jobs = f"{processes_cluster.dashboard_url}/api/jobs/"
    headers = processes_cluster.auth_headers()
    started = time.monotonic()
    submitted = httpx.post(
        jobs,
        json={"entrypoint": entrypoint + short, "runtime_env": {"env_vars": s3_env}},
        headers=headers,
        timeout=30,
    )
    assert submitted.is_success, submitted.text
    job = submitted.json()["submission_id"]
    finished = {"SUCCEEDED", "FAILED", "STOPPED"}

    def status() -> str | None:
        state = httpx.get(jobs + job, headers=headers, timeout=10).json()["status"]
        return state if state in finished else None

    final = wait_for(status, timeout_s=240, every_s=1)
    took = time.monotonic() - started
    logs = httpx.get(f"{jobs}{job}/logs", headers=headers, timeout=10).json()["logs"]
    assert final == "SUCCEEDED", logs[-3000:]

    pins = dict(
        line.split(": ", 1)
        for line in logs.splitlines()
        if line.startswith(("artifact_uri: ", "metadata_sha256: "))
    )
    uri, pin = pins["artifact_uri"], pins["metadata_sha256"]
    assert uri.startswith(models + "/")
    challenger = yaml.safe_load(logs[logs.index("  - name: Challenger") :])
    assert challenger == [{"name": "Challenger", "user_config": pins}]
    version = uri.rsplit("/", 1)[1]
    metadata = s3.get_object(Bucket=models_bucket, Key=f"{uri.split('/', 3)[3]}/metadata.json")
    assert sha256_bytes(metadata["Body"].read()) == pin
    with pytest.MonkeyPatch.context() as patch:
        for name, value in s3_env.items():
            patch.setenv(name, value)
        local = fetch_artifact(uri, pin, cache_dir=tmp_path / "cache")
    loaded = load_artifact(local, metadata_sha256=pin)
    assert loaded.metadata.model_version == version
    trained = loaded.metadata.data
    assert (trained.rows, trained.fraud_count) == (3_000, 492)
    assert "strata file" in trained.sampling
    built = loaded.metadata.training_params["trees_by_ray_node"]
    workers = {node for node, is_head in processes_cluster.alive_node_ids().items() if not is_head}
    assert set(built) <= workers and sum(built.values()) == 8
    scores = loaded.fraud_probability(real_rows(16))
    assert scores[:8].mean() > scores[8:].mean()  # the frauds score above the rest
    print(
        f"\nretraining RayJob entrypoint: SUCCEEDED {took:.1f} s after submission, {version} "
        f"published and loaded by its pin; trees per worker {sorted(built.values())}"
    )


def boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_TEST_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": S3_TEST_ENV["AWS_DEFAULT_REGION"],
    }


@contextmanager
def scoring_load(rehearsal: Rehearsal, *loads: tuple[list, int, bool]) -> Iterator[None]:
    """Clients scoring real rows until the block ends: for each (results, clients, keep_alive),
    that many clients appending (started, seconds, row index, (status, answer)) to results."""
    stop = threading.Event()
    threads = [
        thread
        for results, clients, keep_alive in loads
        for thread in keep_scoring(rehearsal, stop, results, clients, keep_alive)
    ]
    try:
        time.sleep(2)  # the load is steady before anything happens
        yield
        time.sleep(2)  # and goes on after
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def keep_scoring(
    rehearsal: Rehearsal,
    stop: threading.Event,
    results: list,
    clients: int,
    keep_alive: bool,
) -> list[threading.Thread]:
    rows = real_rows(16)
    headers = rehearsal.headers() | ({} if keep_alive else {"Connection": "close"})

    def client() -> None:
        with httpx.Client(base_url=rehearsal.url, headers=headers, timeout=30) as http:
            index = 0
            while not stop.is_set():
                row = rows[index % len(rows)]
                request_id = f"cluster-{uuid.uuid4()}"
                started = time.monotonic()
                try:
                    response = http.post(
                        "/api/v1/predict", json=as_json(row), headers={"X-Request-ID": request_id}
                    )
                except httpx.HTTPError as error:
                    outcome = (type(error).__name__, {})
                else:
                    try:
                        outcome = (response.status_code, response.json() | {"id": request_id})
                    except ValueError:  # not our JSON: an error page from a hop on the way
                        page = f"{response.headers.get('server', '')} {response.text[:300]!r}"
                        outcome = (f"{response.status_code} page", {"page": page})
                results.append((started, time.monotonic() - started, index % len(rows), outcome))
                index += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    return threads


def served_versions(rehearsal: Rehearsal) -> dict[str, str]:
    """FraudModel replica -> the model version its fraud_model_info gauge says it serves,
    scraped from every node's metrics port."""
    versions = {}
    for node in rehearsal.cluster.nodes:
        if not node.alive():
            continue
        try:
            text = httpx.get(f"http://127.0.0.1:{node.ports['metrics']}/metrics", timeout=10).text
        except httpx.HTTPError:
            continue
        for line in text.splitlines():
            if line.startswith("ray_fraud_model_info{") and line.endswith(" 1.0"):
                replica = line.split('replica="', 1)[1].split('"', 1)[0]
                versions[replica] = line.split('model_version="', 1)[1].split('"', 1)[0]
    return versions


def test_a_model_rollout_under_load_loses_nothing_and_reaches_every_replica(
    rehearsal: Rehearsal, tmp_path: Path, tiny_dataset: Dataset
) -> None:
    write_other_artifact(tmp_path / "next", tiny_dataset, seed=3, threshold=0.05, n_estimators=6)
    second = publish_artifact(tmp_path / "next", "s3://cluster-models/fraud")
    expected = {
        rehearsal.first.model_version: load_artifact(BUNDLED).fraud_probability(real_rows(16)),
        second.model_version: load_artifact(tmp_path / "next").fraud_probability(real_rows(16)),
    }
    before = {r["replica_id"] for r in rehearsal.replicas("FraudModel")}

    results: list = []
    with scoring_load(rehearsal, (results, 6, True)):
        # What `kubectl apply` of the re-rendered manifest makes the operator do: the same
        # config with the new pinned version in FraudModel's user_config.
        rollout = {"artifact_uri": second.uri, "metadata_sha256": second.metadata_sha256}
        port = int(rehearsal.url.rsplit(":", 1)[1])
        applied = time.monotonic()
        rehearsal.operator.apply(
            rehearsal_serve_config(
                rehearsal.rayservice, port, rehearsal.grpc_port, rollout, rehearsal.ledger
            )
        )
        rehearsal.operator.wait_for_status(APP)
        everywhere = wait_for(
            lambda: (
                set(served_versions(rehearsal).values()) == {second.model_version}
                and len(served_versions(rehearsal)) == len(before)
            ),
            timeout_s=90,
        )
        switched = time.monotonic() - applied

    statuses = Counter(outcome[0] for _, _, _, outcome in results)
    assert statuses == {200: len(results)}, statuses
    seen = Counter(outcome[1]["model_version"] for _, _, _, outcome in results)
    assert set(seen) == set(expected)
    for _, _, index, (_, answer) in results:
        assert answer["fraud_probability"] == pytest.approx(
            expected[answer["model_version"]][index], abs=1e-12
        )
    assert everywhere, served_versions(rehearsal)
    assert {r["replica_id"] for r in rehearsal.replicas("FraudModel")} == before  # in place
    assert rehearsal.model_info()["model_version"] == second.model_version
    print(
        f"\nrollout under load: {len(results)} requests, all 200 ({dict(seen)}); every "
        f"replica on {second.model_version} {switched:.1f} s after the config was applied"
    )


def test_a_worker_node_lost_under_load_costs_at_most_the_requests_in_flight_on_it(
    rehearsal: Rehearsal,
) -> None:
    nodes = rehearsal.cluster.alive_node_ids()
    models = rehearsal.replicas("FraudModel")
    # The worker holding a model replica (and an Ingress replica, if one is there too).
    ingress_nodes = {r["node_id"] for r in rehearsal.replicas("Ingress")}
    target_id = max({r["node_id"] for r in models}, key=lambda node: node in ingress_nodes)
    assert not nodes[target_id]
    victim = next(
        node
        for node in rehearsal.cluster.nodes
        if node.alive() and not node.spec.head and target_id in node_ids_of(rehearsal, node)
    )
    timeout = 2.0 + 1.0  # the app's request_timeout_s, and a margin for the hops around it

    # A new connection per request for half the clients, keep-alive for the others.
    results: list = []
    reused: list = []
    with scoring_load(rehearsal, (results, 3, False), (reused, 3, True)):
        killed = time.monotonic()
        victim.kill()  # the pod is gone at once, with every process on it
        recovered = wait_for(
            lambda: node_recovered(rehearsal, target_id), timeout_s=180, every_s=0.5
        )
        recovery_s = time.monotonic() - killed

    assert recovered, rehearsal.operator.details()["applications"][APP]["deployments"]
    statuses = Counter(outcome[0] for _, _, _, outcome in results)
    slowest = max(latency for _, latency, _, _ in results + reused)
    latencies = [latency for _, latency, _, _ in results + reused]
    reused_statuses = Counter(outcome[0] for _, _, _, outcome in reused)
    print(
        f"\nworker lost under load: new connections {len(results)} requests {dict(statuses)}; "
        f"keep-alive connections {len(reused)} requests {dict(reused_statuses)}; slowest "
        f"{slowest:.2f} s (median {statistics.median(latencies) * 1000:.0f} ms); the app was "
        f"RUNNING with 2 model replicas again {recovery_s:.1f} s after the kill"
    )
    answered = {200, 503, 504}
    for _, _, _, (status, answer) in results + reused:
        if status in (503, 504):
            assert answer["detail"][0]["type"] in ("overloaded", "model_unavailable", "timeout")
    assert slowest <= timeout
    # Every request is answered 200, 503 or 504, but for the few in flight on the node at the
    # instant it goes (a known gap, docs/DEPLOY.md): their connection closed without an answer,
    # or HAProxy's plain-text 500 (Serve's page for a 502) when its retry could not apply.
    # Never another status or page, never more than one per client, never later.
    unanswered = [
        (status, round(started - killed, 2), answer)
        for started, _, _, (status, answer) in results + reused
        if status not in answered
    ]
    lost_in_flight = {"RemoteProtocolError", "500 page"}
    assert {status for status, _, _ in unanswered} <= lost_in_flight, unanswered
    pages = {answer["page"] for status, _, answer in unanswered if status == "500 page"}
    assert all(page.endswith("'Internal Server Error'") for page in pages), unanswered
    assert len(unanswered) <= 6 and all(-1 < offset < 2 for _, offset, _ in unanswered), unanswered

    # The decision ledger, in the (moto) S3 bucket: every answered decision is there but those
    # of the lost node's Ingress replica that its last flush window held (LedgerSettings'
    # flush_interval_s before the kill).
    answered_at = {
        answer["id"]: started + latency
        for started, latency, _, (status, answer) in results + reused
        if status == 200
    }

    def missing() -> list[str]:
        recorded = {row["request_id"] for row in ledger_rows(rehearsal.ledger)}
        return [request_id for request_id in answered_at if request_id not in recorded]

    # The living replicas write within their flush interval: wait that long for the rest.
    flush_s = LedgerSettings().flush_interval_s
    wait_for(lambda: not missing(), timeout_s=3 * flush_s)
    lost = missing()
    writers = {name.rsplit("-", 2)[0] for name in ledger_file_names(rehearsal.ledger)}
    print(
        f"ledger: {len(answered_at) - len(lost)} of {len(answered_at)} answered decisions "
        f"recorded, {len(lost)} lost with the node (answered "
        f"{sorted({round(answered_at[i] - killed, 1) for i in lost})} s from the kill), "
        f"files from {len(writers)} Ingress replicas"
    )
    assert all(-flush_s - 1 < answered_at[i] - killed < 1 for i in lost), lost
    assert len(writers) >= 2


def ledger_file_names(location: str) -> list[str]:
    """The names of the decision files in the ledger (each writer's name leads its own)."""
    from ledger.files import open_files, table_files

    paths = table_files(open_files(location), "decisions").values()
    return [Path(path).name for day in paths for path in day]


def node_ids_of(rehearsal: Rehearsal, node) -> set[str]:
    """The Ray node id of a started node, read from its raylet's command line."""
    ids = set()
    for pid in node.pids():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for part in command:
            if part.startswith(b"--node_id="):
                ids.add(part.split(b"=", 1)[1].decode())
    return ids


def node_recovered(rehearsal: Rehearsal, lost: str) -> bool:
    application = rehearsal.operator.details()["applications"][APP]
    if application["status"] != "RUNNING":
        return False
    models = rehearsal.replicas("FraudModel")
    return len(models) >= 2 and all(replica["node_id"] != lost for replica in models)
