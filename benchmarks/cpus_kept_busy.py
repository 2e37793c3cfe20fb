"""One client's latency with the machine's CPUs kept from idling, against without: is a server
that sleeps between requests slowed by being woken for each?

    uv run python -m benchmarks.cpus_kept_busy --pairs 5 --output busy.json

Each server (this service as the README starts it, then LitServe) runs alone; one client (wrk)
sends it single transactions in load runs of 8 s, in pairs: one run as the machine is, one with a
busy loop per CPU at the SCHED_IDLE policy (it runs only when nothing else wants the CPU, so the
CPUs never halt, and in principle it gives way to any server process at once). The order within
a pair alternates. A server whose p50 drops with the busy loops was paying for its CPUs'
wake-ups.
"""

# ruff: noqa: E402  (the environment is set before the imports that bring Ray)

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from fraud_model.ray_env import use_this_venv_for_ray_workers

use_this_venv_for_ray_workers()  # before anything imports Ray

from benchmarks.load import run_wrk
from benchmarks.peers.catalog import parse_peers
from benchmarks.peers.launch import peer_server
from benchmarks.run import ARTIFACT, real_rows
from benchmarks.servers import Server, serve_server
from serve_app.routes import PREDICT_PATH

logger = logging.getLogger("benchmarks")

BUSY_LOOP = [sys.executable, "-c", "while True: pass"]


def busy_loops() -> list[subprocess.Popen[bytes]]:
    """One SCHED_IDLE busy loop per CPU."""
    return [
        subprocess.Popen(["chrt", "--idle", "0", *BUSY_LOOP]) for _ in range(os.cpu_count() or 1)
    ]


def pairs(url: str, bodies: list[bytes], count: int, duration_s: float) -> dict[str, list[float]]:
    """c=1 p50 (ms) of `count` pairs of load runs, without and with the busy loops."""
    p50s: dict[str, list[float]] = {"as is": [], "kept busy": []}
    run_wrk(url, bodies, 1, 3, 10**6)  # warm-up, not counted
    for index in range(count):
        order = ["as is", "kept busy"] if index % 2 == 0 else ["kept busy", "as is"]
        for setting in order:
            loops = busy_loops() if setting == "kept busy" else []
            try:
                time.sleep(1)
                p50 = run_wrk(url, bodies, 1, duration_s, 10**6)["p50_ms"]
            finally:
                for loop in loops:
                    loop.kill()
                    loop.wait()
            p50s[setting].append(p50)
            logger.info("%s, %s: p50 %.2f ms", url, setting, p50)
    return p50s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per load run")
    parser.add_argument("--output", type=Path, help="write the figures as JSON here too")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    bodies = [json.dumps(row).encode() for row in real_rows(256)]
    (litserve,) = parse_peers("litserve")
    servers: dict[str, tuple[Callable[[], AbstractContextManager[Server]], str]] = {
        "this service": (lambda: serve_server("haproxy+throughput"), PREDICT_PATH),
        "LitServe": (lambda: peer_server(litserve, ARTIFACT), litserve.single_path),
    }
    results = {}
    for name, (start, path) in servers.items():
        with start() as server:
            results[name] = pairs(server.url + path, bodies, args.pairs, args.duration)
    for name, p50s in results.items():
        medians = {setting: statistics.median(values) for setting, values in p50s.items()}
        logger.info("%s: median p50 %s", name, medians)
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
