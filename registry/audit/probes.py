"""Anonymous refusals (未认证请求被拒) recorded without a flood growing the audit log without bound.

Every request refused for want of a valid credential is evidence (someone probed the hub), so each was one audit
record, on every route, with no limit: a loop of requests without credentials grew the log (and its chain,
which `audit verify` walks) by one record a request. Now, per client address, route, action, reason and
presented token the hub knows (a revoked or expired one, named by its id), the first refusal of an interval is recorded
and the ones after it in the same interval are counted, not written; the next record of the same kind carries
the count (`count`: itself and those it stands for), so the records' counts add up to the requests refused and
the fact of the probing is never lost, only its repetition folded. The route is the API's route template
(`/api/v1/resources/{code}/files`), so varying a path parameter is the same probe. A refusal outside a request
(the CLI, a sweep) is recorded as before.

Decision: the tally is the serving process's own (in memory): a process that stops loses at most the counts
of its last interval, never a first record; with several processes each records its own first refusal.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta

from core import clock

INTERVAL = timedelta(minutes=1)
MAX_TALLIES = 10_000  # idle tallies beyond this are dropped (their counts, if any, were already carried)

# Where the request being served comes from: (client address, a callable giving its route once routed).
_origin: ContextVar[tuple[str, Callable[[], str]] | None] = ContextVar("govshare_request_origin", default=None)


@dataclass
class _Tally:
    recorded_at: datetime
    folded: int = 0  # refusals since the last record, not written


_tallies: dict[tuple[str, str, str, object], _Tally] = {}
_lock = threading.Lock()


def serving(*, address: str, route: Callable[[], str]) -> object:
    """Mark the current request's origin (the API's middleware, for the request's whole handling); the token
    returned resets it."""
    return _origin.set((address, route))


def done(token: object) -> None:
    _origin.reset(token)  # type: ignore[arg-type]


def forget() -> None:
    """Drop every tally (another registry is served from now on, as in the tests)."""
    with _lock:
        _tallies.clear()


def fold(*, action: str, reason: object, who: object) -> int | None:
    """The one folding of repeated refusals (every caller's: record_event's anonymous and ``fold_repeats``
    refusals, the rate limit's before any database work): finds or creates the tally of this client address,
    route, action, reason and refused party (``who``: the id of a revoked or expired token the hub knows, the
    actor and agency, or a credential's digest; each party's refusals stay on record as its own) and bumps its
    count. Returns how many refusals the record about to be written stands for (itself and those folded since
    the last), or None: not written, counted for the next one. Outside a request every refusal is written (1)."""
    origin = _origin.get()
    if origin is None:
        return 1
    key, now = (origin[0], origin[1](), action, (reason, who)), clock.now()
    with _lock:
        tally = _tallies.get(key)
        if tally is not None and now - tally.recorded_at < INTERVAL:
            tally.folded += 1
            return None
        _tallies[key] = _Tally(recorded_at=now)
        if len(_tallies) > MAX_TALLIES:
            for idle in [k for k, t in _tallies.items() if not t.folded and now - t.recorded_at >= INTERVAL]:
                del _tallies[idle]
        return 1 + (tally.folded if tally else 0)
