"""Score drift: the population stability index (PSI) of live scores against the training scores.

PSI = sum over bins of (live share - reference share) * ln(live share / reference share).
Rule of thumb: < 0.1 stable, 0.1-0.25 worth a look, > 0.25 the inputs or the fraud pattern have
moved. The bins are fixed at training time and stored in the artifact: deciles of the held-out
scores (weighted to the production fraud rate, so they describe live traffic, not a fraud-rich
test set), plus one edge per decade from 1e-5 to 0.1 so the rare high scores, where decisions
are made, get bins of their own.
"""

import numpy as np

PSI_EPSILON = 1e-4  # stands in for an empty bin's share, so the logarithm stays finite


DECADE_EDGES = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def reference_bins(
    scores: np.ndarray, weights: np.ndarray | None = None, quantiles: int = 10
) -> tuple[list[float], list[float]]:
    """Inner bin edges and each bin's (weighted) share of `scores`."""
    weights = np.ones(len(scores)) if weights is None else np.asarray(weights, dtype=np.float64)
    order = np.argsort(scores)
    cumulative = np.cumsum(weights[order]) / weights.sum()
    at = np.searchsorted(cumulative, np.linspace(0, 1, quantiles + 1)[1:-1])
    candidates = np.concatenate([np.asarray(scores)[order][at], DECADE_EDGES])
    edges = np.unique(candidates[candidates > 0])  # nothing scores below 0: no empty first bin
    bins = np.searchsorted(edges, scores, side="right")
    shares = np.bincount(bins, weights=weights, minlength=len(edges) + 1) / weights.sum()
    return edges.tolist(), shares.tolist()


def bin_counts(edges: list[float], scores: np.ndarray) -> np.ndarray:
    """How many of `scores` fall in each bin (len(edges) + 1 bins)."""
    return np.bincount(
        np.searchsorted(np.asarray(edges), scores, side="right"), minlength=len(edges) + 1
    )


def population_stability_index(
    reference_shares: list[float] | np.ndarray,
    live_counts: np.ndarray,
    epsilon: float = PSI_EPSILON,
) -> float:
    expected = np.clip(np.asarray(reference_shares, dtype=np.float64), epsilon, None)
    total = live_counts.sum()
    if total == 0:
        return 0.0
    actual = np.clip(live_counts / total, epsilon, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))
