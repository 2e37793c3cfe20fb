"""How large the score PSI is when nothing has drifted, by volume: its noise floor.

    uv run python -m benchmarks.psi_noise [--artifact artifacts/default] [--draws 2000]

Live scores are drawn from the artifact's own drift reference (its bins' shares: traffic exactly
as at training), `volume` at a time, `draws` times; each draw's PSI is computed as the service and
the recording rule compute it (fraud_model.drift). Any PSI within these quantiles at that volume
is noise, not drift.
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
