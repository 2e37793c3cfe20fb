"""The FraudModel replica's metrics: bucket counts per batch, added up before they are sent
(no Ray needed: the ray.serve.metrics classes are replaced by recorders)."""

from collections.abc import Callable

import numpy as np

from serve_app.metrics import (
    BUCKET_LABELS,
    SCORE_BUCKETS,
    ModelMetrics,
    cumulative_bucket_counts,
)
from tests.unit.recorded_metrics import RecordedMetric


def test_buckets_count_the_scores_at_or_below_each_bound_cumulatively() -> None:
    scores = np.array([0.0001, 0.0005, 0.003, 0.003, 0.3, 0.95])
    counts = dict(zip(BUCKET_LABELS, cumulative_bucket_counts(scores).tolist(), strict=True))
    assert counts["0.0005"] == 2  # a score equal to a bound is in its bucket, as in Prometheus
    assert counts["0.001"] == 2
    assert counts["0.005"] == 4
    assert counts["0.2"] == 4
    assert counts["0.5"] == 5
    assert counts["0.8"] == 5
    assert counts["+Inf"] == 6
    assert len(counts) == len(SCORE_BUCKETS) + 1


def test_bounds_below_every_score_are_left_out(recorded: dict[str, RecordedMetric]) -> None:
    model_metrics = ModelMetrics()
    model_metrics.record_batch("v1", np.array([0.6, 0.7]), threshold=0.01)
    model_metrics.record_batch("v2", np.array([]), threshold=0.01)
    model_metrics.flush()
    buckets = [(tags["le"], value) for _, value, tags in recorded["fraud_score_bucket"].calls]
    assert buckets == [("0.8", 2), ("+Inf", 2)]  # Counter.inc refuses 0


def test_counts_are_added_up_and_sent_together(recorded: dict[str, RecordedMetric]) -> None:
    model_metrics = ModelMetrics()
    model_metrics.record_batch("v1", np.array([0.0001, 0.3]), 0.01, np.array([1, 1, 0]))
    model_metrics.record_batch("v1", np.full(998, 0.0002), 0.01, np.array([998, 0, 0]))
    reads: list[str] = []

    def psi_of(version: str, value: float | None) -> Callable[[], float | None]:
        def read() -> float | None:
            reads.append(version)
            return value

        return read

    model_metrics.score_drift("v1", psi_of("v1", 0.07))
    model_metrics.score_drift("v2", psi_of("v2", None))  # too few scores yet: nothing sent
    # Within the flush interval nothing but the batch sizes went out...
    assert recorded["fraud_predictions"].calls == []
    assert recorded["fraud_score_bucket"].calls == []
    assert [value for _, value, _ in recorded["fraud_model_batch_size"].calls] == [2, 998]
    model_metrics.flush()
    # ...then one record per label, whatever the number of rows.
    predictions = {call[2]["decision"]: call[1] for call in recorded["fraud_predictions"].calls}
    assert predictions == {"fraud": 1, "legit": 999}
    buckets = {call[2]["le"]: call[1] for call in recorded["fraud_score_bucket"].calls}
    assert buckets["0.0005"] == 999 and buckets["0.2"] == 999 and buckets["+Inf"] == 1000
    bins = {call[2]["bin"]: call[1] for call in recorded["fraud_score_drift_bin"].calls}
    assert bins == {"0": 999, "1": 1}  # a bin that counted nothing is left out
    assert recorded["fraud_score_psi"].calls == [("set", 0.07, {"model_version": "v1"})]
    assert reads == ["v1", "v2"]  # each PSI computed once, at the flush
    model_metrics.flush()  # nothing new: nothing sent
    assert len(recorded["fraud_predictions"].calls) == 2
