"""Prometheus metrics through `ray.serve.metrics`, exported beside Ray's own `ray_serve_*`.

Ray prefixes every name with `ray_` on its metrics endpoint (and counters get `_total`), e.g.
`ray_fraud_predictions_total`. The objects are created inside a replica, never at import time.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

# fraud_probability is skewed towards 0 (0.17 % fraud): fine buckets near zero.
SCORE_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 0.8]
SCORE_LABELS = [f"{bound:g}" for bound in SCORE_BUCKETS]
FLUSH_EVERY_S = 1.0
BATCH_SIZE_BUCKETS = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0]


def tag_keys(*names: str) -> tuple[str]:
    """`names` as ray.serve.metrics takes them: it accepts any number of tag keys, but its
    annotation says a 1-tuple."""
    return names  # type: ignore[return-value]


BUCKET_LABELS = [*SCORE_LABELS, "+Inf"]


def cumulative_bucket_counts(scores: np.ndarray) -> np.ndarray:
    """How many scores are <= each SCORE_BUCKETS bound, and in all ("+Inf"): BUCKET_LABELS'
    counts, as Prometheus histogram buckets count."""
    at_or_below = np.searchsorted(np.sort(scores), SCORE_BUCKETS, side="right")
    return np.append(at_or_below, len(scores))


@dataclass
class PendingCounts:
    """What one model version's batches added up since the last flush."""

    fraud: int = 0
    legit: int = 0
    buckets: np.ndarray = field(default_factory=lambda: np.zeros(len(BUCKET_LABELS), np.int64))
    bins: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # sized by the first


class ModelMetrics:
    """What the FraudModel replica reports about its predictions and its model."""

    def __init__(self) -> None:
        from ray.serve import metrics

        self._predictions = metrics.Counter(
            "fraud_predictions",
            description="Transactions scored, by decision and model version.",
            tag_keys=tag_keys("decision", "model_version"),
        )
        # A Prometheus histogram kept as counters, so that the counts can be added up before
        # they are sent (one observe() per score cost a 1,000-row batch ~1,000 metric records,
        # in this replica and again in Ray's metrics agent: docs/BENCHMARKS.md).
        self._score_buckets = metrics.Counter(
            "fraud_score_bucket",
            description="Served fraud_probability: scores <= le (cumulative, like a histogram's "
            "buckets; le='+Inf' counts every score).",
            tag_keys=tag_keys("model_version", "le"),
        )
        self._batch_sizes = metrics.Histogram(
            "fraud_model_batch_size",
            description="Rows per vectorised model call.",
            boundaries=BATCH_SIZE_BUCKETS,
        )
        self._model_info = metrics.Gauge(
            "fraud_model_info",
            description="1 for the model version and engine this replica serves.",
            tag_keys=tag_keys("model_version", "engine"),
        )
        self._reload_failures = metrics.Counter(
            "fraud_model_reload_failures",
            description="Hot model reloads refused (the previous model kept serving).",
        )
        # The model's own drift bins (the artifact's score_bins), counted per replica and added
        # up across the fleet by Prometheus: k8s/monitoring.yaml's fleet-wide, windowed PSI.
        self._drift_bins = metrics.Counter(
            "fraud_score_drift_bin",
            description="Served fraud_probability per bin of the model's drift reference "
            "(bin i: the artifact's score_bins.edges[i-1] <= score < edges[i]).",
            tag_keys=tag_keys("model_version", "bin"),
        )
        self._reference_shares = metrics.Gauge(
            "fraud_score_reference_share",
            description="Share of each drift bin in the model's held-out scores, weighted to the "
            "production fraud rate (the artifact's score_bins.shares).",
            tag_keys=tag_keys("model_version", "bin"),
        )
        # model version -> counts not yet sent; see record_batch.
        self._pending: dict[str, PendingCounts] = {}
        # model version -> where its latest PSI is read, at the next flush (see score_drift).
        self._pending_psi: dict[str, Callable[[], float | None]] = {}
        self._flushed_at = time.monotonic()
        self._score_psi = metrics.Gauge(
            "fraud_score_psi",
            description="This replica's population stability index of its scores since it loaded "
            "the model, against the training scores. Fleet-wide over the last hour: the "
            "recording rule fraud:score_psi:1h (k8s/monitoring.yaml).",
            tag_keys=tag_keys("model_version"),
        )

    def record_batch(
        self,
        model_version: str,
        scores: np.ndarray,
        threshold: float,
        drift_counts: Sequence[int] | np.ndarray = (),
    ) -> None:
        """Count a batch's predictions (and its scores per drift bin, `drift_counts`). The counts
        are added up here and sent to Ray at most once a second (and on every health check):
        each metric record costs CPU here and in Ray's metrics agent, far more than scoring a
        row."""
        pending = self._pending.get(model_version)
        if pending is None:
            pending = self._pending[model_version] = PendingCounts()
        if len(drift_counts):
            if not pending.bins.size:
                pending.bins = np.zeros(len(drift_counts), np.int64)
            pending.bins += drift_counts
        flagged = int(np.count_nonzero(scores >= threshold))
        pending.fraud += flagged
        pending.legit += len(scores) - flagged
        pending.buckets += cumulative_bucket_counts(scores)
        self._batch_sizes.observe(len(scores))
        if time.monotonic() - self._flushed_at >= FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        """Send the counts added up since the last flush."""
        pending, self._pending = self._pending, {}
        self._flushed_at = time.monotonic()
        for model_version, counts in pending.items():
            # Counter.inc refuses 0: labels that counted nothing are left out.
            for decision, count in (("fraud", counts.fraud), ("legit", counts.legit)):
                if count:
                    self._predictions.inc(
                        count, tags={"decision": decision, "model_version": model_version}
                    )
            for bound, count in zip(BUCKET_LABELS, counts.buckets.tolist(), strict=True):
                if count:
                    self._score_buckets.inc(
                        count, tags={"le": bound, "model_version": model_version}
                    )
            for index, count in enumerate(counts.bins.tolist()):
                if count:
                    self._drift_bins.inc(
                        count, tags={"bin": str(index), "model_version": model_version}
                    )
        psi, self._pending_psi = self._pending_psi, {}
        for model_version, read in psi.items():
            if (value := read()) is not None:
                self._score_psi.set(value, tags={"model_version": model_version})

    def model_switched(self, old: tuple[str, str] | None, new: tuple[str, str]) -> None:
        if old is not None and old != new:
            self._model_info.set(0, tags={"model_version": old[0], "engine": old[1]})
        self.serving(*new)

    def serving(self, model_version: str, engine: str) -> None:
        self._model_info.set(1, tags={"model_version": model_version, "engine": engine})

    def drift_reference(self, model_version: str, shares: Sequence[float]) -> None:
        for index, share in enumerate(shares):
            self._reference_shares.set(
                share, tags={"model_version": model_version, "bin": str(index)}
            )

    def reload_failed(self) -> None:
        self._reload_failures.inc()

    def score_drift(self, model_version: str, psi: Callable[[], float | None]) -> None:
        """`psi` gives the latest PSI (None while too few scores were seen): read once, at the
        next flush, not for every batch."""
        self._pending_psi[model_version] = psi


class RequestMetrics:
    """What the Ingress replica reports: requests refused, by reason."""

    def __init__(self) -> None:
        from ray.serve import metrics

        self._rejected = metrics.Counter(
            "fraud_rejected_requests",
            description="Requests answered with an error, by reason.",
            tag_keys=tag_keys("reason"),
        )

        self._ledger_dropped = metrics.Counter(
            "fraud_ledger_dropped_records",
            description="Decision ledger records dropped: the store could not be written while "
            "the replica's buffer was full (docs/LEDGER.md).",
        )
        self._ledger_write_failures = metrics.Counter(
            "fraud_ledger_write_failures",
            description="Decision ledger files the store refused or did not answer for (each "
            "is tried again at the next flush).",
        )

    def rejected(self, reason: str) -> None:
        self._rejected.inc(tags={"reason": reason})

    # Called from the ledger writer's background thread.

    def ledger_dropped(self, records: int) -> None:
        self._ledger_dropped.inc(records)

    def ledger_write_failed(self, puts: int) -> None:
        self._ledger_write_failures.inc(puts)
