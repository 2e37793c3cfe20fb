"""Prometheus metrics through `ray.serve.metrics`, exported beside Ray's own `ray_serve_*`.

Ray prefixes every name with `ray_` on its metrics endpoint (and counters get `_total`), e.g.
`ray_fraud_predictions_total`. The objects are created inside a replica, never at import time.
"""

from collections.abc import Sequence

# fraud_probability is skewed towards 0 (0.17 % fraud): fine buckets near zero.
SCORE_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 0.8]
BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]


class ModelMetrics:
    """What the FraudModel replica reports about its predictions and its model."""

    def __init__(self) -> None:
        from ray.serve import metrics

        self._predictions = metrics.Counter(
            "fraud_predictions",
            description="Transactions scored, by decision and model version.",
            tag_keys=("decision", "model_version"),
        )
        self._scores = metrics.Histogram(
            "fraud_score",
            description="Served fraud_probability.",
            boundaries=SCORE_BUCKETS,
            tag_keys=("model_version",),
        )
        self._batch_sizes = metrics.Histogram(
            "fraud_model_batch_size",
            description="Rows per vectorised model call.",
            boundaries=BATCH_SIZE_BUCKETS,
        )
        self._model_info = metrics.Gauge(
            "fraud_model_info",
            description="1 for the model version and engine this replica serves.",
            tag_keys=("model_version", "engine"),
        )
        self._reload_failures = metrics.Counter(
            "fraud_model_reload_failures",
            description="Hot model reloads refused (the previous model kept serving).",
        )
        self._score_psi = metrics.Gauge(
            "fraud_score_psi",
            description="Population stability index of live scores against the training scores.",
            tag_keys=("model_version",),
        )

    def record_batch(self, model_version: str, scores: Sequence[float], threshold: float) -> None:
        tags = {"model_version": model_version}
        flagged = sum(1 for score in scores if score >= threshold)
        if flagged:
            self._predictions.inc(flagged, tags={"decision": "fraud", **tags})
        if len(scores) - flagged:
            self._predictions.inc(len(scores) - flagged, tags={"decision": "legit", **tags})
        for score in scores:
            self._scores.observe(score, tags=tags)
        self._batch_sizes.observe(len(scores))

    def model_switched(self, old: tuple[str, str] | None, new: tuple[str, str]) -> None:
        if old is not None and old != new:
            self._model_info.set(0, tags={"model_version": old[0], "engine": old[1]})
        self.serving(*new)

    def serving(self, model_version: str, engine: str) -> None:
        self._model_info.set(1, tags={"model_version": model_version, "engine": engine})

    def reload_failed(self) -> None:
        self._reload_failures.inc()

    def score_drift(self, model_version: str, psi: float) -> None:
        self._score_psi.set(psi, tags={"model_version": model_version})


class RequestMetrics:
    """What the Ingress replica reports: requests refused, by reason."""

    def __init__(self) -> None:
        from ray.serve import metrics

        self._rejected = metrics.Counter(
            "fraud_rejected_requests",
            description="Requests answered with an error, by reason.",
            tag_keys=("reason",),
        )

    def rejected(self, reason: str) -> None:
        self._rejected.inc(tags={"reason": reason})
