"""Hot model reload through FraudModel's user_config, and a bad model at start.

A good artifact switches atomically (each answer is wholly from one model, named in the
answer); a missing, corrupt or tampered one is refused while the old model keeps serving, and
the refusal shows in GET /api/v1/model. A bad artifact at start fails the deploy with its reason.
"""

import json
import shutil
import threading
import time
from pathlib import Path

import boto3
import httpx
import numpy as np
import pytest
from ray import serve

from fraud_model.artifact import load_artifact, read_metadata
from fraud_model.store import publish_artifact
from tests.helpers import as_json, random_transactions, write_other_artifact
from tests.polling import wait_for
from tests.serve.serving import deploy_app, metric_value, metrics_text, replica_names
from training.data import Dataset

pytestmark = [pytest.mark.ray, pytest.mark.serve]

ROWS = random_transactions(16, seed=11)


@pytest.fixture(scope="module")
def second_artifact(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: Dataset) -> Path:
    path = tmp_path_factory.mktemp("reload") / "second"
    return write_other_artifact(path, tiny_dataset, seed=1, threshold=0.02)


@pytest.fixture(scope="module")
def reload_app(serve_url: str, session_artifact: Path) -> str:
    deploy_app("reload", str(session_artifact))
    yield f"{serve_url}/reload"
    serve.delete("reload")


def expected_version(artifact_dir: Path) -> str:
    return read_metadata(artifact_dir).model_version


def expected_scores(artifact_dir: Path) -> dict[str, np.ndarray]:
    artifact = load_artifact(artifact_dir)
    return {artifact.metadata.model_version: artifact.fraud_probability(ROWS)}


@pytest.fixture(scope="module")
def refused_reloads() -> list[str]:
    """The reloads the `reload` app has refused so far: its one replica counts them all."""
    return []


def reload_failures() -> float:
    return metric_value("ray_fraud_model_reload_failures_total", application="reload")


def retune(artifact_uri: str) -> None:
    deploy_app("reload", artifact_uri)


def model_info(base: str) -> dict:
    return httpx.get(f"{base}/api/v1/model", timeout=30).json()


def test_a_good_artifact_switches_atomically_without_a_restart(
    reload_app: str, session_artifact: Path, second_artifact: Path
) -> None:
    expected = expected_scores(session_artifact) | expected_scores(second_artifact)
    old_version, new_version = expected
    replicas = replica_names("reload")
    answers: list[tuple[int, dict]] = []
    stop = threading.Event()

    def keep_scoring() -> None:
        with httpx.Client(base_url=reload_app, timeout=30) as http:
            while not stop.is_set():
                for index, row in enumerate(ROWS):
                    response = http.post("/api/v1/predict", json=as_json(row))
                    answers.append((index, response.json() | {"status": response.status_code}))

    traffic = threading.Thread(target=keep_scoring)
    traffic.start()
    try:
        assert wait_for(lambda: answers, timeout_s=30, every_s=0.05)  # the old model answered
        retune(str(second_artifact))
        stop.wait(1.0)  # traffic keeps flowing after the switch
    finally:
        stop.set()
        traffic.join()

    assert replica_names("reload") == replicas  # reloaded in place, no new replica
    seen = {answer["model_version"] for _, answer in answers}
    assert seen == {old_version, new_version}
    for index, answer in answers:
        assert answer["status"] == 200
        # A whole model: the score is exactly what the model named in the answer gives.
        assert answer["fraud_probability"] == pytest.approx(
            expected[answer["model_version"]][index], abs=1e-12
        )
    info = model_info(reload_app)
    assert info["model_version"] == new_version
    assert info["artifact_uri"] == str(second_artifact)
    assert info["threshold"] == 0.02 and info["last_reload_error"] is None


def corrupt_copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    onnx = target / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-1] + b"\x00")
    return target


@pytest.mark.parametrize(
    ("make_bad", "reason"),
    [
        (lambda good, tmp: tmp / "does-not-exist", "No model artifact directory"),
        (lambda good, tmp: corrupt_copy(good, tmp / "tampered"), "sha256"),
        (lambda good, tmp: tmp, "metadata.json is missing"),
    ],
    ids=["missing", "tampered", "not-an-artifact"],
)
def test_a_bad_artifact_is_refused_and_the_old_model_keeps_serving(
    reload_app: str,
    session_artifact: Path,
    second_artifact: Path,
    tmp_path: Path,
    refused_reloads: list[str],
    make_bad,
    reason: str,
) -> None:
    retune(str(second_artifact))
    serving = model_info(reload_app)["model_version"]

    bad = make_bad(second_artifact, tmp_path)
    retune(str(bad))
    refused_reloads.append(str(bad))

    info = model_info(reload_app)
    assert info["model_version"] == serving
    assert info["last_reload_error"]["artifact_uri"] == str(bad)
    assert reason in info["last_reload_error"]["error"]
    response = httpx.post(f"{reload_app}/api/v1/predict", json=as_json(ROWS[0]), timeout=30)
    assert response.status_code == 200 and response.json()["model_version"] == serving

    # The refusal is counted in the metric, once: the counter is cumulative (one replica
    # throughout the module), and exported every few seconds.
    assert wait_for(lambda: reload_failures() >= len(refused_reloads), timeout_s=90, every_s=2)
    assert reload_failures() == len(refused_reloads)

    retune(str(second_artifact))  # a good config clears the error
    assert model_info(reload_app)["last_reload_error"] is None


def test_a_bad_artifact_at_start_fails_the_deploy_with_its_reason(
    serve_url: str, session_artifact: Path, tmp_path: Path
) -> None:
    bad = corrupt_copy(session_artifact, tmp_path / "tampered")
    deploy_app("bad-start", str(bad), wait=False)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            app = serve.status().applications.get("bad-start")
            if app is not None and app.status == "DEPLOY_FAILED":
                break
            time.sleep(1)
        model = app.deployments["FraudModel"]
        assert app.status == "DEPLOY_FAILED"
        # `serve status` (and the RayService status on KubeRay) carries the reason.
        assert "FraudModel cannot start" in model.message
        assert f"artifact {bad} refused" in model.message  # names the artifact
        assert "sha256" in model.message  # and the reason
    finally:
        serve.delete("bad-start")


def s3_model_options(s3_env: dict[str, str], cache: Path, replicas: int = 1) -> dict:
    """The replicas get the same standard AWS settings as a pod with IRSA would (here: moto's)."""
    replica_env = s3_env | {"FRAUD_ARTIFACT_CACHE": str(cache)}
    return {
        "num_replicas": replicas,
        "autoscaling_config": None,  # a fixed count instead of the code's autoscaling
        "ray_actor_options": {"num_cpus": 1, "runtime_env": {"env_vars": replica_env}},
    }


def test_replicas_load_and_hot_reload_published_versions_from_s3(
    serve_url: str,
    session_artifact: Path,
    second_artifact: Path,
    s3_env: dict[str, str],
    tmp_path: Path,
) -> None:
    boto3.client("s3").create_bucket(Bucket="fraud-models")
    first = publish_artifact(session_artifact, "s3://fraud-models/reload")
    second = publish_artifact(second_artifact, "s3://fraud-models/reload")
    options = s3_model_options(s3_env, tmp_path / "cache")
    pin = {"metadata_sha256": first.metadata_sha256}
    deploy_app("s3", first.uri, user_config=pin, model_options=options)
    base = f"{serve_url}/s3"
    try:
        ((version, scores),) = expected_scores(session_artifact).items()
        answer = httpx.post(f"{base}/api/v1/predict", json=as_json(ROWS[3]), timeout=30).json()
        assert answer["model_version"] == version
        assert answer["fraud_probability"] == pytest.approx(scores[3], abs=1e-12)
        info = model_info(base)
        assert info["artifact_uri"] == first.uri and info["pinned"] is True
        assert info["metadata_sha256"] == first.metadata_sha256

        pin = {"metadata_sha256": second.metadata_sha256}
        deploy_app("s3", second.uri, user_config=pin, model_options=options)
        info = model_info(base)
        assert info["model_version"] == second.model_version == expected_version(second_artifact)
        assert info["artifact_uri"] == second.uri
        cached = {path.parent.parent.name for path in (tmp_path / "cache").rglob("metadata.json")}
        assert cached == {first.model_version, second.model_version}
    finally:
        serve.delete("s3")


def served_versions(app: str, replicas: int = 1) -> dict[str, str]:
    """replica -> the model version it reports serving (the fraud_model_info gauge at 1), once
    at least `replicas` report (else empty). A gauge is dropped from Ray's endpoint when an
    export of it comes late: read it once, where it is there, rather than twice."""
    versions = {}
    for line in metrics_text().splitlines():
        serving = line.startswith("ray_fraud_model_info{") and line.endswith(" 1.0")
        if serving and f'application="{app}"' in line:
            replica = line.split('replica="', 1)[1].split('"', 1)[0]
            versions[replica] = line.split('model_version="', 1)[1].split('"', 1)[0]
    return versions if len(versions) >= replicas else {}


def test_every_replica_serves_the_pinned_version_even_one_added_after_the_store_changed(
    serve_url: str,
    session_artifact: Path,
    second_artifact: Path,
    s3_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """The old failure: replicas read a mutable prefix at start, so one added by the autoscaler
    after a publish served another model than its siblings. Now the config names one version
    and pins its bytes: a later replica serves exactly that version, or refuses to start."""
    boto3.client("s3").create_bucket(Bucket="pinned-models")
    pinned = publish_artifact(session_artifact, "s3://pinned-models/fraud")
    config = {"metadata_sha256": pinned.metadata_sha256}
    deploy_app(
        "pinned",
        pinned.uri,
        user_config=config,
        model_options=s3_model_options(s3_env, tmp_path / "cache", replicas=1),
    )
    base = f"{serve_url}/pinned"
    try:
        versions = wait_for(lambda: served_versions("pinned"), timeout_s=60)
        assert set(versions.values()) == {pinned.model_version}

        # A new version is published, and the pinned one is rewritten in place behind
        # publish's back (a new threshold under the same name and model files).
        publish_artifact(second_artifact, "s3://pinned-models/fraud")
        key = f"{pinned.uri.removeprefix('s3://pinned-models/')}/metadata.json"
        original = (session_artifact / "metadata.json").read_bytes()
        rewritten = json.dumps(json.loads(original) | {"threshold": 0.9}).encode()
        boto3.client("s3").put_object(Bucket="pinned-models", Key=key, Body=rewritten)

        # The autoscaler (here: the config) adds a replica, which must not serve the rewrite.
        options = s3_model_options(s3_env, tmp_path / "cache", replicas=2)
        deploy_app("pinned", pinned.uri, user_config=config, model_options=options, wait=False)

        def refusal() -> str:
            app = serve.status().applications.get("pinned")
            message = app.deployments["FraudModel"].message if app else ""
            return message if "the config pins" in message else ""

        message = wait_for(refusal, timeout_s=90)
        assert f"artifact {pinned.uri} refused" in message and pinned.metadata_sha256 in message
        for row in ROWS[:8]:
            answer = httpx.post(f"{base}/api/v1/predict", json=as_json(row), timeout=30).json()
            assert answer["model_version"] == pinned.model_version
            assert answer["threshold"] == 0.01  # the pinned artifact's, not the rewrite's 0.9
        versions = wait_for(lambda: served_versions("pinned"), timeout_s=60)
        assert set(versions.values()) == {pinned.model_version}

        # Once the store holds the pinned bytes again, the new replica starts, on that version.
        boto3.client("s3").put_object(Bucket="pinned-models", Key=key, Body=original)
        versions = wait_for(lambda: served_versions("pinned", replicas=2), timeout_s=120)
        assert set(versions.values()) == {pinned.model_version}
    finally:
        serve.delete("pinned")
