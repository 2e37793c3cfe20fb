"""The FraudModel deployment: one loaded artifact per replica, scoring requests in batches.

The artifact, the threshold and the batching all live in `user_config`, so changing any of them
retunes running replicas in place (`reconfigure`). A new artifact is loaded and verified beside
the serving one and swapped in with one assignment: every request sees one whole model. If it
cannot be loaded, the old one keeps serving and the failure shows in the logs, the
`fraud_model_reload_failures` metric and the model endpoint.
"""

import asyncio
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import numpy as np
import ray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from ray import serve

from fraud_model.artifact import SERVING_ENGINE, ArtifactError, LoadedArtifact
from fraud_model.decision import DecisionRule, RuleName, decide, serving_rule
from fraud_model.drift import bin_counts, population_stability_index
from fraud_model.explain import DEFAULT_TOP_K, ForestExplainer, top_reasons
from fraud_model.features import FEATURE_DTYPE
from fraud_model.metadata import ScoreBins
from fraud_model.store import S3_SCHEME
from serve_app.config import STOP_CHECK_INTERVAL_S, ModelAutoscaling, ModelRole
from serve_app.loading import open_artifact
from serve_app.metrics import ModelMetrics
from serve_app.schemas import Answer, ColumnarAnswer, FeatureRows
from serve_app.settings import ServiceSettings

# Serve writes the "ray.serve" logger tree to the replica logs (with request ids): log under it.
logger = logging.getLogger(f"ray.serve.{__name__}")


DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_BATCH_WAIT_TIMEOUT_S = 0.0
# Requests a replica holds at once, per request of a full batch (serve_app.serve_config checks
# configs for it).
MAX_ONGOING_PER_BATCH = 2
# Up to this many rows are scored on the event loop: onnxruntime takes a fraction of a
# millisecond for them, less than the hop to a worker thread and back.
INLINE_MAX_ROWS = 64
NO_CHALLENGER_MODEL = (
    "the Challenger's user_config names no artifact_uri: give the config's `deployments:` an "
    "entry `name: Challenger` with user_config.artifact_uri and metadata_sha256"
)


class ModelConfig(BaseModel):
    """FraudModel's `user_config`: applied by reconfigure(), so changing it restarts nothing."""

    model_config = ConfigDict(extra="forbid")

    artifact_uri: str = Field(
        "artifacts/default",
        min_length=1,
        description="The model artifact: a directory (relative paths are taken from the project "
        "root; the default is the bundled model) or a published version, "
        "s3://bucket/prefix/<model_version>. Changing it hot-loads the new model.",
    )
    metadata_sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="The pin: sha256 of the artifact's metadata.json (which holds every other "
        "file's sha256), as `python -m training.publish` prints it. A replica refuses any other "
        "artifact before reading the rest. Required for an s3:// artifact_uri.",
    )
    threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        description="A fixed decision threshold on fraud_probability (decision_rule "
        "fixed_threshold); null = the artifact's own rule.",
    )
    decision_rule: RuleName | None = Field(
        None,
        description="fixed_threshold, alert_budget or expected_cost (fraud_model.decision); "
        "null = the artifact's own rule (or fixed_threshold when threshold is set). Named "
        "without its numbers, a rule takes the artifact's where the artifact ships it.",
    )
    alerts_per_10k: float | None = Field(
        None, gt=0, le=10_000, description="alert_budget: alerts per 10,000 transactions."
    )
    max_false_positive_rate: float | None = Field(
        None, gt=0, lt=1, description="alert_budget: share of legitimate transactions flagged."
    )
    review_cost: float | None = Field(
        None,
        gt=0,
        description="expected_cost: the cost of reviewing a transaction, in the unit of Amount.",
    )
    max_batch_size: int = Field(
        DEFAULT_MAX_BATCH_SIZE,
        ge=1,
        le=4096,
        description="Requests scored together (each a batch request or the single "
        "transactions one Ingress replica coalesced), all their rows in one call. A request "
        "that finds no batch under way is scored at once (FraudModel.score_many).",
    )
    batch_wait_timeout_s: float = Field(DEFAULT_BATCH_WAIT_TIMEOUT_S, ge=0, le=1)

    @model_validator(mode="after")
    def a_remote_model_is_pinned(self) -> "ModelConfig":
        """Whoever can write the bucket must not choose what is served: an s3:// artifact is
        served only with the pin that names its exact bytes."""
        if self.artifact_uri.startswith(S3_SCHEME) and self.metadata_sha256 is None:
            raise ValueError(
                f"artifact_uri {self.artifact_uri} needs metadata_sha256, the sha256 of its "
                "metadata.json as `python -m training.publish` prints it"
            )
        return self


@dataclass(frozen=True)
class ServingModel:
    """What a request is scored with; replaced as a whole, never changed in place."""

    uri: str
    pin: str | None  # the configured metadata_sha256, if any
    artifact: LoadedArtifact
    threshold: float  # the rule's cut, answered as `threshold`
    explainer: ForestExplainer | None = None  # loaded with the artifact; reason codes only
    rule: DecisionRule | None = None  # None: fixed_threshold at `threshold`

    @property
    def decision(self) -> DecisionRule:
        if self.rule is not None:
            return self.rule
        return DecisionRule(rule="fixed_threshold", threshold=self.threshold)


# The recording rule of k8s/monitoring.yaml with the PSI of every replica's scores of the last hour.
FLEET_PSI_RULE = "fraud:score_psi:1h"


class TunableBatch(Protocol):
    """What @serve.batch adds to the method it wraps (its annotations leave it out)."""

    def set_max_batch_size(self, new_max_batch_size: int) -> None: ...

    def set_batch_wait_timeout_s(self, new_batch_wait_timeout_s: float) -> None: ...


class ScoreDrift:
    """Live served scores in the artifact's reference bins, and their PSI against it."""

    MIN_SCORES = 200  # below this, PSI measures the sample's noise, not drift

    def __init__(self, bins: ScoreBins) -> None:
        self.bins = bins
        self.counts = np.zeros(len(bins.shares), dtype=np.int64)

    def add(self, scores: np.ndarray) -> np.ndarray:
        """Count `scores` in; returns their counts per bin."""
        counts = bin_counts(self.bins.edges, scores)
        self.counts += counts
        return counts

    def psi(self) -> float | None:
        if self.counts.sum() < self.MIN_SCORES:
            return None
        return population_stability_index(self.bins.shares, self.counts)


@serve.deployment(
    ray_actor_options={"num_cpus": 1},
    # A batch never exceeds the requests a replica holds at once: room for two full batches of
    # the default size lets one fill while the other is scored. A config that raises
    # user_config.max_batch_size must raise this with it (serve_app.serve_config).
    max_ongoing_requests=MAX_ONGOING_PER_BATCH * DEFAULT_MAX_BATCH_SIZE,
    # Beyond this, callers get 503 and Retry-After instead of waiting in a growing queue.
    max_queued_requests=128,
    graceful_shutdown_wait_loop_s=STOP_CHECK_INTERVAL_S,
    autoscaling_config=ModelAutoscaling().model_dump(),
)
class FraudModel:
    def __init__(self, role: ModelRole) -> None:
        # Told, never guessed from the deployment's name: the Challenger (serve_app.app) starts
        # without a model of its own rather than the bundled default.
        self._challenger = role == "challenger"
        # The model is loaded by reconfigure(), which Serve calls right after this with the
        # user_config (ModelConfig's defaults when the config gives none).
        self._serving: ServingModel | None = None
        self._drift: ScoreDrift | None = None
        self._last_reload_error: dict[str, str] | None = None
        self._metrics = ModelMetrics()
        # Requests in Serve's batch queue or in the batch being scored (see score_many).
        self._batches_open = 0
        self._batch_wait_timeout_s = DEFAULT_BATCH_WAIT_TIMEOUT_S
        # Read once: the environment a replica starts with does not change.
        settings = ServiceSettings()
        self._artifact_cache = settings.artifact_cache.expanduser()
        self._artifact_max_bytes = settings.artifact_max_bytes
        # Named in messages as the config names the deployment.
        self._name = serve.get_replica_context().deployment

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        if self._challenger and "artifact_uri" not in user_config:
            # No challenger model in the config. ModelConfig's default, the bundled model, is
            # never what a challenger meant, so none is loaded: a new replica starts idle and
            # answers every call with why (the Ingress counts and logs it); a running one keeps
            # its model until the autoscaler removes it (after a promotion, nothing calls it).
            # Refusing to start instead would fail the rollout of a config that dropped the
            # challenger, although nothing would use it.
            if self._serving is None:
                logger.warning("Challenger idle: %s", NO_CHALLENGER_MODEL)
            return
        try:
            tuning = ModelConfig.model_validate(user_config)
        except ValidationError as error:
            self._refuse(f"invalid user_config: {error}", str(user_config.get("artifact_uri")))
            return
        uri, pin = tuning.artifact_uri, tuning.metadata_sha256
        current = self._serving
        # The URI and the pin name the model; an unchanged pair is the model already loaded.
        same = current is not None and (current.uri, current.pin) == (uri, pin)
        if current is not None and same:
            artifact, explainer = current.artifact, current.explainer
        else:
            try:
                artifact, explainer = await asyncio.to_thread(self._open, uri, pin)
            except Exception as error:  # whatever failed, a reload never drops the old model
                reason = str(error) if isinstance(error, ArtifactError) else repr(error)
                self._refuse(reason, uri)
                return
        try:
            rule = rule_of(tuning, artifact)
        except ValueError as error:
            self._refuse(f"decision rule: {error}", uri)
            return
        self._serving = ServingModel(
            uri=uri,
            pin=pin,
            artifact=artifact,
            threshold=rule.cut,
            explainer=explainer,
            rule=rule,
        )
        if not same:
            self._drift = ScoreDrift(artifact.metadata.score_bins)
            self._metrics.drift_reference(
                artifact.metadata.model_version, artifact.metadata.score_bins.shares
            )
        self._last_reload_error = None
        batching = cast(TunableBatch, self._score_batched)
        batching.set_max_batch_size(tuning.max_batch_size)
        batching.set_batch_wait_timeout_s(tuning.batch_wait_timeout_s)
        self._batch_wait_timeout_s = tuning.batch_wait_timeout_s
        version = artifact.metadata.model_version
        self._metrics.model_switched(
            (current.artifact.metadata.model_version, SERVING_ENGINE) if current else None,
            (version, SERVING_ENGINE),
        )
        logger.info(
            "Serving model %s from %s (metadata sha256 %s, %s), decision rule %s, batches of up "
            "to %d requests waiting up to %.1f ms",
            version,
            uri,
            artifact.metadata_sha256,
            "pinned" if pin else "not pinned",
            rule.describe(),
            tuning.max_batch_size,
            tuning.batch_wait_timeout_s * 1000,
        )

    def _open(self, uri: str, pin: str | None) -> tuple[LoadedArtifact, ForestExplainer]:
        artifact = open_artifact(
            uri, pin, replica_cpus(), self._artifact_cache, self._artifact_max_bytes
        )
        return artifact, artifact.load_explainer()

    def _refuse(self, reason: str, uri: str) -> None:
        if self._serving is None:
            # Nothing to fall back to: fail the replica's start, naming the artifact and reason.
            # A new replica (restart, autoscaling) after a refused reload ends here too, until
            # the operator fixes the config's artifact_uri.
            raise RuntimeError(
                f"{self._name} cannot start: artifact {uri} refused: {reason}. "
                f"Fix {self._name}'s user_config (artifact_uri) or the artifact, then redeploy."
            )
        self._last_reload_error = {
            "artifact_uri": uri,
            "error": reason,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._metrics.reload_failed()
        logger.error(
            "Model reload of %s refused, still serving %s: %s. New replicas will fail to start "
            "until the config names a good artifact.",
            uri,
            self._serving.artifact.metadata.model_version,
            reason,
        )

    async def score_many(self, rows: FeatureRows) -> list[Answer]:
        """Score feature rows (contract order), in one vectorised call with the rows of the
        other requests of their batch.

        A request of up to INLINE_MAX_ROWS rows that finds no batch under way, and no wait for
        company configured, is scored at once on the event loop: Serve's batch queue costs a
        lone request more CPU than scoring it (docs/BENCHMARKS.md), and the batch it would form
        holds that request alone. Scoring it never yields, so nothing can join a batch
        meanwhile; requests that arrive while a batch is scored in a thread join the next one.
        """
        if (
            len(rows) <= INLINE_MAX_ROWS
            and self._batches_open == 0
            and self._batch_wait_timeout_s == 0
        ):
            serving = self._require_model()
            answers = predictions(serving, rows)
            self._record_answers(serving, answers)
            return answers
        self._batches_open += 1
        try:
            return await self._score_batched(rows)
        finally:
            self._batches_open -= 1

    @serve.batch(
        max_batch_size=DEFAULT_MAX_BATCH_SIZE, batch_wait_timeout_s=DEFAULT_BATCH_WAIT_TIMEOUT_S
    )
    async def _score_batched(self, requests: list[FeatureRows]) -> list[list[Answer]]:
        """The rows of every request in a batch through the model in one vectorised call."""
        serving = self._require_model()
        features = np.concatenate([np.asarray(rows, dtype=FEATURE_DTYPE) for rows in requests])
        if len(features) <= INLINE_MAX_ROWS:
            answers = predictions(serving, features)
        else:
            # Tree traversal is CPU-bound: run it off the event loop so the replica keeps
            # accepting requests (and filling the next batch) meanwhile.
            answers = await asyncio.to_thread(predictions, serving, features)
        self._record_answers(serving, answers)
        return split_by_request(answers, [len(request) for request in requests])

    async def score_columns(self, rows: np.ndarray) -> ColumnarAnswer:
        """The rows of a columnar batch request, answered as columns: no answer per row to
        build, send back and serialise."""
        serving = self._require_model()
        probabilities, flags = await asyncio.to_thread(column_scores, serving, rows)
        self._record(serving, probabilities, flags)
        return columnar_answer(serving, probabilities, flags)

    async def explain_many(self, rows: FeatureRows, top_k: int = DEFAULT_TOP_K) -> list[Answer]:
        """Scores with the top_k features' contributions and the rest's sum (reason codes).
        Several times the cost of plain scoring (benchmarks/explain_cost.py), so only on
        request."""
        serving = self._require_model()
        answers = await asyncio.to_thread(explained_predictions, serving, rows, top_k)
        self._record_answers(serving, answers)
        return answers

    def _record_answers(self, serving: ServingModel, answers: list[Answer]) -> None:
        record_answers(self._metrics, self._drift, serving, answers)

    def _record(self, serving: ServingModel, scores: np.ndarray, flags: np.ndarray) -> None:
        record_scores(self._metrics, self._drift, serving, scores, flags)

    def in_service(self) -> dict[str, Any] | None:
        """What this replica scores with, as the Ingress's copy of it follows it
        (serve_app.champion_copy): the artifact, the sha256 of the metadata.json it verified and
        the decision rule. None while it has no model."""
        if self._serving is None:
            return None
        return {
            "artifact_uri": self._serving.uri,
            "metadata_sha256": self._serving.artifact.metadata_sha256,
            "decision_rule": self._serving.decision.model_dump(),
        }

    def describe(self) -> dict[str, Any]:
        """The serving model's metadata, for the model endpoint (and the Challenger's, for the
        challenger endpoint)."""
        if self._serving is None and self._challenger:
            return {"model_version": None, "idle": NO_CHALLENGER_MODEL}
        serving = self._require_model()
        metadata = serving.artifact.metadata
        return {
            "model_version": metadata.model_version,
            "model_family": metadata.model_family,
            "created_at": metadata.created_at.isoformat(),
            "artifact_uri": serving.uri,
            "metadata_sha256": serving.artifact.metadata_sha256,
            "pinned": serving.pin is not None,
            "engine": SERVING_ENGINE,
            "threshold": serving.threshold,
            "decision_rule": serving.decision.model_dump(exclude_none=True)
            | {"describe": serving.decision.describe()},
            "artifact_decision_rule": metadata.decision_rule.model_dump(exclude_none=True),
            "artifact_threshold": metadata.threshold,
            "threshold_strategy": metadata.threshold_strategy,
            "features": metadata.features,
            "data": metadata.data.model_dump(),
            "metrics": metadata.metrics,
            "calibration": metadata.calibration.model_dump(),
            "last_reload_error": self._last_reload_error,
            "score_drift": self._drift_summary(),
        }

    def _drift_summary(self) -> dict[str, Any] | None:
        if self._drift is None:
            return None
        return {
            # One replica's view, since it loaded the model: it moves less every day and differs
            # between replicas. The fleet's, over the last hour, is a Prometheus recording rule.
            "scope": "this replica, since it loaded the model",
            # Single transactions are scored by the Ingress replicas' copies of the model
            # (serve_app.champion_copy), which count their own: see `single_transactions`.
            "scores_seen": int(self._drift.counts.sum()),
            "psi": self._drift.psi(),  # null until MIN_SCORES scores were seen
            "min_scores": ScoreDrift.MIN_SCORES,
            "fleet_psi": f"{FLEET_PSI_RULE} (Prometheus recording rule, k8s/monitoring.yaml)",
        }

    def check_health(self) -> None:
        if self._serving is None and self._challenger:
            return  # idle, healthy: see reconfigure
        serving = self._require_model()
        # Serve calls this every few seconds: re-assert the model-info gauge, which a single
        # set() at load time did not always get exported (seen on a fraud-serve scrape).
        metadata = serving.artifact.metadata
        self._metrics.serving(metadata.model_version, SERVING_ENGINE)
        self._metrics.drift_reference(metadata.model_version, metadata.score_bins.shares)
        self._metrics.flush()  # counts from the last second of traffic, if it has stopped

    def _require_model(self) -> ServingModel:
        if self._serving is None and self._challenger:
            raise RuntimeError(NO_CHALLENGER_MODEL)
        if self._serving is None:
            raise RuntimeError("FraudModel replica has no model loaded")
        return self._serving


def record_answers(
    metrics: ModelMetrics, drift: ScoreDrift | None, serving: ServingModel, answers: list[Answer]
) -> None:
    """Count `answers` in the model metrics and `drift` (record_scores)."""
    record_scores(
        metrics,
        drift,
        serving,
        np.fromiter((answer["fraud_probability"] for answer in answers), float, len(answers)),
        np.fromiter((answer["is_fraud"] for answer in answers), bool, len(answers)),
    )


def record_scores(
    metrics: ModelMetrics,
    drift: ScoreDrift | None,
    serving: ServingModel,
    scores: np.ndarray,
    flags: np.ndarray,
) -> None:
    """Count scored rows and their decisions under `serving`'s model version, in the model
    metrics and in `drift` (None: no drift reference)."""
    version = serving.artifact.metadata.model_version
    for part, threshold in decision_parts(serving.decision, scores, flags):
        drift_counts = drift.add(part) if drift is not None else ()
        metrics.record_batch(version, part, threshold, drift_counts)
    if drift is not None:
        metrics.score_drift(version, drift.psi)


def fraud_probabilities(serving: ServingModel, rows: FeatureRows) -> np.ndarray:
    """One vectorised model call for all `rows`."""
    probabilities = serving.artifact.fraud_probability(np.asarray(rows, dtype=FEATURE_DTYPE))
    if not np.isfinite(probabilities).all():  # never answer a score that is not a number
        raise ValueError("the model produced a non-finite fraud probability")
    return probabilities


def rule_of(tuning: ModelConfig, artifact: LoadedArtifact) -> DecisionRule:
    """The decision rule a replica serves: the artifact's, or the one its user_config names
    (fraud_model.decision.serving_rule). Raises ValueError when they cannot make a rule."""
    return serving_rule(
        artifact.metadata.decision_rule,
        artifact.alert_curve,
        artifact.metadata.threshold,
        rule=tuning.decision_rule,
        threshold=tuning.threshold,
        alerts_per_10k=tuning.alerts_per_10k,
        max_false_positive_rate=tuning.max_false_positive_rate,
        review_cost=tuning.review_cost,
    )


def decision_parts(
    rule: DecisionRule, scores: np.ndarray, flags: np.ndarray
) -> list[tuple[np.ndarray, float]]:
    """The scores with a threshold that gives back their decisions as `score >= threshold`,
    which is how ModelMetrics.record_batch counts them. Under a threshold rule, one part; under
    expected_cost, whose decisions also depend on the Amount, the flagged scores (threshold 0)
    and the others (threshold inf), so that the decision counts are exact (the batch-size
    histogram then sees the flagged rows as a batch of their own)."""
    if rule.rule != "expected_cost":
        return [(scores, rule.cut)]
    parts = ((scores[flags], 0.0), (scores[~flags], math.inf))
    return [(part, threshold) for part, threshold in parts if len(part)]


def predictions(serving: ServingModel, rows: FeatureRows) -> list[Answer]:
    """The API's answer for each feature row, from one vectorised model call."""
    features = np.asarray(rows, dtype=FEATURE_DTYPE)
    probabilities = fraud_probabilities(serving, features)
    rule = serving.decision
    flags = decide(probabilities, features, rule)
    version = serving.artifact.metadata.model_version
    cut = rule.cut
    return [
        {
            "fraud_probability": float(p),
            "is_fraud": bool(flag),
            "threshold": cut,
            "model_version": version,
            "decision_rule": rule.rule,
        }
        for p, flag in zip(probabilities, flags, strict=True)
    ]


def column_scores(serving: ServingModel, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fraud probabilities and decisions of `rows`, as arrays."""
    features = np.asarray(rows, dtype=FEATURE_DTYPE)
    probabilities = fraud_probabilities(serving, features)
    return probabilities, decide(probabilities, features, serving.decision)


def columnar_answer(
    serving: ServingModel, probabilities: np.ndarray, flags: np.ndarray
) -> ColumnarAnswer:
    rule = serving.decision
    return {
        "fraud_probability": probabilities.tolist(),
        "is_fraud": flags.tolist(),
        "threshold": rule.cut,
        "model_version": serving.artifact.metadata.model_version,
        "decision_rule": rule.rule,
    }


def split_by_request(answers: list[Any], sizes: list[int]) -> list[list[Any]]:
    """`answers` cut back into one list per request, of the given sizes, in order."""
    ends = np.cumsum(sizes).tolist()
    return [answers[end - size : end] for size, end in zip(sizes, ends, strict=True)]


def explained_predictions(
    serving: ServingModel, rows: FeatureRows, top_k: int = DEFAULT_TOP_K
) -> list[Answer]:
    """predictions() plus, per row, the top_k features' contributions, largest first, and
    `other`, the summed contribution of the rest.

    `base + sum(contributions) + other` is the forest's probability (the ONNX engine's
    fraud_probability agrees within the artifact's parity tolerance).
    """
    if serving.explainer is None:
        raise RuntimeError("this model was loaded without its trees file")
    features = np.asarray(rows, dtype=FEATURE_DTYPE)
    explanation, _ = serving.explainer.served(features, serving.artifact.metadata.calibration)
    reasons = top_reasons(explanation, features, k=top_k)
    return [
        answer | {"explanation": {"base": explanation.base, **row_reasons}}
        for answer, row_reasons in zip(predictions(serving, rows), reasons, strict=True)
    ]


def replica_cpus() -> int:
    """CPUs Ray reserved for this replica: the engine's thread budget."""
    return max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
