"""The Ingress's copy of the champion (serve_app.champion_copy), without Ray: it scores single
transactions exactly as the FraudModel replica it follows, takes over a new rule or artifact
from it, and scores nothing it cannot confirm (a refused load, no model, no answer for long)."""

import asyncio
import json
import types
from pathlib import Path

import pytest

from serve_app import champion_copy, loading
from serve_app.champion_copy import ChampionCopy
from serve_app.model import FraudModel
from serve_app.settings import ServiceSettings
from tests.helpers import random_transactions
from tests.unit.recorded_metrics import RecordedMetric

ROWS = random_transactions(40, seed=21)


@pytest.fixture
def metrics(monkeypatch: pytest.MonkeyPatch) -> list[RecordedMetric]:
    """Every Ray metric made from here on, as RecordedMetric (Ray's need a replica)."""
    from ray.serve import metrics as ray_metrics

    made: list[RecordedMetric] = []

    def recorded(name: str, **kwargs: object) -> RecordedMetric:
        made.append(RecordedMetric(name, **kwargs))
        return made[-1]

    for kind in ("Counter", "Gauge", "Histogram"):
        monkeypatch.setattr(ray_metrics, kind, recorded)
    return made


@pytest.fixture
def replica(monkeypatch: pytest.MonkeyPatch, metrics: list[RecordedMetric]) -> object:
    """A FraudModel replica as Serve would construct it."""
    from ray import serve

    from serve_app import model

    context = types.SimpleNamespace(
        deployment="FraudModel", _deployment_config=types.SimpleNamespace(max_ongoing_requests=64)
    )
    monkeypatch.setattr(serve, "get_replica_context", lambda: context)
    monkeypatch.setattr(model, "replica_cpus", lambda: 1)  # Ray's runtime context would start Ray
    return FraudModel.func_or_class(role="champion")


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The artifacts the copy loads, by URI."""
    loads: list[str] = []
    real = loading.open_artifact

    def counted(uri: str, *args: object, **kwargs: object) -> object:
        loads.append(uri)
        return real(uri, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(champion_copy, "open_artifact", counted)
    return loads


def new_copy(tmp_path: Path, with_metrics: bool = False) -> ChampionCopy:
    from serve_app.metrics import ModelMetrics

    settings = ServiceSettings(artifact_cache=tmp_path / "cache")
    return ChampionCopy(settings, ModelMetrics() if with_metrics else None)


def test_single_transactions_are_answered_as_the_replica_answers_them(
    replica, artifact_dir: Path, tmp_path: Path, opened: list[str]
) -> None:
    copy = new_copy(tmp_path)

    async def scenario() -> None:
        await replica.reconfigure({"artifact_uri": str(artifact_dir), "threshold": 0.3})
        assert copy.score(ROWS[0].tolist()) is None  # nothing followed yet: to the replica
        await copy.follow(replica.in_service())
        for row in ROWS.tolist():
            (expected,) = await replica.score_many([row])
            # Byte for byte, as the API would send it.
            assert json.dumps(copy.score(row)) == json.dumps(expected)

    asyncio.run(scenario())
    assert opened == [str(artifact_dir)]
    assert copy.model_version == replica.describe()["model_version"]


def test_a_new_rule_is_taken_over_without_a_reload_and_a_new_artifact_with_one(
    replica, artifact_dir: Path, tmp_path: Path, opened: list[str]
) -> None:
    copy = new_copy(tmp_path)
    other = Path(str(artifact_dir) + "-moved")
    other.symlink_to(artifact_dir)  # the same bytes under another URI

    async def scenario() -> None:
        await replica.reconfigure({"artifact_uri": str(artifact_dir)})
        await copy.follow(replica.in_service())
        await replica.reconfigure({"artifact_uri": str(artifact_dir), "threshold": 0.0})
        await copy.follow(replica.in_service())
        assert opened == [str(artifact_dir)]
        assert all(copy.score(row)["is_fraud"] for row in ROWS.tolist())  # type: ignore[index]
        await replica.reconfigure({"artifact_uri": str(other), "threshold": 0.0})
        await copy.follow(replica.in_service())
        assert opened == [str(artifact_dir), str(other)]
        (expected,) = await replica.score_many([ROWS[0].tolist()])
        assert copy.score(ROWS[0].tolist()) == expected

    asyncio.run(scenario())


def test_an_artifact_changed_after_the_replica_verified_it_is_refused(
    replica,
    artifact_dir: Path,
    tmp_path: Path,
    opened: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    copy = new_copy(tmp_path)

    async def scenario() -> None:
        await replica.reconfigure({"artifact_uri": str(artifact_dir)})
        said = replica.in_service()
        # Rewritten in place after the replica loaded it: the pin the replica reports no
        # longer names these bytes, so the copy must not score with them.
        metadata = artifact_dir / "metadata.json"
        metadata.write_text(metadata.read_text().replace("{", "{ ", 1))
        await copy.follow(said)
        assert copy.score(ROWS[0].tolist()) is None
        assert "sha256" in copy.summary()["refused"]
        await copy.follow(said)  # not fetched again at once while the replica says the same
        assert opened == [str(artifact_dir)]
        # Tried again later (still refused: the bytes are still not the verified ones).
        later = champion_copy.time.monotonic() + champion_copy.RETRY_REFUSED_S + 1
        monkeypatch.setattr(champion_copy.time, "monotonic", lambda: later)
        await copy.follow(said)
        assert opened == [str(artifact_dir)] * 2
        assert copy.score(ROWS[0].tolist()) is None

    asyncio.run(scenario())


def test_the_copy_scores_nothing_while_the_replica_has_no_model_or_goes_unheard(
    replica, artifact_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = new_copy(tmp_path)
    row = ROWS[0].tolist()

    async def scenario() -> None:
        await replica.reconfigure({"artifact_uri": str(artifact_dir)})
        await copy.follow(replica.in_service())
        assert copy.score(row) is not None
        await copy.follow(None)  # the replica says it has no model
        assert copy.score(row) is None
        await copy.follow(replica.in_service())
        assert copy.score(row) is not None
        # Nothing heard from the deployment for longer than STALE_AFTER_S.
        now = champion_copy.time.monotonic()
        monkeypatch.setattr(
            champion_copy.time, "monotonic", lambda: now + champion_copy.STALE_AFTER_S + 1
        )
        assert copy.score(row) is None and copy.model_version is None

    asyncio.run(scenario())


def test_the_copy_counts_its_decisions_under_the_model_version(
    replica, artifact_dir: Path, tmp_path: Path, metrics: list[RecordedMetric]
) -> None:
    copy = new_copy(tmp_path, with_metrics=True)
    pushed = ROWS.copy()
    pushed[::3, 13] -= 5.0  # towards the fraud pattern: scores of both kinds
    rows = pushed.tolist()

    async def scenario() -> None:
        await replica.reconfigure({"artifact_uri": str(artifact_dir)})
        scores = [a["fraud_probability"] for a in await replica.score_many(rows)]
        # A threshold that flags some rows and not others.
        distinct = sorted(set(scores))
        threshold = distinct[len(distinct) // 2]
        await replica.reconfigure({"artifact_uri": str(artifact_dir), "threshold": threshold})
        await copy.follow(replica.in_service())

    asyncio.run(scenario())
    flags = [copy.score(row)["is_fraud"] for row in rows]  # type: ignore[index]
    copy.flush()
    version = copy.model_version
    counted = {
        call[2]["decision"]: call[1]
        for metric in metrics
        if metric.name == "fraud_predictions"
        for call in metric.calls
        if call[2].get("model_version") == version
    }
    fraud = sum(flags)
    assert 0 < fraud < len(rows)  # both decisions occur, so both counts are checked
    assert counted == {"fraud": fraud, "legit": len(rows) - fraud}
    assert copy.summary()["scores_seen"] == len(rows)
