"""How large the score PSI is when nothing has drifted, by volume: its noise floor.

    uv run python -m benchmarks.psi_noise [--artifact artifacts/default] [--draws 2000]

Live scores are drawn from the artifact's own drift reference (its bins' shares: traffic exactly
as at training), `volume` at a time, `draws` times; each draw's PSI is computed as the service and
the recording rule compute it (fraud_model.drift). Any PSI within these quantiles at that volume
is noise, not drift.

Then what PSI sees of fraud: the bundled rows (data/, real transactions with every fraud of the
public data set) scored by the model, at their design weights, give each class's share of the
drift bins; live traffic at
1x, 2x and 5x the production fraud rate is their mixture, and its PSI against the reference is
computed at an unlimited volume. The model was trained on part of these rows, which flatters
how well its scores separate the classes: these PSIs are upper bounds.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from fraud_model.drift import population_stability_index

VOLUMES = (200, 500, 1_000, 2_000, 5_000, 10_000, 100_000, 1_000_000)
QUANTILES = (0.5, 0.95, 0.99)


def psi_noise(shares: list[float], volume: int, draws: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(volume, np.asarray(shares) / np.sum(shares), size=draws)
    return [population_stability_index(shares, row) for row in counts]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", type=Path, default=Path("artifacts/default"))
    parser.add_argument("--draws", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    metadata = json.loads((args.artifact / "metadata.json").read_text())
    shares = metadata["score_bins"]["shares"]
    sys.stdout.write(
        f"model {metadata['model_version']}, {len(shares)} bins, {args.draws} draws per volume\n"
        "| scores | median PSI | 95th percentile | 99th percentile |\n| --- | --- | --- | --- |\n"
    )
    for volume in VOLUMES:
        values = np.quantile(psi_noise(shares, volume, args.draws, args.seed), QUANTILES)
        sys.stdout.write(f"| {volume:,} | " + " | ".join(f"{v:.4f}" for v in values) + " |\n")
    fraud_psi(args.artifact, metadata)
    return 0


def fraud_psi(artifact: Path, metadata: dict) -> None:
    from fraud_model.artifact import load_artifact
    from fraud_model.drift import bin_counts
    from training.data import load_transactions
    from training.options import PRODUCTION_FRAUD_RATE

    data = load_transactions(Path("data/creditcard_real_subset.csv.gz"))
    scores = load_artifact(artifact).fraud_probability(data.features)
    edges, reference = metadata["score_bins"]["edges"], metadata["score_bins"]["shares"]
    # Each class's bin shares as live traffic has them: a row counts as the live transactions it
    # stands for (its design weight), as in the reference. Unweighted, the legitimate rows of the
    # first hours (weight 1) would count as much as the later sample's (weight 28.9).
    by_class = [
        bin_counts(edges, scores[data.labels == label], data.sampling.weights[data.labels == label])
        for label in (0, 1)
    ]
    shares = [counts / counts.sum() for counts in by_class]
    sys.stdout.write(
        "\n| fraud rate | PSI against the reference (unlimited volume) |\n| --- | --- |\n"
    )
    for times in (1, 2, 5):
        rate = times * PRODUCTION_FRAUD_RATE
        live = (1 - rate) * shares[0] + rate * shares[1]
        psi = population_stability_index(reference, live * 1e9)
        sys.stdout.write(f"| {times}x ({rate:.3%}) | {psi:.4f} |\n")


if __name__ == "__main__":
    sys.exit(main())
