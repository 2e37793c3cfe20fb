"""The API with a challenger beside the model, both real forests scored in-process (no Ray): the
same bytes to the client, GET /api/v1/model/challenger and who may read it."""

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sklearn.ensemble import RandomForestClassifier

from fraud_model.artifact import load_artifact
from serve_app.api import create_api
from serve_app.challenger import ShadowingModelHandle
from serve_app.config import AppArgs, ChallengerConfig
from serve_app.settings import ServiceSettings
from tests.helpers import (
    as_json,
    expected_agreement,
    random_transactions,
    write_artifact,
    write_other_artifact,
)
from tests.polling import wait_for
from tests.unit.api_client import InProcessModel
from training.data import Dataset

ROWS = random_transactions(30, seed=3)
ROWS[::3, 13] -= 4.0  # some rows towards the synthetic fraud pattern (low V14)
OPERATOR = "o" * 40
SCORING = "s" * 40


@pytest.fixture(scope="module")
def champion_artifact(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_forest: RandomForestClassifier,
    tiny_dataset: Dataset,
) -> Path:
    path = tmp_path_factory.mktemp("champion") / "model"
    write_artifact(path, tiny_forest, tiny_dataset, threshold=0.02)
    return path


@pytest.fixture(scope="module")
def challenger_artifact(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: Dataset) -> Path:
    """Another forest and threshold: on ROWS, each of the four pairs of decisions occurs."""
    path = tmp_path_factory.mktemp("challenger") / "model"
    return write_other_artifact(
        path, tiny_dataset, seed=9, threshold=0.01, n_estimators=4, max_depth=4
    )


def api_client(
    champion: Path, challenger: Path | None, mode: str = "shadow", **settings: object
) -> TestClient:
    args = AppArgs(allow_anonymous=True)
    model = InProcessModel(champion)
    if challenger is None:
        return TestClient(create_api(model, ServiceSettings(**settings), args))
    shadowing = ShadowingModelHandle(model, InProcessModel(challenger), rng=random.Random(0))
    shadowing.configure(ChallengerConfig(mode=mode, share=1.0))  # type: ignore[arg-type]
    api = create_api(
        shadowing, ServiceSettings(**settings), args, challenger=shadowing.describe_challenger
    )
    return TestClient(api)


@pytest.fixture
def plain(champion_artifact: Path) -> Iterator[TestClient]:
    with api_client(champion_artifact, None) as client:  # one event loop for all its requests
        yield client


def ready(client: TestClient) -> TestClient:
    """The client once the challenger answered its readiness check (started by the first GET
    of the challenger endpoint): until then nothing is sent to it."""
    state = wait_for(
        lambda: client.get("/api/v1/model/challenger").json()["state"] == "ready",
        timeout_s=10,
        every_s=0.01,
    )
    assert state, client.get("/api/v1/model/challenger").json()
    return client


@pytest.fixture
def shadowed(champion_artifact: Path, challenger_artifact: Path) -> Iterator[TestClient]:
    with api_client(champion_artifact, challenger_artifact) as client:
        yield ready(client)


def settled(client: TestClient) -> dict:
    def done() -> dict:
        info = client.get("/api/v1/model/challenger").json()
        return info if info["calls"]["in_flight"] == 0 else {}

    return wait_for(done, timeout_s=10, every_s=0.01)


def test_in_shadow_the_client_gets_the_same_bytes(plain: TestClient, shadowed: TestClient) -> None:
    for row in ROWS:
        expected = plain.post("/api/v1/predict", json=as_json(row))
        got = shadowed.post("/api/v1/predict", json=as_json(row))
        assert got.status_code == expected.status_code == 200
        assert got.content == expected.content
    batch = {"transactions": [as_json(row) for row in ROWS]}
    expected = plain.post("/api/v1/predict/batch", json=batch)
    assert shadowed.post("/api/v1/predict/batch", json=batch).content == expected.content


def test_the_comparison_counts_every_row_by_both_decisions(
    shadowed: TestClient, champion_artifact: Path, challenger_artifact: Path
) -> None:
    champion, challenger = load_artifact(champion_artifact), load_artifact(challenger_artifact)
    expected = expected_agreement(champion_artifact, challenger_artifact, ROWS)
    assert all(expected.values()), expected  # the rows tell the four apart
    for row in ROWS:
        shadowed.post("/api/v1/predict", json=as_json(row))
    shadowed.post("/api/v1/predict/batch", json={"transactions": [as_json(r) for r in ROWS]})

    info = settled(shadowed)
    assert info["mode"] == "shadow" and info["share"] == 1.0
    assert info["model"]["model_version"] == challenger.metadata.model_version
    assert info["calls"]["sent"] == info["calls"]["ok"] == len(ROWS) + 1
    (pair,) = info["comparisons"]
    assert pair["champion_version"] == champion.metadata.model_version
    assert pair["challenger_version"] == challenger.metadata.model_version
    assert pair["requests"] == len(ROWS) + 1
    assert pair["transactions"] == 2 * len(ROWS)
    assert pair["decisions"] == {decision: 2 * count for decision, count in expected.items()}
    (latency,) = info["latency"]
    assert latency["calls"] == len(ROWS) + 1


def test_in_canary_mode_the_challenger_answers(
    champion_artifact: Path, challenger_artifact: Path
) -> None:
    version = load_artifact(challenger_artifact).metadata.model_version
    with api_client(champion_artifact, challenger_artifact, mode="canary") as client:
        answer = ready(client).post("/api/v1/predict", json=as_json(ROWS[0])).json()
        assert answer["model_version"] == version
        assert settled(client)["comparisons"][0]["transactions"] == 1


class Starting(InProcessModel):
    """A challenger whose first replica is still starting: it answers nothing until told."""

    def __init__(self, artifact_dir: Path) -> None:
        super().__init__(artifact_dir)
        self.started = asyncio.Event()

    async def describe(self) -> dict[str, Any]:
        await self.started.wait()
        return await super().describe()


def test_a_challenger_still_starting_is_sent_nothing_until_it_answers(
    champion_artifact: Path, challenger_artifact: Path
) -> None:
    challenger = Starting(challenger_artifact)
    shadowing = ShadowingModelHandle(
        InProcessModel(champion_artifact), challenger, rng=random.Random(0)
    )
    shadowing.configure(ChallengerConfig(share=1.0))
    api = create_api(
        shadowing,
        ServiceSettings(),
        AppArgs(allow_anonymous=True),
        challenger=shadowing.describe_challenger,
    )
    with TestClient(api) as client:
        for row in ROWS[:3]:
            assert client.post("/api/v1/predict", json=as_json(row)).status_code == 200
        info = client.get("/api/v1/model/challenger").json()
        assert info["state"].startswith("starting")
        assert info["model_unavailable"] == "timeout"
        assert (info["calls"]["sent"], info["calls"]["not_ready"], info["calls"]["ok"]) == (3, 3, 0)
        client.portal.call(challenger.started.set)  # its replica is up
        ready(client)
        client.post("/api/v1/predict", json=as_json(ROWS[3]))
        calls = settled(client)["calls"]
        assert (calls["sent"], calls["not_ready"], calls["ok"]) == (4, 3, 1)


def test_without_a_challenger_its_endpoint_says_so(plain: TestClient) -> None:
    response = plain.get("/api/v1/model/challenger")
    assert response.status_code == 404
    assert response.json() == {
        "detail": [
            {
                "type": "not_found",
                "loc": [],
                "msg": "No challenger is configured (the Ingress's user_config)",
            }
        ]
    }


def test_the_challenger_endpoint_needs_an_operator_key(
    champion_artifact: Path, challenger_artifact: Path
) -> None:
    keys = {"api_keys": [SCORING], "operator_keys": [OPERATOR]}
    with api_client(champion_artifact, challenger_artifact, **keys) as client:
        assert client.get("/api/v1/model/challenger").status_code == 401
        scoring = client.get("/api/v1/model/challenger", headers={"X-API-Key": SCORING})
        assert scoring.status_code == 403
        operator = client.get("/api/v1/model/challenger", headers={"X-API-Key": OPERATOR})
        assert operator.status_code == 200 and operator.json()["mode"] == "shadow"
