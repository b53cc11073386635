"""Per-consumer rate limits (限流): a token bucket per credential, answered with 429 and Retry-After.

The bucket is keyed by the digest of the presented credential (or the client address when there is none), so
the limit is checked before any database work: a flood of requests costs the registry nothing. Limits are
per API process; run one process per host or put a shared limiter in front when scaling out.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from core.crypto import sha256_hex
from core.errors import RetriableError


class RateLimited(RetriableError):
    """Too many requests from one consumer; retry after the given number of seconds (HTTP 429)."""

    zh_advice = "请求过于频繁，请稍后重试"
    en_advice = "too many requests; retry later"

    def __init__(self, retry_after: float, *, rate: float, burst: int) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(zh=f"请求过于频繁：每秒最多{rate:g}次（突发{burst}次），请在{self.retry_after}秒后重试",
                         en=(f"rate limit exceeded: at most {rate:g} requests per second (burst {burst}); "
                             f"retry after {self.retry_after} s"))


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets: `rate` requests per second on average, up to `burst` at once."""

    def __init__(self, *, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Take one request from key's bucket, or raise RateLimited saying when the next one is allowed."""
        if self.rate <= 0:
            return  # limits switched off
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) > 100_000:
                    self._buckets.clear()  # bounded memory under a flood of distinct keys
                bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), updated=now)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens < 1.0:
                raise RateLimited((1.0 - bucket.tokens) / self.rate, rate=self.rate, burst=self.burst)
            bucket.tokens -= 1.0


_LIMITERS: dict[tuple[float, int], RateLimiter] = {}


def limiter() -> RateLimiter:
    """The process's limiter for the configured rate (GOVSHARE_RATE_LIMIT_RPS, GOVSHARE_RATE_LIMIT_BURST)."""
    from core.settings import get_settings

    settings = get_settings()
    key = (settings.rate_limit_rps, settings.rate_limit_burst)
    if key not in _LIMITERS:
        _LIMITERS[key] = RateLimiter(rate=key[0], burst=key[1])
    return _LIMITERS[key]


def consumer_key(token: str | None, client: str | None) -> str:
    return "token:" + sha256_hex(token)[:32] if token else f"addr:{client or 'unknown'}"
