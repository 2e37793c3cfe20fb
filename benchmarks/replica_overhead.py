"""What a FraudModel replica spends on a call besides the model: in-process, without Ray.

    uv run python -m benchmarks.replica_overhead             # 1 row and 1,000 rows a call

A replica is built as Serve builds it, on the bundled artifact; Ray's own metric classes record
as they do in a replica (no Ray runs to collect what they record). The model's own scoring is
replaced by its answer, computed once, so what is timed is everything around it: building the
answers, the decision rule, the metrics' counts and the drift bins. Single rows go through
`score_many` (the path of /api/v1/predict), 1,000 rows through `score_columns`
(/api/v1/predict/columns). Each figure is the median of 7 timings of `--calls` calls, in µs per
call.
"""

import argparse
import asyncio
import logging
import statistics
import sys
import time
import types
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from benchmarks.run import ARTIFACT, real_rows
from fraud_model.features import FEATURE_DTYPE, FEATURE_NAMES

logger = logging.getLogger("benchmarks")


def replica() -> Any:
    from ray import serve

    from serve_app import model

    context = types.SimpleNamespace(
        deployment="FraudModel", _deployment_config=types.SimpleNamespace(max_ongoing_requests=64)
    )
    serve.get_replica_context = lambda: context
    model.replica_cpus = lambda: 1  # Ray's runtime context would start Ray
    return model.FraudModel.func_or_class(role="champion")  # type: ignore[attr-defined]


async def timed(call: Callable[[], Awaitable[object]], calls: int) -> float:
    for _ in range(calls // 2):  # warm-up
        await call()
    timings = []
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(calls):
            await call()
        timings.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(timings)


async def measure(calls: int) -> dict[str, float]:
    from serve_app import model

    fraud_model = replica()
    await fraud_model.reconfigure({"artifact_uri": str(ARTIFACT)})
    transactions = real_rows(1000)
    rows = np.array([[row[name] for name in FEATURE_NAMES] for row in transactions], FEATURE_DTYPE)
    answer = model.fraud_probabilities(fraud_model._serving, rows)
    model.fraud_probabilities = lambda _, features: answer[: len(features)].copy()
    one = rows[:1].tolist()
    return {
        "1 row (score_many)": await timed(lambda: fraud_model.score_many(one), calls),
        "1,000 rows (score_columns)": await timed(lambda: fraud_model.score_columns(rows), calls),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    for name, microseconds in asyncio.run(measure(args.calls)).items():
        logger.info("%s: %.1f µs a call", name, microseconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
