"""The champion's model, copied into an Ingress replica to score single transactions there.

A single transaction sent to the FraudModel deployment crosses a second process: the handle
call, Serve's request path in the model replica and the way back cost several times the CPU
of scoring the row, and most of the service's latency at light load (docs/BENCHMARKS.md). So
each Ingress replica keeps a copy of what the FraudModel deployment serves and scores single
transactions itself; batches, columns and explanations still go to the deployment.

The deployment stays the one source of truth: the copy never reads a config of its own. Every
FOLLOW_EVERY_S the Ingress asks the deployment what it serves (`FraudModel.in_service`): the
artifact's URI, the sha256 of the metadata.json it loaded, and its decision rule. The copy loads
that artifact pinned to that sha256, so it scores with exactly the bytes the deployment
verified, or not at all; a changed rule alone is taken over without a reload. Until the copy
holds what the deployment last said it serves (at a replica's start, during a reload, after a
failed load, or when the deployment has not answered for STALE_AFTER_S), single transactions go
to the deployment as before. A model switch therefore reaches single transactions up to
FOLLOW_EVERY_S (plus the load) after the deployment made it; every answer and ledger record
names the model_version that made it.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from fraud_model.artifact import ArtifactError, LoadedArtifact
from fraud_model.decision import DecisionRule
from serve_app.loading import open_artifact
from serve_app.metrics import ModelMetrics
from serve_app.model import ScoreDrift, ServingModel, predictions, record_answers
from serve_app.schemas import Answer
from serve_app.settings import ServiceSettings

logger = logging.getLogger(f"ray.serve.{__name__}")

# How often an Ingress replica asks the FraudModel deployment what it serves: the longest a
# model switch takes to reach single transactions, beyond the copy's load.
FOLLOW_EVERY_S = 1.0
# How long the copy keeps scoring while the deployment does not say what it serves (its
# replicas restarting, say). After that, single transactions go to the deployment, and fail
# there as every other request does, rather than be scored by a model nobody confirms.
STALE_AFTER_S = 10.0
# A load that failed is tried again after this long while the deployment still serves that
# model (the store may have been down for a moment), not every second.
RETRY_REFUSED_S = 60.0
# The copy scores one row at a time on the Ingress's event loop: one engine thread.
COPY_THREADS = 1


@dataclass(frozen=True)
class InService:
    """What the FraudModel deployment says it serves (`FraudModel.in_service`)."""

    artifact_uri: str
    metadata_sha256: str
    rule: DecisionRule

    @classmethod
    def from_reply(cls, reply: dict[str, Any]) -> "InService":
        return cls(
            artifact_uri=reply["artifact_uri"],
            metadata_sha256=reply["metadata_sha256"],
            rule=DecisionRule.model_validate(reply["decision_rule"]),
        )


class ChampionCopy:
    """The copy of one Ingress replica. Its predictions are counted in the model metrics
    (decisions, scores, drift bins) as the deployment counts its own."""

    def __init__(self, settings: ServiceSettings, metrics: ModelMetrics | None = None) -> None:
        self._cache = settings.artifact_cache.expanduser()
        self._max_bytes = settings.artifact_max_bytes
        self._metrics = metrics
        self._followed: InService | None = None  # what the deployment last said it serves
        self._serving: ServingModel | None = None  # set only while it matches _followed
        self._drift: ScoreDrift | None = None
        self._confirmed_at = -STALE_AFTER_S
        # The last load refused: what, why and when.
        self._failed: tuple[InService, str, float] | None = None

    @property
    def model_version(self) -> str | None:
        """The version scoring single transactions here; None: they go to the deployment."""
        serving = self._current()
        return None if serving is None else serving.artifact.metadata.model_version

    def score(self, row: list[float]) -> Answer | None:
        """The answer for one feature row, or None when the copy does not hold what the
        deployment serves (the row goes to the deployment)."""
        serving = self._current()
        if serving is None:
            return None
        answers = predictions(serving, [row])
        if self._metrics is not None:
            record_answers(self._metrics, self._drift, serving, answers)
        return answers[0]

    async def follow(self, reply: dict[str, Any] | None) -> None:
        """Take over what the deployment says it serves (`reply`; None: no model loaded).
        Loads the artifact in a thread when it changed; a load that fails leaves the copy out
        of use until the deployment serves something else, or RETRY_REFUSED_S later."""
        self._confirmed_at = time.monotonic()
        if reply is None:
            self._followed = self._serving = None
            return
        wanted = InService.from_reply(reply)
        self._followed = wanted
        held = self._serving
        if held is not None and (held.uri, held.artifact.metadata_sha256) == (
            wanted.artifact_uri,
            wanted.metadata_sha256,
        ):
            if held.decision != wanted.rule:
                self._serving = self._serving_of(wanted, held.artifact)
            return
        failed = self._failed
        if (
            failed is not None
            and failed[0] == wanted
            and time.monotonic() - failed[2] < RETRY_REFUSED_S
        ):
            return  # refused a moment ago: not fetched again every second
        self._serving = None  # the old model no longer scores while the new one loads
        try:
            artifact = await asyncio.to_thread(self._open, wanted)
        except Exception as error:
            reason = str(error) if isinstance(error, ArtifactError) else repr(error)
            self._failed = (wanted, reason, time.monotonic())
            logger.error(
                "The Ingress's copy of %s was refused (%s): single transactions go to the "
                "FraudModel deployment",
                wanted.artifact_uri,
                reason,
            )
            return
        if self._followed != wanted:  # the deployment moved on while this one loaded
            return
        self._failed = None
        self._serving = self._serving_of(wanted, artifact)
        self._drift = ScoreDrift(artifact.metadata.score_bins)
        logger.info(
            "Single transactions scored in this Ingress replica with %s (%s)",
            artifact.metadata.model_version,
            wanted.rule.describe(),
        )

    def flush(self) -> None:
        """Send the counts added up since the last flush (Serve's health checks call this)."""
        if self._metrics is not None:
            self._metrics.flush()

    def summary(self) -> dict[str, Any]:
        """For the model endpoint: what scores single transactions in this Ingress replica."""
        drift = self._drift
        return {
            "model_version": self.model_version,
            "refused": None if self._failed is None else self._failed[1],
            "scores_seen": int(drift.counts.sum()) if drift is not None else 0,
            "psi": drift.psi() if drift is not None else None,
        }

    def _current(self) -> ServingModel | None:
        if time.monotonic() - self._confirmed_at > STALE_AFTER_S:
            return None
        return self._serving

    def _open(self, wanted: InService) -> LoadedArtifact:
        return open_artifact(
            wanted.artifact_uri,
            wanted.metadata_sha256,
            COPY_THREADS,
            self._cache,
            self._max_bytes,
        )

    @staticmethod
    def _serving_of(wanted: InService, artifact: LoadedArtifact) -> ServingModel:
        return ServingModel(
            uri=wanted.artifact_uri,
            pin=wanted.metadata_sha256,
            artifact=artifact,
            threshold=wanted.rule.cut,
            rule=wanted.rule,
        )
