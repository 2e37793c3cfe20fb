"""The decision ledger's store down while the service answers: nothing is lost while the
replica's buffer holds, the oldest records past its bound are dropped and counted in Prometheus,
and no answer waits or fails."""

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from ray import serve

from tests.helpers import as_json, ledger_rows, random_transactions
from tests.moto_process import MotoProcess, moto_process
from tests.polling import wait_for
from tests.serve.serving import deploy_app, ingress_with, metric_value

pytestmark = [pytest.mark.ray, pytest.mark.serve]
APP, BUCKET = "outage", "outage-ledger"
LEDGER = f"s3://{BUCKET}/ledger"
BOUND = 300  # records the replica holds while the store is down
ROWS = random_transactions(20, seed=9)


@pytest.fixture(scope="module")
def store() -> Iterator[MotoProcess]:
    with moto_process() as server:
        yield server


@pytest.fixture(scope="module")
def outage_app(serve_url: str, session_artifact: Path, store: MotoProcess) -> Iterator[str]:
    """The app with one Ingress replica, whose ledger is the moto server's bucket."""
    create_bucket(store)
    ledger = {
        "location": LEDGER,
        "flush_interval_s": 0.5,
        "buffer_records": BOUND,
        "put_timeout_s": 1.0,
        "put_attempts": 1,
    }
    prefix = deploy_app(
        APP,
        str(session_artifact),
        args={"ledger": ledger},
        more_deployments=[ingress_with(store.env())],
    )
    yield serve_url + prefix
    serve.delete(APP)


def create_bucket(store: MotoProcess) -> None:
    client = boto3.client("s3", endpoint_url=store.endpoint, **credentials(store))
    client.create_bucket(Bucket=BUCKET)


def credentials(store: MotoProcess) -> dict[str, str]:
    env = store.env()
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }


def send(url: str, count: int) -> list[str]:
    """`count` requests, 8 at a time; every one answered 200; their request ids."""
    ids = [f"outage-{uuid.uuid4()}" for _ in range(count)]

    async def run() -> list[int]:
        limit = asyncio.Semaphore(8)
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:

            async def one(index: int) -> int:
                async with limit:
                    response = await http.post(
                        "/api/v1/predict",
                        json=as_json(ROWS[index % len(ROWS)]),
                        headers={"X-Request-ID": ids[index]},
                    )
                    return response.status_code

            return list(await asyncio.gather(*(one(i) for i in range(count))))

    assert set(asyncio.run(run())) == {200}  # answers never wait on, or fail with, the store
    return ids


def recorded(store: MotoProcess, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    for name, value in store.env().items():
        monkeypatch.setenv(name, value)
    return {row["request_id"] for row in ledger_rows(LEDGER)}


def dropped() -> float:
    return metric_value("ray_fraud_ledger_dropped_records_total", application=APP)


def test_an_outage_within_the_buffer_loses_nothing_and_past_it_drops_the_oldest(
    outage_app: str, store: MotoProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.stop()
    within = send(outage_app, BOUND // 3)
    store.start()  # empty, as a restarted moto is: the held records are written anew
    create_bucket(store)
    assert wait_for(lambda: set(within) <= recorded(store, monkeypatch), timeout_s=30)

    store.stop()
    past = send(outage_app, 2 * BOUND)
    store.start()
    create_bucket(store)

    def accounted() -> set[str]:
        """What reached the store, once every request is in it or counted as dropped."""
        found = recorded(store, monkeypatch) & set(past)
        return found if len(found) + dropped() == len(past) else set()

    kept = wait_for(accounted, timeout_s=60)
    assert kept, (len(recorded(store, monkeypatch) & set(past)), dropped())
    lost = [index for index, request_id in enumerate(past) if request_id not in kept]
    print(f"\noutage past the bound: {len(kept)} of {len(past)} kept, {len(lost)} dropped")
    # Dropped past the bound, and the oldest: every one sent before the kept ones (8 requests
    # were under way at once, so arrival order is the sending order give or take 8), but for
    # the file whose put was under way when the drops began, kept until that put ends: one
    # run of neighbours among the old ones.
    assert len(lost) >= len(past) - BOUND
    kept_indexes = [index for index, request_id in enumerate(past) if request_id in kept]
    kept_early = [index for index in kept_indexes if index < max(lost) - 8]
    assert not kept_early or kept_early[-1] - kept_early[0] < len(kept_early) + 8, kept_early
    assert max(lost) < min(set(kept_indexes) - set(kept_early)) + 8, (lost[-5:], kept_early)
