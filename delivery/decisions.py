"""Access decisions reused for a moment on the interface channel (接口交换), refreshed ahead of time.

A busy consumer system sends hundreds of lookups a second; deciding each from scratch costs seven registry
queries. A granted decision is therefore reused for GOVSHARE_DECISION_CACHE_SECONDS (default 1 s): once half
of that has passed, one background refresh re-decides it while requests keep using the current one, so under
steady load entries never lapse and no burst of requests decides at once. A refresh that is refused drops the
entry: the next request is decided (and its refusal audited) afresh. So a revoked token or grant stops
answering within the window. Refusals are never cached.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.orm import Session

from delivery.access import AccessDecision, authorize_read

_ENTRIES: dict[tuple[str, str, str, str], tuple[float, AccessDecision]] = {}  # key -> (decided at, decision)
_REFRESHING: set[tuple[str, str, str, str]] = set()
_DECIDING: dict[tuple[str, str, str, str], threading.Lock] = {}
_LOCK = threading.Lock()


def _key(token: str, resource_code: str, channel: str) -> tuple[str, str, str, str]:
    from core.crypto import sha256_hex
    from core.settings import get_settings

    return sha256_hex(token), resource_code, channel, get_settings().database_url


def _window() -> float:
    from core.settings import get_settings

    return get_settings().decision_cache_seconds


def _decide(session: Session | None, token: str | None, resource_code: str, channel: str) -> AccessDecision:
    if session is not None:
        return authorize_read(session, token=token, resource_code=resource_code, channel=channel)
    from registry.db import session_scope

    with session_scope() as own:  # refusals commit their audit record themselves
        return authorize_read(own, token=token, resource_code=resource_code, channel=channel)


def _store(key: tuple[str, str, str, str], decision: AccessDecision) -> None:
    with _LOCK:
        if len(_ENTRIES) > 10_000:
            _ENTRIES.clear()
        _ENTRIES[key] = (time.monotonic(), decision)


def _refresh(key: tuple[str, str, str, str], token: str, resource_code: str, channel: str) -> None:
    from sqlalchemy.orm import sessionmaker

    from core.errors import GovshareError
    from registry.db import engine_for

    try:
        # The registry the entry was decided against (key[3]), whatever the process's settings are by now.
        with sessionmaker(engine_for(key[3]), expire_on_commit=False).begin() as session:
            decision = authorize_read(session, token=token, resource_code=resource_code, channel=channel)
        _store(key, decision)
    except GovshareError:
        with _LOCK:
            _ENTRIES.pop(key, None)  # refused now: the next request is decided and audited afresh
    except Exception:
        logging.getLogger(__name__).warning("refreshing an access decision failed", exc_info=True)
    finally:
        with _LOCK:
            _REFRESHING.discard(key)


def cached_decision(*, token: str | None, resource_code: str, channel: str) -> AccessDecision | None:
    """A granted decision inside its window, without touching the registry (refreshed in the background
    past half of it); None when the caller must be decided now."""
    window = _window()
    if not token or window <= 0:
        return None
    key = _key(token, resource_code, channel)
    entry = _ENTRIES.get(key)
    if entry is None:
        return None
    age = time.monotonic() - entry[0]
    if age >= window:
        return None
    if age >= window / 2:
        with _LOCK:
            start = key not in _REFRESHING
            _REFRESHING.add(key)
        if start:
            threading.Thread(target=_refresh, args=(key, token, resource_code, channel), daemon=True,
                             name="govshare-decision-refresh").start()
    return entry[1]


def cached_authorize(session: Session | None, *, token: str | None, resource_code: str,
                     channel: str) -> AccessDecision:
    """authorize_read with reuse: concurrent callers of one key wait for a single decision."""
    if (hit := cached_decision(token=token, resource_code=resource_code, channel=channel)) is not None:
        return hit
    if not token or _window() <= 0:
        return _decide(session, token, resource_code, channel)
    key = _key(token, resource_code, channel)
    with _LOCK:
        deciding = _DECIDING.setdefault(key, threading.Lock())
    with deciding:
        if (hit := cached_decision(token=token, resource_code=resource_code, channel=channel)) is not None:
            return hit  # another caller decided while this one waited
        # Decided in a session of its own, never the caller's: a request that then fails rolls its session back,
        # which expired the cached decision's rows, and every request reusing it within the window was a 500.
        decision = _decide(None, token, resource_code, channel)
        _store(key, decision)
        return decision
