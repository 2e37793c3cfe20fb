"""How each peer is started: its configuration files in a work directory, and its command line.

Every peer reads the same `peer.json` (written by benchmarks.peers.launch): the model file, the
feature order, the artifact's threshold and calibration, the worker count and the batch window.
"""

import json
import shutil
from pathlib import Path
from typing import Any

from fraud_model.ray_env import free_port

APPS = Path(__file__).resolve().parent
MLSERVER_MODEL = "fraud"


def mlserver(venv: Path, workdir: Path, port: int, config: dict[str, Any]) -> list[str]:
    """`mlserver start` on a repository of one model, the sklearn runtime on model.joblib, with
    adaptive batching and parallel inference workers (one per core)."""
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "parallel_workers": config["workers"],
        "debug": False,
    }
    model_settings = {
        "name": MLSERVER_MODEL,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "max_batch_size": config["max_batch_size"],
        "max_batch_time": config["batch_timeout_s"],
        # The runtime answers predict() (the class) unless told otherwise: the probability is
        # what a fraud service needs, and asking for both would run the forest twice.
        "parameters": {"uri": config["model"], "extra": {"predict_fn": "predict_proba"}},
    }
    (workdir / "settings.json").write_text(json.dumps(settings, indent=2))
    (workdir / MLSERVER_MODEL).mkdir()
    (workdir / MLSERVER_MODEL / "model-settings.json").write_text(
        json.dumps(model_settings, indent=2)
    )
    return [str(venv / "bin" / "mlserver"), "start", str(workdir)]


def bentoml(venv: Path, workdir: Path, port: int, config: dict[str, Any]) -> list[str]:
    shutil.copy(APPS / "bentoml_service.py", workdir)
    shutil.copy(APPS / "peer_calibration.py", workdir)
    return [str(venv / "bin" / "bentoml"), "serve", "bentoml_service:FraudService",
            "--working-dir", str(workdir), "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip


def litserve(venv: Path, workdir: Path, port: int, config: dict[str, Any]) -> list[str]:
    shutil.copy(APPS / "litserve_server.py", workdir)
    shutil.copy(APPS / "peer_calibration.py", workdir)
    return [str(venv / "bin" / "python"), str(workdir / "litserve_server.py"), str(port)]
