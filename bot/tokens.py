"""Access tokens for platform APIs: cached, refreshed early, fetched once under concurrency.

One :class:`TokenManager` per (platform, app). It knows nothing about any platform: it is
given ``fetch``, a coroutine returning ``(token, expires_in_seconds)``, and the clock.

* ``await get()`` returns the cached token while it has more than ``refresh_margin_s``
  left; otherwise it fetches a new one. Concurrent callers share one fetch (single
  flight): 100 concurrent ``get()`` on a cold cache cause exactly one ``fetch``.
* If a refresh fails while the old token has not actually expired yet, the old token is
  returned (the platform still accepts it) and the failure is retried on the next call.
* ``invalidate(token)`` is for a caller whose API call came back with a token-expired code
  (WeCom 40014/42001, DingTalk 401, Feishu 99991663…): it drops that token only if it is
  still the cached one, so a late invalidation never throws away a fresher token.
  :meth:`TokenManager.call` wraps the whole "call, and on expiry retry once" dance.

Usage::

    tokens = TokenManager(fetch_wecom_token, clock)
    result = await tokens.call(lambda tok: send(tok, body), expired=lambda r: r.get("errcode") in (40014, 42001))
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from handlers.context import Clock

T = TypeVar("T")

FetchToken = Callable[[], Awaitable[tuple[str, float]]]


class TokenManager:
    """A cached, early-refreshed, single-flight access token."""

    def __init__(self, fetch: FetchToken, clock: Clock, *, refresh_margin_s: float = 300) -> None:
        if refresh_margin_s < 0:
            raise ValueError("refresh_margin_s must be >= 0")
        self._fetch = fetch
        self._clock = clock
        self._margin = refresh_margin_s
        self._token: str | None = None
        self._expires_at: datetime | None = None  # when the platform stops accepting it
        self._refresh_at: datetime | None = None  # when we start asking for a new one
        self._inflight: asyncio.Future[str] | None = None
        self.fetches = 0  # how many times ``fetch`` was called (metrics, tests)

    @property
    def cached(self) -> str | None:
        """The cached token (possibly due for refresh), or None."""
        return self._token

    def _usable(self, now: datetime) -> bool:
        return self._token is not None and self._refresh_at is not None and now < self._refresh_at

    def _still_valid(self, now: datetime) -> bool:
        return self._token is not None and self._expires_at is not None and now < self._expires_at

    async def get(self) -> str:
        """A token good for at least the refresh margin (or the old one if a refresh failed)."""
        if self._usable(self._clock.now()):
            assert self._token is not None
            return self._token
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._refresh())
        inflight = self._inflight
        try:
            # shield: one impatient caller being cancelled must not cancel everyone's fetch.
            return await asyncio.shield(inflight)
        except asyncio.CancelledError:
            raise
        except Exception:
            if self._still_valid(self._clock.now()):
                assert self._token is not None
                return self._token
            raise

    async def _refresh(self) -> str:
        try:
            self.fetches += 1
            token, expires_in = await self._fetch()
            if not isinstance(token, str) or not token:
                raise ValueError("token fetch returned an empty token")
            now = self._clock.now()
            lifetime = max(0.0, float(expires_in))
            # A margin bigger than the lifetime would refetch on every call: cap it at half.
            margin = min(self._margin, lifetime / 2)
            self._token = token
            self._expires_at = now + timedelta(seconds=lifetime)
            self._refresh_at = now + timedelta(seconds=lifetime - margin)
            return token
        finally:
            self._inflight = None

    def invalidate(self, token: str | None = None) -> None:
        """Forget ``token`` (or whatever is cached when None), if it is still the cached one."""
        if token is None or token == self._token:
            self._token = None
            self._expires_at = None
            self._refresh_at = None

    async def call(self, fn: Callable[[str], Awaitable[T]], *, expired: Callable[[T], bool]) -> T:
        """Run ``fn(token)``; if ``expired(result)``, invalidate and retry exactly once."""
        token = await self.get()
        result = await fn(token)
        if not expired(result):
            return result
        self.invalidate(token)
        return await fn(await self.get())
