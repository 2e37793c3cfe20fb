"""What a challenger in shadow costs the served path: single transactions at 32 clients, with no
challenger, and with one sent 0 %, 10 % and 100 % of requests, the service as the README runs it.

    uv run python -m benchmarks.shadow_cost                     # 3 rounds of 8 s per setting
    uv run python -m benchmarks.shadow_cost --rounds 2 --duration 5

One server throughout: each setting is applied in place (`fraud-serve apply`, the Ingress's
user_config), and the settings take turns, round after round, so that a machine shared with
other work weighs on each alike; each figure is the median of its rounds. The challenger is the
bundled model again, on a replica of its own with no CPU reserved (so that FraudModel is placed
and scaled the same way throughout): what is measured is the work shadow scoring adds, in the
Ingress (sampling, the second handle call, the comparison, the log record) and on the machine
(the challenger's scoring), not a model's speed.
"""

# ruff: noqa: E402  (the environment is set before the imports that bring Ray)

import argparse
import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fraud_model.ray_env import use_this_venv_for_ray_workers

use_this_venv_for_ray_workers()  # before anything imports Ray

import yaml

from benchmarks.rounds import FIGURES, median_figures, write_results
from benchmarks.run import drive, real_rows
from benchmarks.servers import FRAUD_SERVE, PROJECT_ROOT, SERVER_VARIANTS, Server, running
from fraud_model.ray_env import free_port
from serve_app.config import CHALLENGER, INGRESS
from serve_app.routes import PREDICT_PATH

logger = logging.getLogger("benchmarks.shadow_cost")
MODE = "haproxy+throughput"  # fraud-serve's own, as the README runs it
SHARES = (None, 0.0, 0.1, 1.0)  # None: the Ingress uses no challenger


def config(port: int, share: float | None) -> dict:
    """The shipped config on `port`, with the bundled model as a challenger, in shadow for
    `share` of the requests (None: not used)."""
    shipped = yaml.safe_load((PROJECT_ROOT / "configs" / "serve_config.yaml").read_text())
    shipped["http_options"]["port"] = port
    del shipped["grpc_options"]  # measured over HTTP; no second fixed port to collide on
    (application,) = shipped["applications"]
    for entry in application["deployments"]:
        if entry["name"] == INGRESS:
            entry["user_config"] = {} if share is None else {"challenger": {"share": share}}
    application["deployments"].append(
        {
            "name": CHALLENGER,
            "num_replicas": 1,
            "autoscaling_config": None,
            "ray_actor_options": {"num_cpus": 0},
            "user_config": {"artifact_uri": "artifacts/default"},
        }
    )
    return shipped


@contextlib.contextmanager
def challenger_server(workdir: Path) -> Iterator[tuple[Server, int]]:
    port = free_port()
    path = workdir / "start.yaml"
    path.write_text(yaml.safe_dump(config(port, None)))
    env = os.environ | SERVER_VARIANTS[MODE] | {"RAY_ADDRESS": "local"}
    with running([*FRAUD_SERVE, str(path)], env,
                 f"http://127.0.0.1:{port}") as server:  # fmt: skip
        yield server, port


def apply(workdir: Path, port: int, share: float | None) -> None:
    """The setting, applied in place; returns once the service says it uses it."""
    path = workdir / "apply.yaml"
    path.write_text(yaml.safe_dump(config(port, share)))
    subprocess.run(
        [*FRAUD_SERVE, "apply", str(path)],
        check=True, capture_output=True, cwd=PROJECT_ROOT,
    )  # fmt: skip


def name_of(share: float | None) -> str:
    return "no challenger" if share is None else f"shadow {share:.0%}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per load run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per setting (median)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--output", type=Path, help="write the results as JSON here too")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    runs: dict[str, list[dict]] = {name_of(share): [] for share in SHARES}
    with tempfile.TemporaryDirectory(prefix="fraud-bench-") as tmp:
        workdir = Path(tmp)
        bodies = workdir / "single.json"
        bodies.write_text(json.dumps(real_rows(256)))
        with challenger_server(workdir) as (server, port):
            # A first run, not counted: FraudModel's autoscaling settles under this load.
            drive(server, PREDICT_PATH, bodies, args.concurrency, args.duration, 1)
            for round_ in range(args.rounds):
                for share in SHARES:
                    apply(workdir, port, share)
                    result = drive(server, PREDICT_PATH, bodies, args.concurrency,
                                   args.duration, 1)  # fmt: skip
                    runs[name_of(share)].append(result)
                    shown = {k: result[k] for k in (*FIGURES, "errors")}
                    logger.info("round %d %-14s %s", round_ + 1, name_of(share), shown)
    medians = median_figures(runs)
    base = medians["no challenger"]
    for name, figures in medians.items():
        logger.info(
            "%-14s %.0f req/s (x%.2f), p50 %.1f ms (x%.2f), p99 %.1f ms (x%.2f), "
            "CPU %.2f ms/request, errors %d",
            name, figures["rps"], figures["rps"] / base["rps"], figures["p50_ms"],
            figures["p50_ms"] / base["p50_ms"], figures["p99_ms"],
            figures["p99_ms"] / base["p99_ms"], figures["cpu_ms_per_request"], figures["errors"],
        )  # fmt: skip
    write_results(args.output, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
