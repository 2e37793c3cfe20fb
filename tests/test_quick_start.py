"""The README's quick start is a contract: line 1 serves the bundled model, line 2 tests."""

import os
import re
import shlex
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from benchmarks.servers import running
from fraud_model.artifact import read_metadata
from serve_app.cli import free_port
from tests.conftest import PROJECT_ROOT

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


@pytest.mark.ray
@pytest.mark.serve
def test_line_one_serves_the_bundled_model(tmp_path: Path) -> None:
    serve_line = quick_start_commands()[0]
    # Skip the one-off `pip install uv`; run the serving command itself.
    argv = shlex.split(serve_line.split("&&")[-1])
    # Same config on a free port, so a server the user already runs on 8000 is left alone.
    config = yaml.safe_load((PROJECT_ROOT / "configs" / "serve_config.yaml").read_text())
    port = free_port()
    config["http_options"]["port"] = port
    config_path = tmp_path / "serve_config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{port}"
    env = os.environ | {"RAY_ADDRESS": "local"}  # a private Ray, never the user's
    log = tmp_path / "serve.log"
    with running([*argv, str(config_path)], env, url, log_path=log):
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
        assert body["threshold"] == bundled.threshold
        assert 0.0 <= body["fraud_probability"] <= 1.0
    assert "Traceback" not in log.read_text()


def real_fraud_row() -> dict[str, float]:
    import pandas as pd

    frame = pd.read_csv(PROJECT_ROOT / "data" / "creditcard_real_subset.csv.gz", nrows=700)
    row = frame[frame["Class"] == 1].iloc[0]
    return {name: float(row[name]) for name in frame.columns if name not in ("Time", "Class")}
