"""Start a peer on a free loopback port, from its own environment, in a temporary directory."""

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.peers.catalog import BATCH_WINDOW_S, MAX_BATCH_SIZE, Peer
from benchmarks.peers.venvs import ensure_venv
from benchmarks.servers import Server, running
from fraud_model.artifact import read_metadata
from fraud_model.metadata import ArtifactMetadata
from fraud_model.ray_env import free_port

# The project's own environment must not leak into a peer's.
_PROJECT_ENVIRONMENT = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT")


def workers() -> int:
    """One inference worker per core, as every peer's documentation advises for CPU models."""
    return len(os.sched_getaffinity(0))


def peer_config(peer: Peer, artifact: Path) -> dict[str, Any]:
    metadata = read_metadata(artifact)  # checks every file's hash first
    return {
        "model": str((artifact / metadata.engines[peer.engine]).resolve()),
        "features": metadata.features,
        "threshold": metadata.threshold,
        "calibration": peer_calibration(metadata),
        "workers": workers(),
        "max_batch_size": MAX_BATCH_SIZE,
        "batch_timeout_s": BATCH_WINDOW_S,
    }


def peer_calibration(metadata: ArtifactMetadata) -> dict[str, float]:
    """The forest's Platt parameters, which the peers apply as the service does; a model
    calibrated otherwise is refused, not scored on another scale."""
    if metadata.calibration.method != "platt":
        raise ValueError(
            f"the peers apply a forest's `platt` calibration, not {metadata.calibration.method!r}"
        )
    intercept, slope, trees, pseudo_count = metadata.calibration.platt_parameters()
    return {"intercept": intercept, "slope": slope, "trees": trees, "pseudo_count": pseudo_count}


def peer_environment(venv: Path, workdir: Path, config_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _PROJECT_ENVIRONMENT}
    return env | {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "FRAUD_PEER_CONFIG": str(config_path),
        # BentoML keeps a store of its own and reports usage unless told not to.
        "BENTOML_HOME": str(workdir / "bentoml-home"),
        "BENTOML_DO_NOT_TRACK": "True",
    }


@contextlib.contextmanager
def peer_server(peer: Peer, artifact: Path) -> Iterator[Server]:
    venv = ensure_venv(peer.name, peer.requirements())
    config = peer_config(peer, artifact)
    with tempfile.TemporaryDirectory(prefix=f"fraud-peer-{peer.name}-") as tmp:
        workdir = Path(tmp)
        config_path = workdir / "peer.json"
        config_path.write_text(json.dumps(config, indent=2))
        port = free_port()
        command = peer.command(venv, workdir, port, config)
        env = peer_environment(venv, workdir, config_path)
        log = workdir.parent / f"{workdir.name}.log"  # kept after the directory goes
        url = f"http://127.0.0.1:{port}"
        with running(
            command, env, url, log_path=log, cwd=workdir, health_path=peer.health_path
        ) as server:
            yield server
