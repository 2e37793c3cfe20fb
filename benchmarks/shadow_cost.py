"""What a challenger in shadow costs the served path: single transactions at 32 clients, with no
challenger, and with one sent 0 %, 10 % and 100 % of requests, the service as the README runs it.

    uv run python -m benchmarks.shadow_cost                       # 8 s per run, 2 runs each
    uv run python -m benchmarks.shadow_cost --duration 5 --repeats 1

The challenger is the bundled model again, on its own replica (no CPU reserved, so that the
champion is placed and scaled the same way in every run): what is measured is the work shadow
scoring adds, in the Ingress (sampling, the second handle call, the comparison, the log record)
and on the machine (the challenger's scoring), not a model's speed.
"""

# ruff: noqa: E402  (the environment is set before the imports that bring Ray)

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fraud_model.ray_env import use_this_venv_for_ray_workers

use_this_venv_for_ray_workers()  # before anything imports Ray

import yaml

from benchmarks.run import drive, real_rows
from benchmarks.servers import PROJECT_ROOT, SERVER_VARIANTS, Server, running
from serve_app.cli import free_port

logger = logging.getLogger("benchmarks.shadow_cost")
MODE = "haproxy+throughput"  # fraud-serve's own, as the README runs it
SHARES = (None, 0.0, 0.1, 1.0)  # None: no challenger in the config at all


def config_with_challenger(share: float | None, port: int) -> dict:
    """The shipped config on `port`, with the bundled model as a challenger in shadow."""
    config = yaml.safe_load((PROJECT_ROOT / "configs" / "serve_config.yaml").read_text())
    config["http_options"]["port"] = port
    if share is None:
        return config
    (application,) = config["applications"]
    for entry in application["deployments"]:
        if entry["name"] == "Ingress":
            entry["user_config"] = {"challenger": {"share": share}}
    application["deployments"].append(
        {
            "name": "Challenger",
            "num_replicas": 1,
            "autoscaling_config": None,
            "ray_actor_options": {"num_cpus": 0},
            "user_config": {"artifact_uri": "artifacts/default"},
        }
    )
    return config


@contextlib.contextmanager
def shadow_server(share: float | None) -> Iterator[Server]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="fraud-bench-") as workdir:
        path = Path(workdir) / "serve_config.yaml"
        path.write_text(yaml.safe_dump(config_with_challenger(share, port)))
        env = os.environ | SERVER_VARIANTS[MODE] | {"RAY_ADDRESS": "local"}
        with running(["uv", "run", "fraud-serve", str(path)], env,
                     f"http://127.0.0.1:{port}") as server:  # fmt: skip
            yield server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per load run")
    parser.add_argument("--repeats", type=int, default=2, help="load runs per figure (median)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--output", type=Path, help="write the results as JSON here too")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        bodies = Path(tmp) / "single.json"
        bodies.write_text(json.dumps(real_rows(256)))
        for share in SHARES:
            name = "no challenger" if share is None else f"shadow {share:.0%}"
            with shadow_server(share) as server:
                result = drive(server, "/api/v1/predict", bodies, args.concurrency,
                               args.duration, args.repeats)  # fmt: skip
            results[name] = result
            shown = {k: v for k, v in result.items() if k != "cpu_ms_by_process"}
            logger.info("%-14s c%d %s", name, args.concurrency, shown)
    base = results["no challenger"]
    for name, result in results.items():
        logger.info(
            "%-14s throughput x%.2f, p50 x%.2f, p99 x%.2f, CPU ms/request %.2f (errors %d)",
            name, result["rps"] / base["rps"], result["p50_ms"] / base["p50_ms"],
            result["p99_ms"] / base["p99_ms"], result["cpu_ms_per_request"], result["errors"],
        )  # fmt: skip
    if args.output:
        args.output.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
