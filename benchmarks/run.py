"""Side-by-side benchmark: the plain FastAPI app vs this service, on the same artifact and machine.

    uv run python -m benchmarks.run                  # seed vs every Serve mode, no-op, batch
    uv run python -m benchmarks.run --modes "haproxy;haproxy+throughput"   # only some modes
    uv run python -m benchmarks.run --training       # also: Ray-parallel vs sklearn n_jobs=-1
    uv run python -m benchmarks.run --peers none     # without MLServer, BentoML and LitServe

The servers take turns in --rounds rounds: in each, every server is started, given --repeats
load runs of --duration seconds per figure and stopped, and each round starts one server further
along the list. Every figure is the median of all its runs, and its CPU time per request (by
process, benchmarks/cpu.py) is over all of them. This machine may be shared and noisy, and its
noise drifts over minutes: taking turns spreads each server's runs over the whole run, so the
ratios of medians taken in one run do not depend on which server ran in a quiet minute.

The peers (benchmarks/peers/) run in the same run, each from a virtual environment the harness
makes on first use, and are asked in their own request formats at the same load levels.
"""

# ruff: noqa: E402  (the environment is set before the imports that bring Ray)

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import TypeVar

from fraud_model.ray_env import use_this_venv_for_ray_workers

use_this_venv_for_ray_workers()  # before anything imports Ray

import numpy as np
import pandas as pd

from benchmarks.cpu import per_request_ms, session_cpu_seconds
from benchmarks.peers.catalog import Peer, parse_peers
from benchmarks.peers.check import check_peer
from benchmarks.peers.launch import peer_server, workers
from benchmarks.peers.summary import log_ratios, log_side_by_side, ratios_to_best_peer
from benchmarks.peers.venvs import ensure_venv
from benchmarks.servers import (
    PROJECT_ROOT,
    SERVER_VARIANTS,
    Server,
    seed_server,
    serve_server,
)
from fraud_model.artifact import LoadedArtifact, load_artifact
from fraud_model.features import FEATURE_DTYPE, FEATURE_NAMES
from serve_app.routes import BATCH_PATH, COLUMNS_PATH, PREDICT_PATH

logger = logging.getLogger("benchmarks")

T = TypeVar("T")
ARTIFACT = PROJECT_ROOT / "artifacts" / "default"
DATA = PROJECT_ROOT / "data" / "creditcard_real_subset.csv.gz"
NOOP_APP = {
    "name": "fraud",
    "route_prefix": "/",
    "import_path": "benchmarks.noop_app:build_noop_app",
}


def real_rows(n: int) -> list[dict[str, float]]:
    frame = pd.read_csv(DATA).sample(n=n, random_state=0)
    return frame[list(FEATURE_NAMES)].astype(float).to_dict(orient="records")


def flagged_fraud_row(artifact: LoadedArtifact) -> dict[str, float]:
    """The real fraud the artifact is surest of: a peer must flag it too."""
    frame = pd.read_csv(DATA)
    frauds = frame[frame["Class"] == 1][list(FEATURE_NAMES)].astype(float)
    scores = artifact.fraud_probability(frauds.to_numpy(FEATURE_DTYPE))
    row: dict[str, float] = frauds.iloc[int(np.argmax(scores))].to_dict()
    return row


def drive(
    server: Server, path: str, bodies: Path, concurrency: int, duration: float, repeats: int
) -> dict:
    """Median of `repeats` load runs from a separate process, and the server's CPU time per
    request over all of them (total, and by process)."""
    runs = []
    cpu_before = session_cpu_seconds(server.session_id)
    for _ in range(repeats):
        output = subprocess.run(
            [sys.executable, "-m", "benchmarks.load", "--url", server.url + path, "--body",
             str(bodies), "--concurrency", str(concurrency), "--duration", str(duration)],
            capture_output=True, text=True, check=True, cwd=PROJECT_ROOT,
        ).stdout  # fmt: skip
        runs.append(json.loads(output))
    cpu_ms = per_request_ms(
        cpu_before, session_cpu_seconds(server.session_id), sum(run["requests"] for run in runs)
    )
    return figures(runs, cpu_ms)


def figures(runs: list[dict], cpu_ms: dict[str, float]) -> dict:
    """The medians of `runs`, their CPU ms per request (`cpu_ms`, by process) and the runs."""
    median = {
        key: statistics.median(run[key] for run in runs) for key in ("rps", "p50_ms", "p99_ms")
    }
    return median | {
        "errors": sum(run["errors"] for run in runs),
        "client": runs[0]["client"],
        "cpu_ms_per_request": round(sum(cpu_ms.values()), 3),
        "cpu_ms_by_process": cpu_ms,
        "runs": runs,
    }


def merged(rounds: list[dict]) -> dict:
    """One figure from its rounds' (drive's results): the medians of all their runs, and the CPU
    per request over all their requests."""
    runs = [run for figure in rounds for run in figure["runs"]]
    requests = [sum(run["requests"] for run in figure["runs"]) for figure in rounds]
    spent: dict[str, float] = {}
    for figure, count in zip(rounds, requests, strict=True):
        for name, ms in figure["cpu_ms_by_process"].items():
            spent[name] = spent.get(name, 0.0) + ms * count
    total = max(sum(requests), 1)
    cpu_ms = {
        name: round(ms / total, 3) for name, ms in sorted(spent.items(), key=lambda kv: -kv[1])
    }
    return figures(runs, cpu_ms)


def merged_suites(rounds: list[dict]) -> dict:
    """A server's suite from its rounds: each figure merged; transactions/s kept per batch."""
    suite = {key: merged([one[key] for one in rounds]) for key in rounds[0]}
    for key, figure in suite.items():
        if key.endswith("1000_c2"):
            figure["tx_per_s"] = figure["rps"] * 1000
    return suite


def in_turn(servers: list[T], turn: int) -> list[T]:
    """The servers in the order of round `turn` (from 0): each round starts one further along."""
    start = turn % len(servers)
    return servers[start:] + servers[:start]


def http_suite(
    server: Server,
    files: dict[str, Path],
    args: argparse.Namespace,
    single_path: str = PREDICT_PATH,
    batch_path: str | None = BATCH_PATH,
) -> dict:
    results = {
        f"c{c}": drive(server, single_path, files["single"], c, args.duration, args.repeats)
        for c in args.concurrency
    }
    if batch_path is not None:
        result = drive(server, batch_path, files["batch"], 2, args.duration, args.repeats)
        results["batch1000_c2"] = result | {"tx_per_s": result["rps"] * 1000}
    if "columns" in files:  # this service's columnar form of the same 1,000 transactions
        result = drive(server, COLUMNS_PATH, files["columns"], 2, args.duration, args.repeats)
        results["columns1000_c2"] = result | {"tx_per_s": result["rps"] * 1000}
    return results


def peer_suite(peer: Peer, workdir: Path, args: argparse.Namespace) -> dict:
    """A peer at the same levels as this service, on the same rows in its own request format,
    after it has shown that it answers with the artifact's probabilities."""
    rows, batch = real_rows(256), real_rows(1000)
    files = {"single": workdir / f"{peer.name}-single.json",
             "batch": workdir / f"{peer.name}-batch.json"}  # fmt: skip
    files["single"].write_text(json.dumps([peer.single_body(row) for row in rows]))
    files["batch"].write_text(json.dumps([peer.batch_body(batch)]))
    artifact = load_artifact(ARTIFACT)
    with peer_server(peer, ARTIFACT) as server:
        check_peer(peer, server, artifact, flagged_fraud_row(artifact), batch)
        return http_suite(server, files, args, peer.single_path, peer.batch_path)


def peer_settings(peers: list[Peer]) -> dict:
    """What each peer ran with, for the JSON output."""
    return {
        peer.name: {
            "requirements": peer.requirements(),
            "engine": peer.engine,
            "workers": workers(),
            "batching": peer.batching,
            "single": peer.single_path,
            "batch": peer.batch_path,
            "answers": "calibrated probability and decision"
            if peer.calibrated
            else "raw predict_proba, no decision",
        }
        for peer in peers
    }


def engine_rates(repeats: int = 50) -> dict:
    """Cost per call (ms, median), in this process, of the served ONNX engine and of the same
    forest in scikit-learn (the artifact's model.joblib, which serving never loads)."""
    import joblib

    rows = np.asarray([[r[n] for n in FEATURE_NAMES] for r in real_rows(1000)], dtype=np.float32)
    scorers = {
        "onnx": (load_artifact(ARTIFACT).fraud_probability, repeats),
        "sklearn": (joblib.load(ARTIFACT / "model.joblib").predict_proba, 10),
    }
    results = {}
    for engine, (score, times_each) in scorers.items():
        for n in (1, 32, 1000):
            times = []
            for _ in range(times_each):
                started = time.perf_counter()
                score(rows[:n])
                times.append((time.perf_counter() - started) * 1000)
            results[f"{engine}_{n}_ms"] = round(statistics.median(times), 3)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--modes", default=";".join(SERVER_VARIANTS), help="Serve ingress modes, ';'-separated"
    )
    parser.add_argument("--concurrency", default="1,8,32", help="client concurrency levels")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per load run")
    parser.add_argument(
        "--rounds", type=int, default=3, help="turns each server takes (module docstring)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="load runs per figure in each round")
    parser.add_argument("--no-noop", action="store_true", help="skip the no-op model runs")
    parser.add_argument("--training", action="store_true", help="also time training")
    parser.add_argument("--training-rows", type=int, default=284_807)
    parser.add_argument("--output", type=Path, help="write all results as JSON here too")
    parser.add_argument(
        "--peers", default="all", help="mlserver,bentoml,litserve (comma-separated), all or none"
    )
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    # A mode named twice is one server: the rounds already alternate the servers.
    modes = list(dict.fromkeys(args.modes.split(";")))
    try:
        peers = parse_peers(args.peers)
    except ValueError as error:
        parser.error(str(error))
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    for peer in peers:  # first: a peer that cannot be installed stops the run before it starts
        ensure_venv(peer.name, peer.requirements())
    results: dict = {"machine": machine()}
    logger.info("Machine: %s", results["machine"])
    results["engines"] = engine_rates()
    logger.info("Engine cost per call (ms): %s", results["engines"])
    with tempfile.TemporaryDirectory() as tmp:
        rows = real_rows(256)
        files = {"single": Path(tmp) / "single.json", "batch": Path(tmp) / "batch.json"}
        files["single"].write_text(json.dumps(rows))
        batch = real_rows(1000)
        files["batch"].write_text(json.dumps([{"transactions": batch}]))
        columns = Path(tmp) / "columns.json"
        columns.write_text(json.dumps([{name: [row[name] for row in batch] for name in batch[0]}]))

        def seed() -> dict:
            with seed_server(ARTIFACT) as server:
                return http_suite(server, files, args, batch_path=None)

        def service(mode: str) -> dict:
            with serve_server(mode) as server:
                return http_suite(server, files | {"columns": columns}, args)

        def noop(mode: str) -> dict:
            with serve_server(mode, application=NOOP_APP) as server:
                return {"c32": drive(server, PREDICT_PATH, files["single"], 32, args.duration,
                                     args.repeats)}  # fmt: skip

        def peer(one: Peer) -> dict:
            return peer_suite(one, Path(tmp), args)

        servers = [("seed", "plain FastAPI app (uvicorn, 2 workers, sklearn per request)", seed)]
        for mode in modes:
            servers.append((mode, f"this service, Serve mode {mode}", partial(service, mode)))
            if not args.no_noop:
                servers.append((f"{mode}/noop", f"no-op model, Serve mode {mode}",
                                partial(noop, mode)))  # fmt: skip
        for one in peers:
            servers.append((one.name, f"peer {one.name}", partial(peer, one)))
        rounds: dict[str, list[dict]] = {name: [] for name, _, _ in servers}
        for turn in range(args.rounds):
            for name, title, suite in in_turn(servers, turn):
                logger.info("== round %d of %d: %s", turn + 1, args.rounds, title)
                rounds[name].append(suite())
                log_suite(name, rounds[name][-1])
        logger.info("== medians over the %d rounds", args.rounds)
        for name, _, _ in servers:
            results[name] = merged_suites(rounds[name])
            log_suite(name, results[name])
        if peers:
            results["peer_settings"] = peer_settings(peers)
            results["peers"] = {one.name: results.pop(one.name) for one in peers}
        results["rounds"] = args.rounds
    if args.training:
        from benchmarks.training_time import compare_training

        results["training"] = compare_training(args.training_rows)
    summarise(results, modes)
    if args.output:
        args.output.write_text(json.dumps(results, indent=2))
    return 0


def log_suite(name: str, suite: dict) -> None:
    for key, figures in suite.items():
        shown = {
            key: value for key, value in figures.items() if key not in ("cpu_ms_by_process", "runs")
        }
        logger.info("  %-22s %-14s %s", name, key, shown)
        top = list(figures["cpu_ms_by_process"].items())[:4]
        logger.info("  %-22s %-14s CPU ms/request by process: %s", "", "", top)


def summarise(results: dict, modes: list[str]) -> None:
    seed = results["seed"]
    logger.info("== ratios to the plain FastAPI app (same run)")
    for mode in modes:
        ours = results[mode]
        for level in seed:
            logger.info(
                "  %-20s %-5s throughput x%.2f  p50 x%.2f  p99 x%.2f  (errors: seed %d, ours %d)",
                mode, level, ours[level]["rps"] / seed[level]["rps"],
                ours[level]["p50_ms"] / seed[level]["p50_ms"],
                ours[level]["p99_ms"] / seed[level]["p99_ms"],
                seed[level]["errors"], ours[level]["errors"],
            )  # fmt: skip
            logger.info(
                "  %-20s %-5s CPU ms per request: seed %.2f, ours %.2f", mode, level,
                seed[level]["cpu_ms_per_request"], ours[level]["cpu_ms_per_request"],
            )  # fmt: skip
        if f"{mode}/noop" in results:
            noop = results[f"{mode}/noop"]["c32"]["rps"]
            logger.info("  %-20s c32 throughput / no-op model: %.0f%%", mode,
                        100 * ours["c32"]["rps"] / noop)  # fmt: skip
        batch, columns = ours["batch1000_c2"]["tx_per_s"], ours["columns1000_c2"]["tx_per_s"]
        logger.info("  %-20s batch: %.0f transactions/s, columnar: %.0f", mode, batch, columns)
    if results.get("peers"):
        summarise_peers(results, modes)


def summarise_peers(results: dict, modes: list[str]) -> None:
    """Every server's headline figures, and this service's ratios to the best peer (kept in the
    JSON output too)."""
    levels = [key for key in results["seed"] if key.startswith("c")]
    low, high = levels[0], levels[-1]
    servers = {"seed": results["seed"]} | {mode: results[mode] for mode in modes}
    log_side_by_side(servers | results["peers"], low, high)
    logger.info("== this service's ratios to the best peer (same run)")
    results["ratios_to_best_peer"] = {}
    for mode in modes:
        ratios = ratios_to_best_peer(results[mode], results["peers"], low, high)
        results["ratios_to_best_peer"][mode] = ratios
        log_ratios(mode, ratios)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), platform.processor())  # fmt: skip
    import ray

    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, Ray {ray.__version__}"
    )


if __name__ == "__main__":
    sys.exit(main())
