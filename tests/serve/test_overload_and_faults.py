"""More load than the service holds, a model that answers too late, and a model replica killed
under load: every answer is a correct score or a clean 503/504, none hangs, and the service
recovers. Bounded: a fixed number of requests on 127.0.0.1 with client timeouts."""

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Awaitable
from pathlib import Path

import httpx
import numpy as np
import pytest
import ray
from ray import serve

from fraud_model.artifact import load_artifact
from tests.helpers import as_json, random_transactions
from tests.serve.serving import deploy_app, replica_names

pytestmark = [pytest.mark.ray, pytest.mark.serve]

ROWS = random_transactions(50, seed=21)
CLIENT_TIMEOUT_S = 30  # far above the service's own 2 s timeout: a hang would show as an error


async def burst(
    url: str, requests: int, concurrency: int, rows_per_request: int = 1
) -> list[httpx.Response]:
    """`requests` POSTs, `concurrency` at a time; a client-side timeout raises (= a hang).

    One row per request goes to /predict; more go to /predict/batch, request i holding rows
    i*n .. i*n+n-1 (cycling through ROWS)."""
    limits = httpx.Limits(max_connections=concurrency)

    def post(http: httpx.AsyncClient, i: int) -> Awaitable[httpx.Response]:
        if rows_per_request == 1:
            return http.post(f"{url}/api/v1/predict", json=as_json(ROWS[i % len(ROWS)]))
        rows = [ROWS[(i * rows_per_request + k) % len(ROWS)] for k in range(rows_per_request)]
        body = {"transactions": [as_json(row) for row in rows]}
        return http.post(f"{url}/api/v1/predict/batch", json=body)

    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT_S, limits=limits) as http:
        return await asyncio.gather(*(post(http, i) for i in range(requests)))


def check_answers(
    responses: list[httpx.Response], expected: np.ndarray, rows_per_request: int = 1
) -> Counter:
    statuses: Counter = Counter()
    for index, response in enumerate(responses):
        statuses[response.status_code] += 1
        if response.status_code == 200:
            body = response.json()
            answers = body["predictions"] if rows_per_request > 1 else [body]
            for k, answer in enumerate(answers):
                row = (index * rows_per_request + k) % len(ROWS)
                assert answer["fraud_probability"] == pytest.approx(expected[row], abs=1e-12)
        else:
            assert response.status_code in (503, 504), response.text
            (error,) = response.json()["detail"]
            assert error["type"] in ("overloaded", "model_unavailable", "timeout")
            if response.status_code == 503:
                assert response.headers["retry-after"] == "1"
    return statuses


def test_overload_is_shed_with_503_and_retry_after(serve_url: str, session_artifact: Path) -> None:
    expected = load_artifact(session_artifact).fraud_probability(ROWS)
    # A deliberately tiny model queue, so 150 clients at once overflow it. Batch requests go to
    # the model one call each (single transactions arriving together are sent as one call).
    deploy_app(
        "overload",
        str(session_artifact),
        model_options={
            "num_replicas": 1,
            "autoscaling_config": None,
            "max_ongoing_requests": 2,
            "max_queued_requests": 4,
        },
    )
    url = f"{serve_url}/overload"
    try:
        started = time.monotonic()
        responses = asyncio.run(burst(url, requests=400, concurrency=150, rows_per_request=5))
        statuses = check_answers(responses, expected, rows_per_request=5)
        print(f"overload: {dict(statuses)} in {time.monotonic() - started:.1f} s")
        assert statuses[503] > 0 and statuses[200] > 0
        # Healthy afterwards: every request of a calm round succeeds, single and batch.
        calm = check_answers(asyncio.run(burst(url, requests=50, concurrency=4)), expected)
        assert calm == {200: 50}
        calm_batches = asyncio.run(burst(url, requests=20, concurrency=4, rows_per_request=5))
        assert check_answers(calm_batches, expected, rows_per_request=5) == {200: 20}
        assert httpx.get(f"{url}/api/v1/utils/health-check/").json() is True
    finally:
        serve.delete("overload")


def test_a_model_slower_than_the_timeout_gets_504(serve_url: str, session_artifact: Path) -> None:
    # 0.1 ms is less than any round trip to the model replica: every call times out.
    deploy_app("impatient", str(session_artifact), args={"request_timeout_s": 0.0001})
    try:
        response = httpx.post(
            f"{serve_url}/impatient/api/v1/predict", json=as_json(ROWS[0]), timeout=30
        )
        assert response.status_code == 504
        assert response.json()["detail"][0] == {
            "type": "timeout",
            "loc": [],
            "msg": "The model did not answer within 0.0001 s",
        }
    finally:
        serve.delete("impatient")


RECOVERY_BOUND_S = 60


def test_a_killed_model_replica_is_replaced_under_load(
    serve_url: str, session_artifact: Path
) -> None:
    expected = load_artifact(session_artifact).fraud_probability(ROWS)
    deploy_app(
        "faults",
        str(session_artifact),
        model_options={"num_replicas": 1, "autoscaling_config": None},
    )
    url = f"{serve_url}/faults"
    (victim,) = replica_names("faults")
    responses: list[httpx.Response] = []
    stop = threading.Event()

    def keep_loading() -> None:
        while not stop.is_set():
            responses.extend(asyncio.run(burst(url, requests=40, concurrency=8)))

    load = threading.Thread(target=keep_loading)
    load.start()
    try:
        time.sleep(1)
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        killed_at = time.monotonic()

        def recovered() -> bool:
            replicas = replica_names("faults")
            app = serve.status().applications["faults"]
            return bool(replicas) and victim not in replicas and app.status == "RUNNING"

        while not recovered() and time.monotonic() - killed_at < RECOVERY_BOUND_S:
            time.sleep(0.5)
        recovery_s = time.monotonic() - killed_at
        time.sleep(1)  # and keep serving a little after recovery
    finally:
        stop.set()
        load.join()
    try:
        statuses = check_answers(responses, expected)
        print(f"replica kill: {dict(statuses)}, replaced in {recovery_s:.1f} s")
        assert recovery_s < RECOVERY_BOUND_S
        tail = asyncio.run(burst(url, requests=20, concurrency=4))
        assert check_answers(tail, expected) == {200: 20}
    finally:
        serve.delete("faults")
