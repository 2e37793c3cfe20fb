"""The benchmark's CPU accounting: process names and per-request figures."""

import os
from collections import Counter

import pytest

from benchmarks.cpu import per_request_ms, process_name, session_cpu_seconds


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


def test_this_session_is_found() -> None:
    busy = sum(range(3_000_000))  # some CPU time of our own
    assert busy and sum(session_cpu_seconds(os.getsid(0)).values()) > 0
