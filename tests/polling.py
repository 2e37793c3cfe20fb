"""Waiting for a condition in tests: poll it, never sleep and hope."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout_s: float = 60, every_s: float = 1) -> T:
    """Polls `condition` until it is truthy or the time is up; returns its last result."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(every_s)
