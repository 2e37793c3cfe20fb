"""The FraudModel replica's metrics: bucket counts per batch, added up before they are sent
(no Ray needed: the ray.serve.metrics classes are replaced by recorders)."""

from serve_app.metrics import SCORE_BUCKETS, ModelMetrics, cumulative_bucket_counts
from tests.unit.recorded_metrics import RecordedMetric


def test_buckets_count_the_scores_at_or_below_each_bound_cumulatively() -> None:
    scores = [0.0001, 0.0005, 0.003, 0.003, 0.3, 0.95]
    counts = dict(cumulative_bucket_counts(scores))
    assert counts["0.0005"] == 2  # a score equal to a bound is in its bucket, as in Prometheus
    assert counts["0.001"] == 2
    assert counts["0.005"] == 4
    assert counts["0.2"] == 4
    assert counts["0.5"] == 5
    assert counts["0.8"] == 5
    assert counts["+Inf"] == 6
    assert len(counts) == len(SCORE_BUCKETS) + 1


def test_bounds_below_every_score_are_left_out() -> None:
    assert cumulative_bucket_counts([0.6, 0.7]) == [("0.8", 2), ("+Inf", 2)]
    assert cumulative_bucket_counts([]) == []


def test_counts_are_added_up_and_sent_together(recorded: dict[str, RecordedMetric]) -> None:
    model_metrics = ModelMetrics()
    model_metrics.record_batch("v1", [0.0001, 0.3], threshold=0.01)
    model_metrics.record_batch("v1", [0.0002] * 998, threshold=0.01)
    model_metrics.score_drift("v1", 0.07)
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
    assert recorded["fraud_score_psi"].calls == [("set", 0.07, {"model_version": "v1"})]
    model_metrics.flush()  # nothing new: nothing sent
    assert len(recorded["fraud_predictions"].calls) == 2
