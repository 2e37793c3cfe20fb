"""Before a peer is measured: it must answer 200 with this artifact's probabilities.

A peer that answers fast but wrongly (another model, unscaled features, columns out of order)
would make its figures meaningless, so the run stops instead.
"""

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np

from benchmarks.peers.bodies import Reading, Row
from benchmarks.peers.catalog import Peer
from benchmarks.servers import Server
from fraud_model.artifact import LoadedArtifact
from fraud_model.features import FEATURE_DTYPE, FEATURE_NAMES

# The sklearn forest and its ONNX export agree within the artifact's parity tolerance
# (fraud_model.engines.PARITY_TOLERANCE).
TOLERANCE = 1e-4


class PeerAnswerError(RuntimeError):
    pass


def expected_probabilities(peer: Peer, artifact: LoadedArtifact, rows: list[Row]) -> np.ndarray:
    matrix = np.array([[row[name] for name in FEATURE_NAMES] for row in rows], FEATURE_DTYPE)
    if peer.calibrated:
        return artifact.fraud_probability(matrix)
    return artifact.engine.raw_fraud_scores(matrix)


def check_peer(
    peer: Peer, server: Server, artifact: LoadedArtifact, fraud: Row, batch: list[Row]
) -> None:
    """`fraud` is a real fraud row the artifact flags; `batch` the rows of the batch body."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        single = _post(client, peer, peer.single_path, peer.single_body(fraud), peer.read_single)
        many = _post(client, peer, peer.batch_path, peer.batch_body(batch), peer.read_batch)
    (expected,) = expected_probabilities(peer, artifact, [fraud])
    _compare(peer, "a fraud row", single, np.array([expected]))
    threshold = artifact.metadata.threshold
    if peer.calibrated and expected < threshold:
        raise PeerAnswerError(f"the check's fraud row scores {expected} < threshold {threshold}")
    if not peer.calibrated and expected < 0.5:  # predict()'s decision on the raw score
        raise PeerAnswerError(f"the check's fraud row has a raw score {expected} < 0.5")
    if single[0][1] is False:
        raise PeerAnswerError(f"{peer.name} does not flag a fraud row it scores {single[0][0]}")
    _compare(
        peer, f"the {len(batch)}-row batch", many, expected_probabilities(peer, artifact, batch)
    )


def _post(
    client: httpx.Client,
    peer: Peer,
    path: str,
    body: dict[str, Any],
    read: Callable[[Any], list[Reading]],
) -> list[Reading]:
    response = client.post(path, json=body)
    if response.status_code != 200:
        raise PeerAnswerError(
            f"{peer.name} answered {response.status_code} on {path}: {response.text[:500]}"
        )
    return read(response.json())


def _compare(peer: Peer, what: str, readings: list[Reading], expected: np.ndarray) -> None:
    got = np.array([probability for probability, _ in readings])
    if got.shape != expected.shape:
        raise PeerAnswerError(
            f"{peer.name} gave {len(got)} answers for {what}, not {len(expected)}"
        )
    worst = float(np.max(np.abs(got - expected)))
    if worst > TOLERANCE:
        kind = "calibrated" if peer.calibrated else "raw"
        raise PeerAnswerError(
            f"{peer.name}'s answers for {what} are up to {worst:.2e} away from the artifact's "
            f"{kind} probabilities"
        )
