"""The benchmark's CPU accounting: process names and per-request figures."""

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.cpu import (
    per_request_ms,
    per_second_ms,
    process_name,
    process_table,
    session_cpu_seconds,
    session_processes,
)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("ray::ServeController.listen_for_change", "ray::ServeController"),
        ("ray::ServeReplica:fraud:Ingress", "ray::ServeReplica:fraud:Ingress"),
        ("/opt/venv/bin/python3", "python3"),
        # One argv string with spaces and slashes, as some of Ray's helpers set it.
        ("/opt/venv/bin/python -c import x; main(['--a=/tmp/b'])", "python"),
        ("", "haproxy"),  # no cmdline (a kernel thread or a zombie): the stat name
    ],
)
def test_processes_are_named_by_actor_or_executable(command: str, expected: str) -> None:
    assert process_name(command, "42 (haproxy) S 1 42") == expected


def test_cpu_per_request_is_the_difference_spread_over_the_requests() -> None:
    before = Counter({"a": 1.0, "b": 2.0})
    after = Counter({"a": 1.5, "b": 2.000001, "c": 0.2})
    assert per_request_ms(before, after, requests=100) == {"a": 5.0, "c": 2.0}


def test_cpu_at_rest_is_the_difference_spread_over_the_seconds() -> None:
    before = Counter({"a": 1.0, "b": 2.0})
    after = Counter({"a": 1.5, "b": 2.000001, "c": 0.2})
    assert per_second_ms(before, after, seconds=10) == {"a": 50.0, "c": 20.0}


def test_a_session_s_cpu_is_counted_and_no_other_s() -> None:
    # A process in a session of its own spends at least 0.3 s of CPU, says how much, and waits.
    burner = subprocess.Popen(
        [sys.executable, "-c", "import time\nwhile time.process_time() < 0.3: pass\n"
         "print(time.process_time(), flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert burner.stdout is not None
        spent = float(burner.stdout.readline())
        # This test's own process spends more than the upper bound below, so counting it (or
        # any process outside the session) would show.
        while sum(os.times()[:2]) < 1.0:
            pass
        counted = session_cpu_seconds(burner.pid)  # its session id is its pid
        assert set(counted) == {Path(sys.executable).name}
        # What the process itself counted, in /proc's whole clock ticks (100 per second).
        assert counted[Path(sys.executable).name] == pytest.approx(spent, abs=0.03)
    finally:
        burner.kill()
        burner.wait()


def test_a_child_that_starts_its_own_session_is_still_counted() -> None:
    # As BentoML's workers do: the server's process starts one in a session of its own.
    child = (
        "import time\nwhile time.process_time() < 0.3: pass\n"
        "print(time.process_time(), flush=True)\ntime.sleep(60)"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys\n"
         f"child = subprocess.Popen([sys.executable, '-c', {child!r}], start_new_session=True)\n"
         "try:\n    child.wait()\nfinally:\n    child.kill()"],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert parent.stdout is not None
        spent = float(parent.stdout.readline())
        counted = session_cpu_seconds(parent.pid)
        # The child's CPU, and the parent's few ticks of starting it: both in the session.
        assert counted[Path(sys.executable).name] >= spent - 0.03
    finally:
        # The child is in its own session: end it by its pid (its parent then exits).
        for process in session_processes(parent.pid, process_table()):
            if process.pid != parent.pid:
                os.kill(process.pid, signal.SIGKILL)
        parent.wait(timeout=10)


def test_a_sample_is_put_in_the_layer_of_its_innermost_known_frame() -> None:
    from benchmarks.layers import layer_of

    fast_api = "FastAPI.__call__ (fastapi/applications.py:1224)"
    ours = "ScoringFastPath.__call__ (serve_app/fast_path.py:83)"
    log = "Logger._log (logging/__init__.py:1632)"
    assert layer_of(f"{fast_api};{ours}") == "this service's code"
    assert layer_of(f"{fast_api};{ours};{log}") == "logging"
    assert layer_of(f"{ours};{fast_api}") == "FastAPI and Starlette"
    assert layer_of("Thread.run (threading.py:982)").startswith("other")
