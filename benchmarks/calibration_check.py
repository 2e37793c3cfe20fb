"""Does fraud_probability add up on held-out rows? An artifact trained by `python -m training`
on a data file, scored on that run's test split (same seed and size), weighted to the production
fraud rate: the mean probability should be that rate. Compares the artifact's fitted training
prior with the textbook one (0.5 for balanced class weights).

uv run python -m benchmarks.calibration_check ARTIFACT --data data/creditcard_real_subset.csv.gz
"""

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from fraud_model.artifact import load_artifact
from fraud_model.prior import adjust_to_prior
from training.data import load_transactions
from training.evaluate import prevalence_weights
from training.options import TrainingOptions
from training.pipeline import split_off_test

logger = logging.getLogger("benchmarks.calibration_check")


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--data", type=Path, required=True, help="the file it was trained on")
    args = parser.parse_args()
    artifact = load_artifact(args.artifact)
    options = TrainingOptions(**artifact.metadata.training_params["options"])
    data = load_transactions(args.data)
    _, x_test, _, y_test = split_off_test(data, options)
    raw = artifact.engine.raw_fraud_scores(x_test.astype(np.float32))
    rate = artifact.metadata.calibration.production_prior
    weights = prevalence_weights(y_test, rate)
    fitted = artifact.metadata.calibration.training_prior
    for name, prior in (("textbook", 0.5), ("fitted", fitted)):
        served = adjust_to_prior(raw, prior, rate)
        logger.info(
            "%-8s training prior %.4f: mean probability at the production rate %.5f (target "
            "%.5f); mean over the %d test frauds %.3f",
            name,
            prior,
            np.average(served, weights=weights),
            rate,
            int(y_test.sum()),
            served[y_test == 1].mean(),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
