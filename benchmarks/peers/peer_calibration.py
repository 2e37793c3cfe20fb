"""The artifact's Platt calibration as the peers apply it, numpy only.

The peers run in environments of their own and import nothing of the project: the harness copies
this file beside each peer's app (benchmarks/peers/commands.py). Checked against the service's
fraud_model.calibration by tests/unit/test_benchmark_peers.py.
"""

import numpy as np


def platt(raw: np.ndarray, calibration: dict[str, float]) -> np.ndarray:
    """The artifact's Platt calibration, as the service applies it (fraud_model.calibration):
    the forest's score smoothed as a share of tree votes, its log-odds mapped by two parameters,
    bounded to +-30."""
    trees, pseudo = calibration["trees"], calibration["pseudo_count"]
    smoothed = (trees * raw.astype(np.float64) + pseudo) / (trees + 2 * pseudo)
    linear = calibration["intercept"] + calibration["slope"] * (
        np.log(smoothed) - np.log1p(-smoothed)
    )
    result: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(linear, -30.0, 30.0)))
    return result
