"""The OpenAPI docs page in a real headless browser (Debian's Chromium), with every host but
127.0.0.1 unresolvable: the page must render the operations from the service alone."""

import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from serve_app.config import AppArgs
from serve_app.routes import Handler, endpoint_table
from tests.polling import wait_for
from tests.serve.serving import deploy_keyed_app

pytestmark = [pytest.mark.ray, pytest.mark.serve]

CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="module")
def keyed_docs(serve_url: str, session_artifact: Path) -> Iterator[tuple[str, str]]:
    """The app with keys (and its docs) at /docs-keyed; its docs page's URL and operator key."""
    from ray import serve

    operator = secrets.token_urlsafe(32)
    prefix = deploy_keyed_app("docs-keyed", session_artifact, secrets.token_urlsafe(32), operator)
    yield f"{serve_url}{prefix}/api/v1/docs", operator
    serve.delete("docs-keyed")


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


# Drives Swagger UI as a user does: Authorize with a key, then "Try it out" and "Execute" on the
# operation; resolves to the status the page shows.
TRY_IT_OUT = """
(async () => {
  const until = (find, step) => new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = setInterval(() => {
      const found = find();
      if (found) { clearInterval(poll); resolve(found); }
      else if (Date.now() - started > 20000) {
        clearInterval(poll);
        reject(new Error(`timeout: ${step}`));
      }
    }, 100);
  });
  await until(() => document.querySelector(".opblock"), "operations");
  if (KEY) ui.preauthorizeApiKey("apiKey", KEY);
  const block = [...document.querySelectorAll(".opblock-get")].find(
    (b) => b.querySelector('[data-path="PATH"]'));
  (block.querySelector(".opblock-summary-control") || block.querySelector(".opblock-summary"))
    .click();
  (await until(() => block.querySelector(".try-out__btn"), "try it out")).click();
  (await until(() => block.querySelector(".execute"), "execute")).click();
  const status = await until(
    () => block.querySelector(".live-responses-table tbody .response-col_status"), "response");
  return status.textContent.trim();
})()
"""


def status_through_the_page(docs_url: str, path: str, key: str | None, profile: Path) -> str:
    """The status Swagger UI shows for GET `path`, tried out from the docs page."""
    import asyncio

    import aiohttp

    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", "--remote-debugging-port=0",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", docs_url,
    ]  # fmt: skip
    browser = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        assert wait_for(port_file.exists, timeout_s=60, every_s=0.2), "Chromium did not start"
        port = port_file.read_text().split()[0]
        script = (
            TRY_IT_OUT.replace("if (KEY)", f"if ({json.dumps(key)})")
            .replace('"apiKey", KEY', f'"apiKey", {json.dumps(key)}')
            .replace("PATH", path)
        )

        async def drive() -> str:
            async with aiohttp.ClientSession() as session:
                pages = await (await session.get(f"http://127.0.0.1:{port}/json/list")).json()
                (page,) = [p for p in pages if p["type"] == "page"]
                async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    # Until the page has loaded: a navigation destroys the context a script
                    # runs in, and the script is run again in the new one.
                    for attempt in range(1, 30):
                        await ws.send_json(
                            {"id": attempt, "method": "Runtime.evaluate",
                             "params": {"expression": script, "awaitPromise": True,
                                        "returnByValue": True}}
                        )  # fmt: skip
                        message = await ws.receive_json(timeout=60)
                        while message.get("id") != attempt:
                            message = await ws.receive_json(timeout=60)
                        if "result" in message:
                            result = message["result"]
                            details = result.get("exceptionDetails", {})
                            assert not details, details.get("exception", details)
                            return str(result["result"]["value"])
                        await asyncio.sleep(0.5)
                    raise AssertionError(f"the page never ran the script: {message}")

        return asyncio.run(drive())
    finally:
        browser.kill()
        browser.wait()


def test_the_docs_page_authorizes_with_a_key_and_calls_an_endpoint(
    keyed_docs: tuple[str, str], tmp_path: Path
) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's package")
        pytest.skip("needs Debian's chromium package (apt-get install chromium)")
    docs_url, operator_key = keyed_docs
    assert status_through_the_page(docs_url, "/api/v1/model", None, tmp_path / "a") == "401"
    assert status_through_the_page(docs_url, "/api/v1/model", operator_key, tmp_path / "b") == "200"
