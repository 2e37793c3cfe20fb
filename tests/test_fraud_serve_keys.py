"""`fraud-serve --with-keys`, as a new user runs it: keys for this run, printed once beside the
ready line; anonymous access off; `fraud-serve apply` finds the operator key by itself, and says
at once what to set when its check is refused; Ctrl-C stops it quickly and quietly."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from benchmarks.servers import on_free_ports
from fraud_model.ray_env import THIS_VENV_FOR_RAY_WORKERS
from serve_app.local_service import RUNNING_DIR
from tests.helpers import PROJECT_ROOT
from tests.polling import wait_for

pytestmark = [pytest.mark.ray, pytest.mark.serve]
READY = re.compile(r"fraud-serve is ready: (http://\S+) ")
KEYS = re.compile(r"scoring (\S+) , operator (\S+) \.")


def test_with_keys_apply_finds_its_key_and_a_wrong_key_is_reported(tmp_path: Path) -> None:
    config = yaml.safe_load((PROJECT_ROOT / "configs" / "serve_config.yaml").read_text())
    port = on_free_ports(config)
    config["applications"][0]["args"]["ledger"] = {"location": str(tmp_path / "ledger")}
    path = tmp_path / "serve_config.yaml"
    path.write_text(yaml.safe_dump(config))
    fraud_serve = str(Path(sys.executable).with_name("fraud-serve"))
    env = os.environ | THIS_VENV_FOR_RAY_WORKERS | {"RAY_ADDRESS": "local"}
    env = {name: value for name, value in env.items() if not name.startswith("FRAUD_")}
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        service = subprocess.Popen(
            [fraud_serve, "--with-keys", str(path)],
            stderr=output, stdout=output, env=env, start_new_session=True,
        )  # fmt: skip
    try:
        ready = wait_for(lambda: READY.search(log.read_text()), timeout_s=300)
        assert ready, log.read_text()[-3000:]
        assert ready.group(1) == f"http://127.0.0.1:{port}"
        keys = wait_for(lambda: KEYS.search(log.read_text()), timeout_s=10)
        assert keys, log.read_text()[-2000:]
        scoring, operator = keys.groups()
        model = f"{ready.group(1)}/api/v1/model"
        assert httpx.get(model, timeout=30).status_code == 401  # anonymous access is off
        bearer = {"Authorization": f"Bearer {scoring}"}
        assert httpx.get(model, headers=bearer, timeout=30).status_code == 403
        bearer = {"Authorization": f"Bearer {operator}"}
        assert httpx.get(model, headers=bearer, timeout=30).status_code == 200

        # apply, from a shell without any key: it finds the operator key of this run itself.
        applied = subprocess.run(
            [fraud_serve, "apply", str(path)], env=env, capture_output=True, text=True
        )
        assert applied.returncode == 0, applied.stderr[-2000:]
        assert applied.stdout.startswith("Serving ")

        # A service whose keys apply does not have, and a wrong key in apply's shell: refused
        # at once, saying so, never "not serving yet".
        note = RUNNING_DIR / f"{port}.json"
        assert note.stat().st_mode & 0o777 == 0o600
        noted = json.loads(note.read_text())
        note.write_text(
            json.dumps({key: value for key, value in noted.items() if key != "operator_key"})
        )
        wrong = env | {"FRAUD_OPERATOR_KEYS": json.dumps(["w" * 40])}
        started = time.monotonic()
        refused = subprocess.run(
            [fraud_serve, "apply", str(path)], env=wrong, capture_output=True, text=True
        )
        assert refused.returncode == 1
        assert "401" in refused.stderr and "FRAUD_OPERATOR_KEYS" in refused.stderr
        assert "--with-keys" in refused.stderr
        assert time.monotonic() - started < 60  # not after waiting the whole check
    finally:
        stopped_at = time.monotonic()
        os.killpg(service.pid, signal.SIGINT)  # Ctrl-C in its terminal
        service.wait(timeout=120)
        stop_s = time.monotonic() - stopped_at
    output_text = log.read_text()
    print(f"\nfraud-serve --with-keys stopped {stop_s:.1f} s after Ctrl-C")
    assert service.returncode == 0
    assert "Traceback" not in output_text
    assert "failed to shut down" not in output_text
    assert not (RUNNING_DIR / f"{port}.json").exists()
