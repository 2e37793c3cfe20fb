"""The peers: what each installs, how it is started, where and in what format it is asked.

Each is configured as its documentation advises for throughput: adaptive batching of up to 32
requests, and one inference worker per core. None writes an access line per request (MLServer's
debug mode and BentoML's access log are off, LitServe logs warnings only), as the seed app.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from benchmarks.peers import bodies, commands
from benchmarks.peers.bodies import Reading, Row
from benchmarks.peers.venvs import pinned

MAX_BATCH_SIZE = 32
# How long a batch waits to fill (MLServer's max_batch_time, LitServe's batch_timeout). Neither
# documentation gives a value, only that it is the model's to find by trying. Each batch waits
# it in full unless 32 requests are already queued, so at one client every request pays it; of
# the windows tried (1 to 20 ms), longer ones gave MLServer a little more at 32 clients and cost
# both every request at one client, and LitServe did best at this one at 32 clients too.
BATCH_WINDOW_S = 0.002


@dataclass(frozen=True)
class Peer:
    name: str
    packages: tuple[str, ...]  # the peer's own pins; the artifact's libraries are pinned too
    artifact_libraries: tuple[str, ...]  # pinned to the project's installed versions
    engine: Literal["sklearn", "onnx"]  # which file of the artifact it loads
    command: Callable[[Path, Path, int, dict[str, Any]], list[str]]
    health_path: str
    single_path: str
    batch_path: str
    single_body: Callable[[Row], dict[str, Any]]
    batch_body: Callable[[list[Row]], dict[str, Any]]
    read_single: Callable[[Any], list[Reading]]
    read_batch: Callable[[Any], list[Reading]]
    calibrated: bool  # answers the served fraud_probability; else the forest's raw P(fraud)
    batching: str  # as configured, for the record

    def requirements(self) -> list[str]:
        return [*self.packages, *pinned(*self.artifact_libraries)]


PEERS: dict[str, Peer] = {
    "mlserver": Peer(
        name="mlserver",
        # uvloop 0.22 raises where MLServer 1.7.1's inference workers ask for the event loop
        # before they have one (its workers then die at start); 0.21 returns one.
        packages=("mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop<0.22"),
        artifact_libraries=("scikit-learn", "numpy", "joblib"),
        engine="sklearn",
        command=commands.mlserver,
        health_path="/v2/health/ready",
        single_path=f"/v2/models/{commands.MLSERVER_MODEL}/infer",
        batch_path=f"/v2/models/{commands.MLSERVER_MODEL}/infer",
        single_body=lambda row: bodies.v2_request([row]),
        batch_body=bodies.v2_request,
        read_single=bodies.read_v2_probabilities,
        read_batch=bodies.read_v2_probabilities,
        calibrated=False,  # the runtime returns predict_proba as it is
        batching=f"max_batch_size {MAX_BATCH_SIZE}, max_batch_time {BATCH_WINDOW_S} s",
    ),
    "bentoml": Peer(
        name="bentoml",
        packages=("bentoml==1.4.40",),
        artifact_libraries=("scikit-learn", "numpy", "joblib"),
        engine="sklearn",
        command=commands.bentoml,
        health_path="/readyz",
        single_path="/predict",
        batch_path="/predict/batch",
        single_body=lambda row: bodies.transactions([row]),
        batch_body=bodies.transactions,
        read_single=bodies.read_answers,
        read_batch=bodies.read_answers,
        calibrated=True,
        # BentoML sizes its window itself from the latencies it sees (max_latency_ms caps it).
        batching=f"batchable, max_batch_size {MAX_BATCH_SIZE}, adaptive window",
    ),
    "litserve": Peer(
        name="litserve",
        packages=("litserve==0.2.19",),
        artifact_libraries=("onnxruntime", "numpy"),
        engine="onnx",
        command=commands.litserve,
        health_path="/health",
        single_path="/predict",
        batch_path="/predict/batch",
        single_body=dict,
        batch_body=bodies.transactions,
        read_single=bodies.read_answer,
        read_batch=bodies.read_predictions,
        calibrated=True,
        batching=f"max_batch_size {MAX_BATCH_SIZE}, batch_timeout {BATCH_WINDOW_S} s",
    ),
}


def parse_peers(value: str) -> list[Peer]:
    """`--peers`: comma-separated names, `all`, or `none`."""
    if value == "none":
        return []
    if value == "all":
        return list(PEERS.values())
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in PEERS]
    if unknown:
        raise ValueError(f"unknown peers {unknown}; known: {', '.join(PEERS)}, all, none")
    return [PEERS[name] for name in names]
