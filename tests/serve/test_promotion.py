"""The README's three steps, each a config applied as `serve deploy` applies it, under continuous
load: add a challenger in shadow, watch the comparison, promote it. No request fails. And a bad
challenger config fails the deploy loudly."""

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest
from ray import serve

from fraud_model.artifact import load_artifact
from tests.helpers import as_json, random_transactions, write_other_artifact
from tests.polling import wait_for
from tests.serve.serving import deploy_app, replica_names
from training.data import Dataset

pytestmark = [pytest.mark.ray, pytest.mark.serve]

ROWS = random_transactions(16, seed=31)
ONE_REPLICA = {
    "num_replicas": 1,
    "autoscaling_config": None,
    "ray_actor_options": {"num_cpus": 0.5},
}


@pytest.fixture(scope="module")
def new_artifact(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: Dataset) -> Path:
    path = tmp_path_factory.mktemp("promotion") / "next"
    return write_other_artifact(path, tiny_dataset, seed=3, threshold=0.02, n_estimators=6)


def keep_scoring(base: str, stop: threading.Event, results: list, clients: int) -> list:
    """`clients` threads, each sending single rows and batches of 4 one after another."""

    def client(offset: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            index = offset
            while not stop.is_set():
                rows = (
                    [index % len(ROWS)]
                    if index % 5
                    else [(index + k) % len(ROWS) for k in range(4)]
                )
                try:
                    if len(rows) == 1:
                        response = http.post("/api/v1/predict", json=as_json(ROWS[rows[0]]))
                        answers = [response.json()] if response.status_code == 200 else []
                    else:
                        body = {"transactions": [as_json(ROWS[row]) for row in rows]}
                        response = http.post("/api/v1/predict/batch", json=body)
                        ok = response.status_code == 200
                        answers = response.json()["predictions"] if ok else []
                    outcome: object = response.status_code
                except httpx.HTTPError as error:
                    outcome, answers = type(error).__name__, []
                results.append((outcome, rows, answers, time.monotonic()))
                index += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    return threads


def test_shadow_watch_and_promote_under_load_lose_nothing(
    serve_url: str, session_artifact: Path, new_artifact: Path
) -> None:
    old, new = load_artifact(session_artifact), load_artifact(new_artifact)
    expected = {
        artifact.metadata.model_version: artifact.fraud_probability(ROWS) for artifact in (old, new)
    }
    # Each answer's model is told by its version and its score alike.
    assert not np.allclose(*expected.values())
    base = f"{serve_url}/promote"
    # Before: the old model serves alone, and the idle Challenger has no replica.
    deploy_app("promote", str(session_artifact), model_options=ONE_REPLICA)
    assert replica_names("promote", "Challenger") == set()
    replicas = {name: replica_names("promote", name) for name in ("FraudModel", "Ingress")}

    results: list = []
    stop = threading.Event()
    threads = keep_scoring(base, stop, results, clients=4)
    timeline = {}
    try:
        assert wait_for(lambda: len(results) > 20, timeout_s=30, every_s=0.1)
        started = time.monotonic()

        # Step 1: the new model as a challenger in shadow, for half of the requests.
        challenger = {
            "name": "Challenger",
            **ONE_REPLICA,
            "user_config": {"artifact_uri": str(new_artifact)},
        }
        use = {"name": "Ingress", "user_config": {"challenger": {"share": 0.5}}}
        deploy_app(
            "promote",
            str(session_artifact),
            model_options=ONE_REPLICA,
            more_deployments=[challenger, use],
        )
        timeline["shadow"] = time.monotonic() - started

        # Step 2: watch how it would have decided.
        def compared() -> dict:
            response = httpx.get(f"{base}/api/v1/model/challenger", timeout=30)
            info = response.json() if response.status_code == 200 else {}
            pairs = info.get("comparisons", [])
            return info if pairs and pairs[0]["transactions"] >= 20 else {}

        info = wait_for(compared, timeout_s=60, every_s=0.5)
        assert info, "no comparison within 60 s"
        (pair,) = info["comparisons"]
        assert pair["challenger_version"] == new.metadata.model_version
        assert pair["champion_version"] == old.metadata.model_version
        timeline["watched"] = time.monotonic() - started

        # Step 3: promote. The challenger's artifact becomes FraudModel's; the challenger goes.
        deploy_app("promote", str(new_artifact), model_options=ONE_REPLICA)
        timeline["promoted"] = time.monotonic() - started

        def promoted() -> bool:
            app = serve.status().applications["promote"]
            model = httpx.get(f"{base}/api/v1/model", timeout=30).json()
            gone = httpx.get(f"{base}/api/v1/model/challenger", timeout=30).status_code == 404
            return (
                app.status == "RUNNING"
                and model["model_version"] == new.metadata.model_version
                and gone
            )

        assert wait_for(promoted, timeout_s=60, every_s=0.5)
        # Every step was applied in place: the same FraudModel and Ingress replicas throughout.
        assert {name: replica_names("promote", name) for name in replicas} == replicas
        served_after = len(results)
        assert wait_for(lambda: len(results) > served_after + 20, timeout_s=30, every_s=0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    try:
        statuses = Counter(outcome for outcome, *_ in results)
        failed = [
            (outcome, round(at - started, 2), len(rows))
            for outcome, rows, _, at in results
            if outcome != 200
        ]
        assert statuses == {200: len(results)}, (statuses, timeline, failed[:5], failed[-5:])
        versions: Counter = Counter()
        for _, rows, answers, _ in results:
            assert len(answers) == len(rows)
            for row, answer in zip(rows, answers, strict=True):
                versions[answer["model_version"]] += 1
                assert answer["fraud_probability"] == pytest.approx(
                    expected[answer["model_version"]][row], abs=1e-12
                )
        assert set(versions) == set(expected)
        # The last answers are all the new model's.
        assert {a["model_version"] for _, _, answers, _ in results[-8:] for a in answers} == {
            new.metadata.model_version
        }
        print(
            f"\npromotion under load: {len(results)} requests, all 200, answers by version "
            f"{dict(versions)}; steps done at {timeline} s; agreement in shadow "
            f"{pair['agreement']:.3f} over {pair['transactions']} transactions"
        )
    finally:
        serve.delete("promote")


def test_a_bad_ingress_config_fails_the_deploy_with_its_reason(
    serve_url: str, session_artifact: Path
) -> None:
    # One Ingress replica: Serve retries a failing start a few times per replica.
    use = {"name": "Ingress", "num_replicas": 1, "user_config": {"challenger": {"share": 2}}}
    deploy_app(
        "bad-use", str(session_artifact), model_options=ONE_REPLICA, more_deployments=[use],
        wait=False,
    )  # fmt: skip
    try:
        # `serve status` (and the RayService status on KubeRay) shows the reason from the first
        # failed start; Serve then retries a few times before it calls the deploy failed.
        def refusal() -> str:
            app = serve.status().applications.get("bad-use")
            message = app.deployments["Ingress"].message if app and app.deployments else ""
            return message if "Ingress cannot start" in message else ""

        message = wait_for(refusal, timeout_s=90)
        assert "invalid user_config" in message and "challenger.share" in message, message
    finally:
        serve.delete("bad-use")
