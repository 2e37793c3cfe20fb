"""Where each request's CPU goes: per process, and within the Serve replicas per layer.

    uv run python -m benchmarks.layers                       # single transactions, 32 clients
    uv run python -m benchmarks.layers --path /api/v1/predict/columns --concurrency 2
    uv run python -m benchmarks.layers --concurrency 1 --idle 20  # what light load costs

Starts this service as the README does (benchmarks/servers.py), drives it with the load
generator, and meanwhile samples each Serve replica with py-spy (`--gil`: only the thread that
holds the GIL, i.e. Python's own CPU). The process figures are CPU ms per request from /proc
(benchmarks/cpu.py); the layer figures split each replica's share by the innermost frame that
belongs to a known layer (LAYERS, first match wins). With `--idle`, first the CPU each process
spends per second with no request at all: at light load that background work, not the
requests, is most of what the service costs.
"""

# ruff: noqa: E402  (the environment is set before the imports that bring Ray)

import argparse
import collections
import json
import logging
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fraud_model.ray_env import use_this_venv_for_ray_workers

use_this_venv_for_ray_workers()

from benchmarks.cpu import (
    per_request_ms,
    per_second_ms,
    process_table,
    session_cpu_seconds,
    session_processes,
)
from benchmarks.run import real_rows
from benchmarks.servers import PROJECT_ROOT, serve_server
from serve_app.routes import PREDICT_PATH

logger = logging.getLogger("benchmarks")

# (layer, pattern of a py-spy frame "function (file:line)"); the first that matches names it.
LAYERS = [
    ("logging", r"\(logging/|serve/_private/logging_utils|ray/_common/(filters|formatters)"),
    ("metrics", r"ray/util/metrics|serve/metrics\.py|metrics_utils"),
    ("this service's code", r"\((serve_app|fraud_model)/"),
    ("onnxruntime", r"onnxruntime"),
    ("pydantic", r"pydantic"),
    ("FastAPI and Starlette", r"\((fastapi|starlette)/"),
    ("Serve handle and router", r"serve/handle\.py|_private/(router|request_router|replica_res)"),
    ("Serve batching", r"serve/batching\.py"),
    ("Serve replica request path", r"serve/_private/"),
    ("Ray core and gRPC", r"ray/_raylet|grpc|ray/_private/|ray/actor"),
    ("uvicorn and httptools", r"uvicorn|httptools|h11"),
    ("asyncio", r"asyncio/"),
]  # fmt: skip
IDLE_SETTLE_S = 10
PY_SPY = Path(sys.executable).with_name("py-spy")  # installed with ray[serve]
_COMPILED = [(name, re.compile(pattern)) for name, pattern in LAYERS]


def layer_of(stack: str) -> str:
    for frame in reversed(stack.split(";")):
        for name, pattern in _COMPILED:
            if pattern.search(frame):
                return name
    return "other (threads, the standard library)"


def layer_shares(raw: Path) -> dict[str, float]:
    """Each layer's share of a py-spy raw (collapsed stacks) profile's samples."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        counts[layer_of(stack)] += int(samples)
    total = sum(counts.values()) or 1
    return {name: round(count / total, 3) for name, count in counts.most_common()}


def replica_pids(session_id: int) -> dict[int, str]:
    """The Serve replicas among the session's processes and their descendants (`serve run`
    starts a session of its own under fraud-serve)."""
    return {
        process.pid: process.name.split("::", 1)[1]
        for process in session_processes(session_id, process_table())
        if process.name.startswith("ray::ServeReplica")
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default=PREDICT_PATH)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=25.0, help="seconds of load")
    parser.add_argument("--sample", type=float, default=15.0, help="seconds py-spy samples")
    parser.add_argument("--mode", default="haproxy+throughput")
    parser.add_argument(
        "--idle", type=float, default=0.0, help="seconds to measure with no load first"
    )
    parser.add_argument(
        "--profiles", type=Path, help="a folder to keep each replica's py-spy samples in"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp, serve_server(args.mode) as server:
        body = Path(tmp) / "bodies.json"
        if args.path.endswith("/columns"):
            rows = real_rows(1000)
            body.write_text(json.dumps([{name: [row[name] for row in rows] for name in rows[0]}]))
        elif args.path.endswith("/batch"):
            body.write_text(json.dumps([{"transactions": real_rows(1000)}]))
        else:
            body.write_text(json.dumps(real_rows(256)))
        replicas = replica_pids(server.session_id)
        if args.idle:
            time.sleep(IDLE_SETTLE_S)  # past the start's own work (imports, first exports)
            before = session_cpu_seconds(server.session_id)
            time.sleep(args.idle)
            idle = per_second_ms(before, session_cpu_seconds(server.session_id), args.idle)
            logger.info("No load, CPU ms per second, %.1f in all:", sum(idle.values()))
            for process, ms in idle.items():
                logger.info("  %-40s %6.2f", process, ms)
        before = session_cpu_seconds(server.session_id)
        load = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.load", "--url", server.url + args.path, "--body",
             str(body), "--concurrency", str(args.concurrency), "--duration", str(args.duration)],
            stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT,
        )  # fmt: skip
        time.sleep((args.duration - args.sample) / 2)
        spies = {
            pid: subprocess.Popen(
                [
                    str(PY_SPY),
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(int(args.sample)),
                    "--rate",
                    "100",
                    "--gil",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--output",
                    str(profile_path(args.profiles or Path(tmp), pid)),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for pid in replicas
        }
        figures = json.loads(load.communicate()[0])
        for spy in spies.values():
            spy.wait()
        cpu = per_request_ms(before, session_cpu_seconds(server.session_id), figures["requests"])
        logger.info("%s at %d clients: %s", args.path, args.concurrency, figures)
        logger.info("CPU ms per request, %.2f in all:", sum(cpu.values()))
        for process, ms in list(cpu.items())[:8]:
            logger.info("  %-40s %6.3f", process, ms)
        for pid, name in replicas.items():
            logger.info("%s (pid %d), share of its Python samples by layer:", name, pid)
            for layer, share in layer_shares(profile_path(args.profiles or Path(tmp), pid)).items():
                logger.info("  %-40s %5.1f %%", layer, 100 * share)
    return 0


def profile_path(folder: Path, pid: int) -> Path:
    """Where py-spy writes the samples of replica `pid` (raw: one stack a line, with its
    count)."""
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{pid}.txt"


if __name__ == "__main__":
    sys.exit(main())
