"""What making an S3 client costs: a boto3 session of its own, or `fraud_model.store.s3_client`.

    uv run python -m benchmarks.s3_clients             # 10 clients of each, alternating

Every client `s3_client` makes has a session of its own (the credential chain is resolved again),
as before; what changed is that its sessions share one botocore data loader, so the S3 service
description and the endpoint rules are read from disk once a process. The figure is the CPU time
(`time.process_time`) of making one client, median and range over `--clients` of each kind, after
one of each has been made (imports and the first reads are not counted). No request is sent.
"""

import argparse
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("benchmarks")


def measure(clients: int) -> dict[str, list[float]]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # a client needs one; none is called
    import boto3

    from fraud_model.store import s3_client

    kinds: dict[str, Callable[[], Any]] = {
        "a boto3 session of its own": lambda: boto3.session.Session().client("s3"),
        "s3_client (shared loader)": s3_client,
    }
    for make in kinds.values():
        make()
    spent: dict[str, list[float]] = {name: [] for name in kinds}
    for _ in range(clients):
        for name, make in kinds.items():
            start = time.process_time()
            make()
            spent[name].append(time.process_time() - start)
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    for name, seconds in measure(args.clients).items():
        logger.info(
            "%s: median %.0f ms of CPU a client [%.0f, %.0f]",
            name,
            statistics.median(seconds) * 1000,
            min(seconds) * 1000,
            max(seconds) * 1000,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
