"""Rate limits: the shared, database-backed rules every platform declares, and an in-memory limiter.

Platforms drop messages silently past their per-member limits (WeCom: 30 per minute per
member per app). Each adapter declares its limits as :class:`RateRule` values in
``rate_limits``; the gateway counts every send against them in the database
(``store/ratelimits.py``), so they hold for all processes sharing one database::

    rate_limits = (RateRule(30, 60), RateRule(1000, 3600, slot_s=60))

:class:`RateLimiter` and :class:`MultiLimiter` below are a per-process, in-memory sliding
window over an injected clock, for limits that concern only this process (they must not
guard a platform's per-member limit: two processes would each allow the full rate)::

    limiter = RateLimiter(limit=30, per_s=60, clock=clock)
    wait = limiter.delay_for(key)   # 0.0: allowed, and the send is recorded
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from datetime import datetime

from handlers.context import Clock
from store.ratelimits import RateRule

__all__ = ["MultiLimiter", "RateLimiter", "RateRule"]


class RateLimiter:
    """At most ``limit`` events per ``per_s`` seconds for each key (a true sliding window)."""

    def __init__(self, limit: int, per_s: float, clock: Clock, *, max_keys: int = 100_000) -> None:
        if limit < 1 or per_s <= 0:
            raise ValueError("limit must be >= 1 and per_s > 0")
        self.limit = limit
        self.per_s = float(per_s)
        self._clock = clock
        self._max_keys = max_keys
        self._sent: dict[Hashable, deque[float]] = {}

    def _now(self) -> float:
        now: datetime = self._clock.now()
        return now.timestamp()

    def _window(self, key: Hashable, now: float) -> deque[float]:
        times = self._sent.get(key)
        if times is None:
            if len(self._sent) >= self._max_keys:
                self._prune(now)
            times = self._sent[key] = deque()
        while times and now - times[0] >= self.per_s:
            times.popleft()
        return times

    def _prune(self, now: float) -> None:
        for key in [k for k, t in self._sent.items() if not t or now - t[-1] >= self.per_s]:
            del self._sent[key]

    def peek(self, key: Hashable) -> float:
        """Seconds until ``key`` may send again (0.0 when it may now); records nothing."""
        now = self._now()
        times = self._window(key, now)
        if len(times) < self.limit:
            return 0.0
        return max(0.0, times[0] + self.per_s - now)

    def record(self, key: Hashable) -> None:
        """Count one send for ``key`` now, whether or not it was allowed."""
        now = self._now()
        self._window(key, now).append(now)

    def delay_for(self, key: Hashable) -> float:
        """0.0 if ``key`` may send now (the send is recorded), else the seconds to wait."""
        wait = self.peek(key)
        if wait == 0.0:
            self.record(key)
        return wait


class MultiLimiter:
    """Several windows that must all allow a send (e.g. 30/min and 1000/h)."""

    def __init__(self, limiters: Iterable[RateLimiter]) -> None:
        self.limiters = tuple(limiters)

    def delay_for(self, key: Hashable) -> float:
        """0.0 if every window allows it (recorded in all), else the longest wait (nothing recorded)."""
        wait = max((lim.peek(key) for lim in self.limiters), default=0.0)
        if wait == 0.0:
            for lim in self.limiters:
                lim.record(key)
        return wait
