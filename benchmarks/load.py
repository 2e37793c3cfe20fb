"""A closed-loop HTTP load generator: `concurrency` clients, each sending its next request as soon
as the last one answers, for `duration_s` seconds or `max_requests` requests, whichever is first.

Runs in its own process (the harness starts it) and only ever targets the loopback interface.
Prints one JSON object: requests, errors, seconds, requests/s, latency percentiles (ms).

The client is wrk (C, one thread) when it is installed, else an aiohttp loop in Python. The load
generator shares the 2 cores with the servers under test: wrk takes far less of them, so the
servers' figures are less bounded by the client.

    python -m benchmarks.load --url http://127.0.0.1:8000/api/v1/predict --body rows.json \
        --concurrency 32 --duration 10
"""

import argparse
import asyncio
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import aiohttp
import numpy as np

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
HARD_MAX_DURATION_S = 120
HARD_MAX_REQUESTS = 2_000_000
WRK_SCRIPT = Path(__file__).with_name("wrk_load.lua")


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


def run_wrk(
    url: str, bodies: list[bytes], concurrency: int, duration_s: float, max_requests: int
) -> dict:
    """The same closed loop, driven by wrk on one thread (benchmarks/wrk_load.lua)."""
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl") as lines:
        lines.write(b"\n".join(bodies) + b"\n")
        lines.flush()
        command = ["wrk", "-t1", f"-c{concurrency}", f"-d{duration_s:g}s", "--timeout", "30s",
                   "-s", str(WRK_SCRIPT), url, "--", lines.name, str(max_requests)]  # fmt: skip
        output = subprocess.run(
            command, capture_output=True, text=True, check=True, timeout=duration_s + 60
        ).stdout
    summary = json.loads(output.strip().splitlines()[-1])
    answered = summary["requests"] - summary["errors"]
    return {
        "requests": answered,
        "errors": summary["errors"],
        "seconds": summary["seconds"],
        "rps": round(answered / summary["seconds"], 1),
        "p50_ms": round(summary["p50_ms"], 2),
        "p99_ms": round(summary["p99_ms"], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="loopback URL to POST to")
    parser.add_argument("--body", required=True, help="JSON file holding a list of request bodies")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds (at most 120)")
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument(
        "--client", choices=["auto", "wrk", "python"], default="auto", help="auto: wrk if found"
    )
    args = parser.parse_args()
    if urlparse(args.url).hostname not in LOOPBACK:
        parser.error("load is only ever sent to the loopback interface")
    with open(args.body) as handle:
        bodies = [json.dumps(body).encode() for body in json.load(handle)]
    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk"))
    bounds = (min(args.duration, HARD_MAX_DURATION_S), min(args.max_requests, HARD_MAX_REQUESTS))
    if use_wrk:
        result = run_wrk(args.url, bodies, args.concurrency, *bounds) | {"client": "wrk"}
    else:
        result = asyncio.run(run(args.url, bodies, args.concurrency, *bounds))
        result["client"] = "python"
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
