"""Score drift: the population stability index (PSI) of live scores against the training scores.

PSI = sum over bins of (live share - reference share) * ln(live share / reference share).
Rule of thumb: < 0.1 stable, 0.1-0.25 worth a look, > 0.25 the inputs or the fraud pattern have
moved. The bins are fixed at training time and stored in the artifact: deciles of the held-out
scores (weighted to the production fraud rate, so they describe live traffic, not a fraud-rich
test set), plus one edge per decade from 1e-5 to 0.1 so the rare high scores, where decisions
are made, get bins of their own. Tied scores cannot be split: when most live scores are exactly
0 (common with a class-balanced forest), those deciles merge into one bin and the artifact has
fewer edges. Bin i holds edges[i-1] <= score < edges[i]; the first and last bins are open.

Only numpy: the serving side imports this next to onnxruntime, without sklearn.
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


def bin_counts(
    edges: list[float], scores: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """How many of `scores` fall in each bin (len(edges) + 1 bins), each counted as its weight
    where `weights` are given."""
    return np.bincount(
        np.searchsorted(np.asarray(edges), scores, side="right"),
        weights=weights,
        minlength=len(edges) + 1,
    )


def population_stability_index(
    reference_shares: list[float] | np.ndarray,
    live_counts: list[int] | np.ndarray,
    epsilon: float = PSI_EPSILON,
) -> float:
    """PSI of live scores (counts per bin) against the reference (share per bin, same bins).

    A share of 0 on either side counts as `epsilon`, so an empty bin adds a large but finite
    term. No live scores at all gives 0: there is nothing to compare yet.
    """
    expected = np.clip(np.asarray(reference_shares, dtype=np.float64), epsilon, None)
    counts = np.asarray(live_counts, dtype=np.float64)
    if counts.shape != expected.shape:
        raise ValueError(f"{counts.shape[0]} live bins against {expected.shape[0]} reference bins")
    total = counts.sum()
    if total == 0:
        return 0.0
    actual = np.clip(counts / total, epsilon, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))
