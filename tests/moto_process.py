"""A real S3 API (moto's server) in a process of its own, which a test can stop and start again
on the same port: a store outage, as the ledger's writer sees it (connections refused).

A restarted server starts empty: its objects lived in the stopped process's memory.
"""

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from fraud_model.ray_env import free_port
from tests.helpers import S3_TEST_ENV

START_TIMEOUT_S = 30.0


class MotoProcess:
    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1).close()
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if self._process.poll() is not None:
                    raise RuntimeError("the moto server exited at start") from None
                time.sleep(0.1)
        raise RuntimeError(f"the moto server did not answer within {START_TIMEOUT_S:g} s")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)
            self._process = None

    def env(self) -> dict[str, str]:
        return S3_TEST_ENV | {"AWS_ENDPOINT_URL_S3": self.endpoint}


@contextmanager
def moto_process() -> Iterator[MotoProcess]:
    server = MotoProcess()
    server.start()
    try:
        yield server
    finally:
        server.stop()
