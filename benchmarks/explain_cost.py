"""What reason codes cost next to plain scoring, on the bundled model (median of repeats).

uv run python -m benchmarks.explain_cost
"""

import logging
import statistics
import sys
import time

import numpy as np

from benchmarks.run import ARTIFACT, real_rows
from fraud_model.artifact import load_artifact
from fraud_model.features import FEATURE_NAMES

logger = logging.getLogger("benchmarks.explain_cost")


def median_ms(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    artifact = load_artifact(ARTIFACT)
    explainer = artifact.load_explainer()
    calibration = artifact.metadata.calibration
    rows = np.asarray([[r[n] for n in FEATURE_NAMES] for r in real_rows(1000)], dtype=np.float32)
    for n in (1, 32, 1000):
        batch = rows[:n]
        scoring = median_ms(lambda b=batch: artifact.fraud_probability(b), 50)
        explaining = median_ms(lambda b=batch: explainer.served(b, calibration), 20)
        logger.info(
            "%5d rows: ONNX scoring %.3f ms, reason codes %.2f ms (x%.0f)",
            n, scoring, explaining, explaining / scoring,
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
