"""A closed-loop HTTP load generator: `concurrency` clients, each sending its next request as soon
as the last one answers, for `duration_s` seconds or `max_requests` requests, whichever is first.

Runs in its own process (the harness starts it) and only ever targets the loopback interface.
Prints one JSON object: requests, errors, seconds, requests/s, latency percentiles (ms).

    python -m benchmarks.load --url http://127.0.0.1:8000/api/v1/predict --body rows.json \
        --concurrency 32 --duration 10
"""

import argparse
import asyncio
import itertools
import json
import sys
import time
from urllib.parse import urlparse

import aiohttp
import numpy as np

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
HARD_MAX_DURATION_S = 120
HARD_MAX_REQUESTS = 2_000_000


async def run(
    url: str, bodies: list[bytes], concurrency: int, duration_s: float, max_requests: int
) -> dict:
    latencies: list[float] = []
    errors = 0
    sent = itertools.count()
    next_body = itertools.cycle(bodies).__next__
    deadline = time.perf_counter() + duration_s
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < deadline and next(sent) < max_requests:
            started = time.perf_counter()
            try:
                async with session.post(url, data=next_body(), headers=headers) as response:
                    await response.read()
                    ok = response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        began = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 3),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="loopback URL to POST to")
    parser.add_argument("--body", required=True, help="JSON file holding a list of request bodies")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds (at most 120)")
    parser.add_argument("--max-requests", type=int, default=200_000)
    args = parser.parse_args()
    if urlparse(args.url).hostname not in LOOPBACK:
        parser.error("load is only ever sent to the loopback interface")
    with open(args.body) as handle:
        bodies = [json.dumps(body).encode() for body in json.load(handle)]
    result = asyncio.run(
        run(
            args.url,
            bodies,
            args.concurrency,
            min(args.duration, HARD_MAX_DURATION_S),
            min(args.max_requests, HARD_MAX_REQUESTS),
        )
    )
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
