"""gRPC against HTTP on one running service (`fraud-serve`, HAProxy in front of the replicas):
one transaction per call and 1,000 as columns, with one load generator for both.

    uv run python -m benchmarks.grpc_vs_http
    uv run python -m benchmarks.grpc_vs_http --duration 8 --rounds 3 --output grpc.json

The client is h2load (nghttp2's, in C): HTTP/1.1 for the HTTP API (as wrk and the checkout
clients speak it) and HTTP/2 for gRPC, one request in flight per connection in both, so the two
protocols see the same concurrency. Each setting runs in turn within a round, and figures are
medians over rounds; CPU time per request is the server's, by process. Before any load, the
gRPC answers are checked against the HTTP answers on the same rows.
"""

# ruff: noqa: E402  (the environment is set before the imports that bring Ray)

import argparse
import json
import logging
import shutil
import struct
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from fraud_model.ray_env import use_this_venv_for_ray_workers

use_this_venv_for_ray_workers()  # before anything imports Ray

import httpx
import numpy as np

from benchmarks.cpu import per_request_ms, session_cpu_seconds
from benchmarks.rounds import FIGURES, median_figures, write_results
from benchmarks.run import real_rows
from benchmarks.servers import Server, serve_server
from fraud_model.features import FEATURE_NAMES
from serve_app.routes import COLUMNS_PATH, PREDICT_PATH

logger = logging.getLogger("benchmarks.grpc_vs_http")
MODE = "haproxy+throughput"  # fraud-serve's own
HARD_MAX_DURATION_S = 60


def grpc_frame(message: bytes) -> bytes:
    """A gRPC message on the wire: not compressed, its length, then the message."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def bodies(workdir: Path, row: dict[str, float], batch: list[dict[str, float]]) -> dict:
    """The request bodies of each setting, and how h2load sends them."""
    from serve_app.grpc_api import fraud_scoring_pb2 as pb

    columns = {name: [r[name] for r in batch] for name in FEATURE_NAMES}
    files = {
        "http_one": json.dumps(row).encode(),
        "grpc_one": grpc_frame(pb.Transaction(**row).SerializeToString()),
        "http_columns": json.dumps(columns).encode(),
        "grpc_columns": grpc_frame(pb.TransactionColumns(**columns).SerializeToString()),
    }
    for name, content in files.items():
        (workdir / name).write_bytes(content)
    return {name: workdir / name for name in files}


def target(server: Server, setting: str) -> tuple[str, list[str]]:
    """URL and h2load options of a setting."""
    assert server.grpc_port is not None
    if setting.startswith("http"):
        path = PREDICT_PATH if setting == "http_one" else COLUMNS_PATH
        return server.url + path, ["--h1", "-H", "content-type: application/json"]
    method = "Predict" if setting == "grpc_one" else "PredictColumns"
    url = f"http://127.0.0.1:{server.grpc_port}/fraud.v1.FraudScoring/{method}"
    return url, ["-H", "content-type: application/grpc", "-H", "te: trailers"]


def h2load(url: str, options: list[str], body: Path, clients: int, duration_s: float) -> dict:
    """One load run: `clients` connections, one request in flight on each, for `duration_s`."""
    assert url.startswith("http://127.0.0.1:"), "load goes to the loopback interface only"
    duration_s = min(max(1, round(duration_s)), HARD_MAX_DURATION_S)  # h2load takes whole seconds
    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        completed = subprocess.run(
            ["h2load", *options, "-d", str(body), "-c", str(clients), "-m", "1",
             "-D", str(duration_s), "--warm-up-time=1", f"--log-file={log.name}", url],
            capture_output=True, text=True, timeout=duration_s + 60,
        )  # fmt: skip
        lines = Path(log.name).read_text().split("\n")
    if completed.returncode != 0:
        raise RuntimeError(f"h2load failed: {completed.stdout[-500:]} {completed.stderr[-500:]}")
    # Each line: the request's start (us since the epoch), its HTTP status, its duration (us).
    records = [line.split("\t") for line in lines if line]
    ok = np.array([int(duration) for _, status, duration in records if status == "200"]) / 1000
    return {
        "requests": len(ok),
        "errors": len(records) - len(ok),
        # h2load logs a request it could not complete (a closed connection) with status -1.
        "error_statuses": dict(Counter(status for _, status, _ in records if status != "200")),
        "rps": round(len(ok) / duration_s, 1),
        "p50_ms": round(float(np.percentile(ok, 50)), 2) if len(ok) else None,
        "p99_ms": round(float(np.percentile(ok, 99)), 2) if len(ok) else None,
    }


def check_grpc_answers(server: Server, rows: list[dict[str, float]]) -> None:
    """Each row over gRPC gets the HTTP answer (h2load sees only the HTTP status)."""
    import grpc

    from serve_app.grpc_api import fraud_scoring_pb2 as pb
    from serve_app.grpc_api.fraud_scoring_pb2_grpc import FraudScoringStub

    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = FraudScoringStub(channel)
        for row in rows:
            answer = stub.Predict(pb.Transaction(**row), timeout=30)
            expected = httpx.post(f"{server.url}/api/v1/predict", json=row, timeout=30).json()
            if abs(answer.fraud_probability - expected["fraud_probability"]) > 1e-12:
                raise RuntimeError(f"gRPC answered {answer}, HTTP {expected}")


def measure(server: Server, setting: str, files: dict, clients: int, duration_s: float) -> dict:
    url, options = target(server, setting)
    body = files[setting]
    before = session_cpu_seconds(server.session_id)
    result = h2load(url, options, body, clients, duration_s)
    cpu_ms = per_request_ms(before, session_cpu_seconds(server.session_id), result["requests"])
    return result | {
        "cpu_ms_per_request": round(sum(cpu_ms.values()), 3),
        "cpu_ms_by_process": cpu_ms,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per load run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per setting (median)")
    parser.add_argument("--concurrency", default="1,32", help="clients for single transactions")
    parser.add_argument("--output", type=Path, help="write the results as JSON here too")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if shutil.which("h2load") is None:
        parser.error("h2load is not installed (Debian/Ubuntu: apt install nghttp2-client)")
    settings = [
        (f"{protocol}_one", clients)
        for clients in map(int, args.concurrency.split(","))
        for protocol in ("http", "grpc")
    ] + [("http_columns", 2), ("grpc_columns", 2)]
    runs: dict[str, list[dict]] = {f"{name}_c{clients}": [] for name, clients in settings}
    with tempfile.TemporaryDirectory(prefix="fraud-bench-") as tmp, serve_server(MODE) as server:
        rows = real_rows(1000)
        files = bodies(Path(tmp), rows[0], rows)
        check_grpc_answers(server, rows[:20])
        # A first run, not counted: FraudModel's autoscaling settles under load.
        measure(server, "http_one", files, 32, args.duration)
        for round_ in range(args.rounds):
            for name, clients in settings:
                result = measure(server, name, files, clients, args.duration)
                runs[f"{name}_c{clients}"].append(result)
                shown = {key: result[key] for key in (*FIGURES, "errors", "error_statuses")}
                logger.info("round %d %-16s %s", round_ + 1, f"{name}_c{clients}", shown)
    medians = median_figures(runs)
    for name, figures in medians.items():
        if name.startswith("grpc"):
            http = medians["http" + name.removeprefix("grpc")]
            logger.info(
                "%-16s gRPC/HTTP: req/s x%.2f, p50 x%.2f, p99 x%.2f, CPU/request x%.2f",
                name.removeprefix("grpc_"), figures["rps"] / http["rps"],
                figures["p50_ms"] / http["p50_ms"], figures["p99_ms"] / http["p99_ms"],
                figures["cpu_ms_per_request"] / http["cpu_ms_per_request"],
            )  # fmt: skip
    write_results(args.output, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
