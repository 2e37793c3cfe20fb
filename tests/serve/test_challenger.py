"""A challenger beside the served model, over HTTP: in shadow the answers are byte for byte the
champion's, whatever the challenger does; the comparison is counted exactly, exported to
Prometheus and logged with both scores; in canary mode a share is answered by the challenger."""

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from ray import serve

from fraud_model.artifact import load_artifact
from serve_app.app import deployment
from serve_app.challenger import OUTCOMES
from serve_app.ingress import Ingress
from serve_app.model import FraudModel, ModelConfig
from tests.helpers import (
    as_json,
    expected_agreement,
    ledger_rows,
    random_transactions,
    write_other_artifact,
)
from tests.polling import wait_for
from tests.serve.faulty_challenger import FaultyChallenger
from tests.serve.serving import (
    deploy_app,
    metric_value,
    replica_names,
    shipped_app_args,
)
from training.data import Dataset
from training.options import BoostingParams, ForestParams, TrainingOptions
from training.pipeline import train_and_export

pytestmark = [pytest.mark.ray, pytest.mark.serve]

# Crafted: against the session artifact (threshold 0.01) and the challenger below (0.02), these
# rows hold each of the four pairs of decisions (checked in the test that counts them).
ROWS = random_transactions(40, seed=23)
ROWS[::2, 13] -= 3.0  # half of them towards the synthetic fraud pattern (low V14)
# One model replica each, half a CPU: the test cluster's 4 CPUs hold this beside the others.
ONE_REPLICA = {
    "num_replicas": 1,
    "autoscaling_config": None,
    "ray_actor_options": {"num_cpus": 0.5},
}
SHADOW = "shadow"


@pytest.fixture(scope="module")
def challenger_artifact(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: Dataset) -> Path:
    path = tmp_path_factory.mktemp("challenger") / "model"
    return write_other_artifact(path, tiny_dataset, seed=1, threshold=0.02)


def deploy_with_challenger(
    name: str,
    champion: Path,
    challenger: Path,
    ledger: Path | None = None,
    **challenger_args: Any,
) -> str:
    """A config as an operator writes it (docs/CHALLENGER.md): the Challenger's model in its
    `deployments:` entry, how to use it in the Ingress's. One Ingress replica, so that the counts
    of GET /api/v1/model/challenger are the whole app's."""
    use = {"challenger": {"share": 1.0} | challenger_args}
    deploy_app(
        name,
        str(champion),
        model_options=ONE_REPLICA,
        more_deployments=[
            {"name": "Challenger", **ONE_REPLICA, "user_config": {"artifact_uri": str(challenger)}},
            {"name": "Ingress", "num_replicas": 1, "user_config": use},
        ],
        ledger=ledger,
    )
    return f"/{name}"


@pytest.fixture(scope="module")
def shadow_app(
    serve_url: str, session_artifact: Path, challenger_artifact: Path, serve_ledger: Path
) -> str:
    """The session's model with the challenger in shadow, for every request (share 1.0); its
    decisions go to `serve_ledger`."""
    yield serve_url + deploy_with_challenger(
        SHADOW, session_artifact, challenger_artifact, ledger=serve_ledger
    )
    serve.delete(SHADOW)


def challenger_info(base: str) -> dict:
    response = httpx.get(f"{base}/api/v1/model/challenger", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def settled(base: str, sent: int) -> dict:
    """GET /api/v1/model/challenger once `sent` calls were sent and none is in flight."""

    def done() -> dict:
        info = challenger_info(base)
        calls = info["calls"]
        return info if calls["sent"] >= sent and calls["in_flight"] == 0 else {}

    info = wait_for(done, timeout_s=30, every_s=0.2)
    assert info, challenger_info(base)
    return info


async def post_all(base: str, bodies: list[tuple[str, dict]], concurrency: int) -> list:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
        return await asyncio.gather(*(http.post(path, json=body) for path, body in bodies))


def requests_of(rows: np.ndarray) -> list[tuple[str, dict]]:
    """Every row alone, then all of them in batches of 10."""
    singles = [("/api/v1/predict", as_json(row)) for row in rows]
    batches = [
        ("/api/v1/predict/batch", {"transactions": [as_json(row) for row in rows[i : i + 10]]})
        for i in range(0, len(rows), 10)
    ]
    return singles + batches


def test_in_shadow_every_answer_is_byte_for_byte_the_champion_s(
    fraud_app: str, shadow_app: str
) -> None:
    # Concurrently, so that single rows are coalesced, the champion's and the challenger's
    # alike, in the same Ingress replica.
    bodies = requests_of(ROWS)
    expected = asyncio.run(post_all(fraud_app, bodies, concurrency=16))
    got = asyncio.run(post_all(shadow_app, bodies, concurrency=16))
    for (path, _), mine, theirs in zip(bodies, expected, got, strict=True):
        assert mine.status_code == theirs.status_code == 200, (path, theirs.text)
        assert theirs.content == mine.content, path
    info = settled(shadow_app, sent=len(bodies))
    assert info["calls"]["ok"] == info["calls"]["sent"]


def test_the_comparison_is_counted_exactly_and_exported(
    shadow_app: str, session_artifact: Path, challenger_artifact: Path
) -> None:
    champion, challenger = load_artifact(session_artifact), load_artifact(challenger_artifact)
    expected = expected_agreement(session_artifact, challenger_artifact, ROWS)
    assert all(expected.values()), expected  # the crafted rows hold all four

    before = settled(shadow_app, sent=0)
    bodies = requests_of(ROWS)
    responses = asyncio.run(post_all(shadow_app, bodies, concurrency=8))
    assert {response.status_code for response in responses} == {200}
    after = settled(shadow_app, sent=before["calls"]["sent"] + len(bodies))

    assert after["model"]["model_version"] == challenger.metadata.model_version
    assert after["calls"]["ok"] - before["calls"]["ok"] == len(bodies)
    (pair,) = after["comparisons"]
    assert pair["champion_version"] == champion.metadata.model_version
    assert pair["challenger_version"] == challenger.metadata.model_version
    previous = before["comparisons"][0] if before["comparisons"] else None
    for decision, count in expected.items():
        seen_before = previous["decisions"][decision] if previous else 0
        # Every row twice: alone and in a batch.
        assert pair["decisions"][decision] - seen_before == 2 * count, decision

    # Prometheus: the same totals, added up per call, sent within a health-check period.
    def exported(decision: str) -> float:
        return metric_value(
            "ray_fraud_challenger_compared_transactions_total",
            application=SHADOW,
            decisions=decision,
        )

    def all_exported() -> bool:
        return all(exported(d) == count for d, count in pair["decisions"].items())

    assert wait_for(all_exported, timeout_s=60, every_s=2), {
        d: (exported(d), count) for d, count in pair["decisions"].items()
    }
    exported_ok = metric_value("ray_fraud_challenger_calls_total", application=SHADOW, outcome="ok")
    assert exported_ok == after["calls"]["ok"]


def test_a_compared_request_is_in_the_ledger_with_both_models_decisions(
    shadow_app: str, session_artifact: Path, challenger_artifact: Path, serve_ledger: Path
) -> None:
    request_id = f"shadow-{uuid.uuid4()}"
    row = ROWS[2]
    response = httpx.post(
        f"{shadow_app}/api/v1/predict",
        json=as_json(row),
        headers={"X-Request-ID": request_id},
        timeout=30,
    )
    answer = response.json()

    def recorded() -> dict[str, dict]:
        rows = [r for r in ledger_rows(serve_ledger) if r["request_id"] == request_id]
        by_role = {r["role"]: r for r in rows}
        return by_role if set(by_role) == {"champion", "challenger"} else {}

    records = wait_for(recorded, timeout_s=30)
    assert records, "the request's two decisions were not in the ledger within 30 s"
    champion, challenger_row = records["champion"], records["challenger"]
    challenger = load_artifact(challenger_artifact)
    assert (champion["served"], challenger_row["served"]) == (True, False)
    assert champion["mode"] == challenger_row["mode"] == "shadow"
    assert champion["model_version"] == answer["model_version"]
    assert champion["score"] == answer["fraud_probability"]
    assert champion["is_fraud"] == answer["is_fraud"]
    assert challenger_row["model_version"] == challenger.metadata.model_version
    assert challenger_row["score"] == pytest.approx(
        challenger.fraud_probability(row[None, :])[0], abs=1e-12
    )
    assert challenger_row["latency_ms"] > 0
    assert champion["time"] == challenger_row["time"] and champion["position"] == 0


def faulty_graph(session_artifact: Path, behaviour: str) -> Any:
    """The app with a challenger that raises or hangs; shadow for every request, with a short
    timeout and a small cap, so that every way of shedding it happens."""
    use = {"challenger": {"share": 1.0, "timeout_s": 0.3, "max_in_flight": 8}}
    model_config = ModelConfig(artifact_uri=str(session_artifact)).model_dump()
    model = (
        deployment(FraudModel)
        .options(user_config=model_config, **ONE_REPLICA)
        .bind(role="champion")
    )
    challenger = FaultyChallenger.options(name="Challenger", user_config={"behaviour": behaviour})
    ingress = deployment(Ingress).options(num_replicas=1, user_config=use)
    return ingress.bind(model, shipped_app_args(), challenger.bind())


@pytest.fixture(scope="module")
def faulty_app(serve_url: str, session_artifact: Path) -> str:
    serve.run(faulty_graph(session_artifact, "raise"), name="faulty", route_prefix="/faulty")
    yield f"{serve_url}/faulty"
    serve.delete("faulty")


@pytest.mark.parametrize(("behaviour", "outcome"), [("raise", "error"), ("hang", "timeout")])
def test_a_challenger_that_raises_or_hangs_changes_no_answer(
    fraud_app: str, faulty_app: str, session_artifact: Path, behaviour: str, outcome: str
) -> None:
    serve.run(faulty_graph(session_artifact, behaviour), name="faulty", route_prefix="/faulty")
    assert challenger_info(faulty_app)["model"]["behaviour"] == behaviour  # applied in place
    before = settled(faulty_app, sent=0)["calls"]

    # A burst, far more than the challenger holds: every answer is the champion's. A hanging
    # challenger never answers, so a request that waited for it would get a 504 after the
    # request timeout: each 200 shows the request did not wait.
    bodies = requests_of(ROWS) * 2
    expected = asyncio.run(post_all(fraud_app, bodies, concurrency=32))
    got = asyncio.run(post_all(faulty_app, bodies, concurrency=32))
    for mine, theirs in zip(expected, got, strict=True):
        assert theirs.status_code == 200 and theirs.content == mine.content

    sent = before["sent"] + len(bodies)
    calls = settled(faulty_app, sent=sent)["calls"]
    print(f"{behaviour} challenger calls: {calls}")
    assert calls["sent"] == sent
    new = {name: calls[name] - before[name] for name in OUTCOMES}
    assert new["ok"] == 0
    assert sum(new.values()) == len(bodies)  # each call ended one way or another
    assert new[outcome] > 0
    if behaviour == "hang":
        assert new["dropped"] + new["overloaded"] > 0  # shed, not queued behind the hung ones


def test_in_canary_mode_a_share_is_answered_by_the_challenger(
    shadow_app: str, session_artifact: Path, challenger_artifact: Path, serve_ledger: Path
) -> None:
    # The same app, switched to canary at one half, in place: the same Ingress replica.
    ingress = replica_names(SHADOW, "Ingress")
    # The same args as the shadow app's (its ledger): new ones would restart its replicas.
    deploy_with_challenger(
        SHADOW, session_artifact, challenger_artifact, serve_ledger, mode="canary", share=0.5
    )
    assert wait_for(lambda: challenger_info(shadow_app)["mode"] == "canary", timeout_s=30)
    assert replica_names(SHADOW, "Ingress") == ingress
    before = settled(shadow_app, sent=0)
    scores = {
        artifact.metadata.model_version: artifact.fraud_probability(ROWS)
        for artifact in map(load_artifact, (session_artifact, challenger_artifact))
    }
    challenger_version = load_artifact(challenger_artifact).metadata.model_version
    rows = np.concatenate([ROWS] * 5)  # 200 requests
    bodies = [("/api/v1/predict", as_json(row)) for row in rows]
    responses = asyncio.run(post_all(shadow_app, bodies, concurrency=8))
    answered_by = []
    for index, response in enumerate(responses):
        assert response.status_code == 200
        answer = response.json()
        answered_by.append(answer["model_version"])
        expected = scores[answer["model_version"]][index % len(ROWS)]
        assert answer["fraud_probability"] == pytest.approx(expected, abs=1e-12)
    by_challenger = answered_by.count(challenger_version)
    n, share = len(bodies), 0.5
    spread = 4 * (n * share * (1 - share)) ** 0.5  # 4 sigma: fails once in ~16,000 runs
    assert n * share - spread <= by_challenger <= n * share + spread, by_challenger
    info = settled(shadow_app, sent=before["calls"]["sent"] + by_challenger)
    calls = {name: info["calls"][name] - before["calls"][name] for name in info["calls"]}
    assert calls["ok"] == by_challenger
    # A canary call that failed was answered by the champion: counted, never lost.
    assert calls["sent"] == sum(calls[outcome] for outcome in OUTCOMES)
    (pair,), (pair_before,) = info["comparisons"], before["comparisons"]
    assert pair["transactions"] - pair_before["transactions"] == by_challenger


@pytest.fixture(scope="module")
def boosted_artifact(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: Dataset) -> Path:
    """Gradient-boosted trees trained by the pipeline on the session's data: the other family."""
    path = tmp_path_factory.mktemp("boosted") / "model"
    options = TrainingOptions(model_family="hist_gradient_boosting", stability_runs=0)
    train_and_export(
        tiny_dataset, ForestParams(), options, path, boosting=BoostingParams(max_iter=30)
    )
    return path


def test_boosted_trees_are_served_as_the_challenger_beside_the_forest(
    shadow_app: str, session_artifact: Path, boosted_artifact: Path, serve_ledger: Path
) -> None:
    """The same app, its Challenger switched in place to the boosted trees, answering every
    request (canary at 1.0) beside the forest champion; reason codes stay the champion's."""
    deploy_with_challenger(
        SHADOW, session_artifact, boosted_artifact, serve_ledger, mode="canary", share=1.0
    )
    boosted = load_artifact(boosted_artifact)
    version = boosted.metadata.model_version

    def ready() -> dict:
        info = challenger_info(shadow_app)
        return (
            info if info["model"]["model_version"] == version and info["state"] == "ready" else {}
        )

    info = wait_for(ready, timeout_s=60, every_s=0.5)
    assert info, challenger_info(shadow_app)
    assert info["model"]["model_family"] == "hist_gradient_boosting"
    assert info["model"]["calibration"]["method"] == "platt_log_odds"
    champion = httpx.get(f"{shadow_app}/api/v1/model", timeout=30).json()
    assert champion["model_family"] == "random_forest"

    bodies = [("/api/v1/predict", as_json(row)) for row in ROWS]
    responses = asyncio.run(post_all(shadow_app, bodies, concurrency=8))
    expected = boosted.fraud_probability(ROWS)
    for index, response in enumerate(responses):
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["model_version"] == version
        assert answer["fraud_probability"] == pytest.approx(expected[index], abs=1e-12)

    explained = httpx.post(
        f"{shadow_app}/api/v1/predict?explain=true", json=as_json(ROWS[0]), timeout=30
    )
    assert explained.status_code == 200, explained.text
    assert explained.json()["model_version"] == champion["model_version"]
