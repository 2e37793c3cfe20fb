"""The OpenAPI docs page in a real headless browser (Debian's Chromium), with every host but
127.0.0.1 unresolvable: the page must render the operations from the service alone."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from serve_app.config import AppArgs
from serve_app.routes import Handler, endpoint_table

pytestmark = [pytest.mark.ray, pytest.mark.serve]

CHROMIUM = shutil.which("chromium")


def rendered_dom(url: str, profile: Path) -> str:
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}",
        # No internet, as on an offline laptop or in a closed VPC: a CDN cannot be reached.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--virtual-time-budget=15000", "--dump-dom", url,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_docs_page_renders_every_operation_offline(fraud_app: str, tmp_path: Path) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's package")
        pytest.skip("needs Debian's chromium package (apt-get install chromium)")
    dom = rendered_dom(f"{fraud_app}/api/v1/docs", tmp_path / "profile")
    operations = set(re.findall(r'data-path="([^"]+)"', dom))
    # Every endpoint of the table but the docs' own.
    table = endpoint_table(AppArgs())
    assert operations == {e.path for e in table if e.handler is not Handler.DOCS}
    assert len(operations) >= 7
    assert "Fraud scoring API" in dom
    # The root sends a browser to the same page.
    assert set(re.findall(r'data-path="([^"]+)"', rendered_dom(fraud_app, tmp_path / "p2"))) == (
        operations
    )
