"""Requests per second per API key, in each Ingress replica: a token bucket per key id.

A key may send `rate_per_s` requests per second on average and up to `burst_s` seconds' worth
at once; beyond that a request is refused with how long until it would be admitted (the 429's
Retry-After). The buckets are per replica: with N Ingress replicas behind the load balancer a
key gets up to N times the rate in all.
"""

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimits:
    def __init__(self, burst_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst_s = burst_s
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def wait_s(self, key_id: str, rate_per_s: float) -> float:
        """0 when a request of `key_id` is admitted now (and counted); else the seconds until
        one would be."""
        now = self._clock()
        capacity = max(1.0, rate_per_s * self.burst_s)
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = _Bucket(capacity, now)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.at) * rate_per_s)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / rate_per_s

    def keep_only(self, key_ids: Iterable[str]) -> None:
        """Forget the buckets of keys that are gone (after a reload)."""
        kept = set(key_ids)
        self._buckets = {key: bucket for key, bucket in self._buckets.items() if key in kept}


def retry_after(wait_s: float) -> int:
    """Retry-After's whole seconds, never 0."""
    return max(1, math.ceil(wait_s))
