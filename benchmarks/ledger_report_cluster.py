"""The realized-performance report over a large synthetic ledger in S3, counted locally (DuckDB)
and as Ray tasks on the three-node rehearsal cluster, side by side in one run.

    uv run python -m benchmarks.ledger_report_cluster --decisions 10000000

The ledger is written to a moto S3 server on this machine; the cluster is the rendered
RayService's nodes as processes (k8s/local_cluster.py, as the rehearsal starts them), with
token authentication. Prints the wall clock and peak memory of each run and whether the two
report.json files are identical.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fraud_model.ray_env import use_this_venv_for_ray_workers
from k8s.local_cluster import (
    LocalRayCluster,
    local_s3,
    new_api_keys,
    node_specs,
    rendered_rayservice,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def timed_report(ledger: str, out: Path, env: dict[str, str], *extra: str) -> tuple[float, str]:
    """(seconds, peak resident memory as GNU time prints it) of one report command."""
    started = time.monotonic()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "peak %M KB", sys.executable, "-m", "ledger.report",
         "--ledger", ledger, "--out", str(out), "--as-of", "2026-12-01", *extra],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"the report failed: {done.stderr[-2000:]}")
    return time.monotonic() - started, done.stderr.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=10_000_000, help="champion decisions")
    args = parser.parse_args()
    use_this_venv_for_ray_workers()
    import logging
    import os

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the S3 server's line per request

    import boto3

    out = Path(tempfile.mkdtemp(prefix="ledger-report-"))
    with local_s3() as s3_env:
        env = dict(os.environ) | s3_env
        os.environ.update(s3_env)
        boto3.client("s3").create_bucket(Bucket="ledger")
        ledger = "s3://ledger/decisions"
        subprocess.run(
            [sys.executable, "-m", "benchmarks.ledger_data", "--ledger", ledger,
             "--decisions", str(args.decisions)],
            env=env, cwd=PROJECT_ROOT, check=True,
        )  # fmt: skip
        local_s, local_peak = timed_report(ledger, out / "local", env)
        sys.stdout.write(f"local, DuckDB in one process: {local_s:.0f} s, {local_peak}\n")
        work_dir = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))  # Ray's socket paths
        cluster = LocalRayCluster(
            node_specs(rendered_rayservice(), new_api_keys()), work_dir, extra_env=s3_env
        )
        try:
            cluster.start()
            ray_s, ray_peak = timed_report(
                ledger, out / "cluster", env | cluster.client_env(), "--ray"
            )
        finally:
            cluster.stop()
            shutil.rmtree(work_dir, ignore_errors=True)
        sys.stdout.write(f"--ray on the 3-node cluster: {ray_s:.0f} s, {ray_peak} (driver)\n")
    same = json.loads((out / "local" / "report.json").read_text()) == json.loads(
        (out / "cluster" / "report.json").read_text()
    )
    sys.stdout.write(f"report.json identical: {same} ({out})\n")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
