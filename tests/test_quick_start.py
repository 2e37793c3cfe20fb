"""The README's quick start is a contract: line 1 serves the bundled model, line 2 tests."""

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from benchmarks.servers import on_free_ports, running
from fraud_model.artifact import read_metadata
from serve_app import local_service
from tests.helpers import PROJECT_ROOT, ledger_rows
from tests.unit.test_bundled_model import readme_answer

README = PROJECT_ROOT / "README.md"


def quick_start_commands() -> list[str]:
    text = README.read_text()
    section = re.search(r"^##+ *Quick start\s*$(.*?)(?=^## )", text, re.M | re.S | re.I)
    assert section, "README.md has no '## Quick start' section"
    block = re.search(r"^```[a-z]*\n(.*?)^```", section.group(1), re.M | re.S)
    assert block, "the Quick start section has no code block"
    return [
        line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")
    ]


def test_quick_start_is_two_commands_serve_then_test() -> None:
    serve_line, test_line = quick_start_commands()
    assert "fraud-serve" in serve_line or "serve run" in serve_line
    assert "pytest" in test_line


def system_python() -> str | None:
    """The distribution's own Python 3.11+ (it refuses `pip install` into itself), if any."""
    python = Path("/usr/bin/python3")
    if not python.exists():
        return None
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info >= (3, 11))"],
        capture_output=True,
        text=True,
    )
    return str(python) if version.stdout.strip() == "True" else None


def fresh_copy(target: Path) -> Path:
    """The repository's tracked files, as a fresh clone has them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=PROJECT_ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = PROJECT_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.mark.ray
@pytest.mark.serve
def test_line_one_serves_the_bundled_model_from_a_fresh_copy_with_the_system_python(
    tmp_path: Path,
) -> None:
    """Line 1 as written, in a fresh copy of the project, with the system's python3 first on a
    PATH that has no uv. Only the port differs: a free one, so a server the user already runs
    on 8000 is left alone."""
    python = system_python()
    if python is None:
        if os.environ.get("CI"):
            pytest.fail("CI runs on a distribution with a system Python 3.11+ in /usr/bin")
        pytest.skip("no system Python 3.11+ at /usr/bin/python3")
    project = fresh_copy(tmp_path / "project")
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "python3").symlink_to(python)
    path = f"{tools}:/usr/bin:/bin"
    assert shutil.which("uv", path=path) is None
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    env |= {"PATH": path, "RAY_ADDRESS": "local"}  # a private Ray, never the user's
    # A long TMPDIR, as a CI workspace or a per-job scratch directory has: HAProxy's sockets
    # must still fit in their 97 characters.
    long_tmp = tmp_path / ("t" * (100 - len(str(tmp_path)) - 1))
    long_tmp.mkdir()
    assert len(str(long_tmp)) == 100
    env["TMPDIR"] = str(long_tmp)

    setup, serve_command = quick_start_commands()[0].rsplit("&&", 1)
    installed = subprocess.run(
        ["bash", "-c", setup], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    config = yaml.safe_load((project / "configs" / "serve_config.yaml").read_text())
    port = on_free_ports(config)
    config_path = tmp_path / "serve_config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    argv = [*shlex.split(serve_command), str(config_path)]
    own_files_before = set(Path(tempfile.gettempdir()).glob("fraud-serve-*"))
    with running(argv, env, url, timeout_s=420, log_path=log, cwd=project):
        request_id = f"quick-start-{uuid.uuid4()}"
        response = httpx.post(
            f"{url}/api/v1/predict",
            json=real_fraud_row(),
            headers={"X-Request-ID": request_id},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        # HAProxy in front of the replicas passes the client's request id through and back.
        assert response.headers.get("x-request-id") == request_id
        body = response.json()
        bundled = read_metadata(PROJECT_ROOT / "artifacts" / "default")
        assert body["model_version"] == bundled.model_version
        assert body["threshold"] == bundled.decision_rule.cut
        assert body["decision_rule"] == bundled.decision_rule.rule
        assert 0.0 < body["fraud_probability"] < 1.0
        assert readme_answer() == body  # the README quotes the bundled model's answer
        # The same over gRPC, through HAProxy's gRPC port.
        grpc_answer = grpc_score(config["grpc_options"]["port"], real_fraud_row())
        assert grpc_answer == {field: body[field] for field in GRPC_FIELDS}

        # The README's way to change the running service: edit the config, then apply it.
        apply = [*shlex.split(serve_command), "apply", str(config_path)]
        model = config["applications"][0]["deployments"][0]
        model["user_config"]["threshold"] = 0.25
        config_path.write_text(yaml.safe_dump(config))
        applied = subprocess.run(apply, cwd=project, env=env, capture_output=True, text=True)
        assert applied.returncode == 0, applied.stderr[-2000:]
        assert applied.stdout == (
            f"Serving {bundled.model_version} from artifacts/default, threshold 0.25\n"
        )
        answer = httpx.post(f"{url}/api/v1/predict", json=real_fraud_row(), timeout=30).json()
        assert answer["threshold"] == 0.25
        # A model that cannot be loaded is refused, and says so; the old one keeps serving.
        model["user_config"]["artifact_uri"] = str(tmp_path / "no-such-model")
        config_path.write_text(yaml.safe_dump(config))
        refused = subprocess.run(apply, cwd=project, env=env, capture_output=True, text=True)
        assert refused.returncode == 1
        assert f"Reload refused: No model artifact directory at {tmp_path}" in refused.stderr
        assert f"Still serving {bundled.model_version} from artifacts/default." in refused.stderr
    # Stopped (Ctrl-C to its process group): quietly, and nothing of it is left behind.
    output = log.read_text()
    assert "Traceback" not in output and "SIGTERM received" not in output
    assert "graceful_shutdown failed" not in output  # Ray's report of Serve's own stop
    # One Ctrl-C is one graceful stop, though uv passes it on as well as the terminal: a second
    # SIGINT would abort `serve run`'s stop (click says "Aborted!") before the ledger is written.
    assert "Aborted!" not in output
    assert set(Path(tempfile.gettempdir()).glob("fraud-serve-*")) <= own_files_before
    assert not (local_service.RUNNING_DIR / f"{port}.json").exists()
    # What line 1 made lives in the copy: the venvs, and nothing else outside it.
    assert (project / ".uv" / "bin" / "uv").exists() and (project / ".venv").is_dir()
    # Every answered decision is in the decision ledger, in the project's own directory by
    # default, once the service has stopped (the replicas write what they hold as they stop).
    ledger = [
        row for row in ledger_rows(project / "ledger-data") if row["request_id"] == request_id
    ]
    assert [(row["score"], row["is_fraud"]) for row in ledger] == [
        (body["fraud_probability"], body["is_fraud"])
    ]


GRPC_FIELDS = ("fraud_probability", "is_fraud", "threshold", "model_version", "decision_rule")


def grpc_score(port: int, row: dict[str, float]) -> dict[str, object]:
    import grpc

    from serve_app.grpc_api import fraud_scoring_pb2 as pb
    from serve_app.grpc_api.fraud_scoring_pb2_grpc import FraudScoringStub

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer = FraudScoringStub(channel).Predict(pb.Transaction(**row), timeout=30)
    return {field: getattr(answer, field) for field in GRPC_FIELDS}


def real_fraud_row() -> dict[str, float]:
    import pandas as pd

    frame = pd.read_csv(PROJECT_ROOT / "data" / "creditcard_real_subset.csv.gz", nrows=700)
    row = frame[frame["Class"] == 1].iloc[0]
    return {name: float(row[name]) for name in frame.columns if name not in ("Time", "Class")}
