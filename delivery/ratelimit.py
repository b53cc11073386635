"""Per-consumer rate limits (限流): a token bucket per credential, answered with 429 and Retry-After.

The bucket is keyed by the digest of the presented credential (or the client address when there is none), so
the limit is checked before any database work: a flood of requests costs the registry nothing.

One API process counts on its own (a token bucket in memory, about 4 us a check). With GOVSHARE_REDIS_URL set,
every process and replica counts in Redis instead (:class:`SharedRateLimiter`, the ``limits`` library's sliding
window counter, one atomic script a check): hits on one replica count on all. Should Redis be unreachable,
each process falls back to its own bucket (logged) rather than refusing every consumer.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

from core.crypto import sha256_hex
from core.errors import RetriableError

log = logging.getLogger(__name__)


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


class SharedRateLimiter:
    """The same limit counted in Redis by every API process: `burst` requests at once, `rate` a second on
    average, as a sliding window of ceil(burst / rate) seconds (at least one) allowing rate x window requests.
    Keys expire with their window; the prefix keeps them apart from anything else in the database."""

    def __init__(self, *, rate: float, burst: int, url: str) -> None:
        from limits import RateLimitItemPerSecond
        from limits.storage import RedisStorage
        from limits.strategies import SlidingWindowCounterRateLimiter

        self.rate, self.burst = rate, burst
        window = max(1, math.ceil(burst / rate)) if rate > 0 else 1
        self._item = RateLimitItemPerSecond(max(1, round(rate * window)), window)
        self._storage = RedisStorage(url, key_prefix="govshare-ratelimit", socket_timeout=2,
                                     socket_connect_timeout=2, wrap_exceptions=True)
        self._strategy = SlidingWindowCounterRateLimiter(self._storage)
        self._local = RateLimiter(rate=rate, burst=burst)
        self._warned = 0.0

    def check(self, key: str) -> None:
        """Take one request from key's shared allowance, or raise RateLimited with the wait."""
        from limits.errors import StorageError

        if self.rate <= 0:
            return
        try:
            if self._strategy.hit(self._item, key):
                return
            stats = self._strategy.get_window_stats(self._item, key)
        except StorageError as exc:
            if time.monotonic() - self._warned > 60:  # once a minute, not once a request
                self._warned = time.monotonic()
                log.warning("shared rate limits unavailable (Redis: %s); this process limits on its own", exc)
            return self._local.check(key)
        # reset_time is on the limits library's own clock (Unix seconds): compared with the same clock.
        raise RateLimited(stats.reset_time - time.time(), rate=self.rate, burst=self.burst)


_LIMITERS: dict[tuple[float, int, str], RateLimiter | SharedRateLimiter] = {}


def limiter() -> RateLimiter | SharedRateLimiter:
    """The process's limiter for the configured rate (GOVSHARE_RATE_LIMIT_RPS, GOVSHARE_RATE_LIMIT_BURST),
    shared through Redis when GOVSHARE_REDIS_URL is set."""
    from core.settings import get_settings

    settings = get_settings()
    key = (settings.rate_limit_rps, settings.rate_limit_burst, settings.redis_url)
    if key not in _LIMITERS:
        _LIMITERS[key] = (SharedRateLimiter(rate=key[0], burst=key[1], url=key[2]) if key[2]
                          else RateLimiter(rate=key[0], burst=key[1]))
    return _LIMITERS[key]


def consumer_key(token: str | None, client: str | None) -> str:
    return "token:" + sha256_hex(token)[:32] if token else f"addr:{client or 'unknown'}"


RATE_LIMITED = "rate limit exceeded (429)"  # one reason for every such refusal, so repeats fold into one record


def refusal_count(*, token: str | None, action: str) -> int | None:
    """How many refusals the record of this one stands for, or None: folded into its next record (probes.fold,
    the one folding every refusal goes through). Asked before any database work, so a flood past the limit still
    costs none: a credential's refusals are keyed by its digest (never counted under another's name), a request
    without one as record_event keys an anonymous refusal (per address, route and reason)."""
    from registry.audit import probes
    from registry.audit.log import refused_party

    return probes.fold(action=action, reason=RATE_LIMITED,
                       who=consumer_key(token, None) if token else refused_party(actor="anonymous"))


def record_refusal(*, token: str | None, action: str, resource_code: str, channel: str, count: int) -> None:
    """A request turned away by the rate limit, recorded as the consumer whose credential it presented; one
    presenting none, or one the hub does not accept (unknown, revoked, expired: its id named when known), as
    an anonymous refusal. ``count`` comes from refusal_count."""
    from core.errors import AuthenticationFailed
    from registry.audit.log import record_event
    from registry.db import session_scope
    from registry.people.bearer import authenticate_principal

    detail: dict[str, object] = {"channel": channel, "reason": RATE_LIMITED}
    with session_scope() as session:
        try:
            principal = authenticate_principal(session, token=token)
        except AuthenticationFailed as failed:
            record_event(session, actor="anonymous", action=action, agency_code=failed.agency_code,
                         resource_code=resource_code, result="denied", count=count,
                         detail={**detail, **({"token": failed.token_id} if failed.token_id else {})})
            return
        record_event(session, actor=principal.actor, action=action, agency_code=principal.agency_code,
                     resource_code=resource_code, result="denied", detail=detail, count=count)
