"""bot/tokens.py and bot/ratelimit.py: the generic pieces every platform adapter reuses."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from bot.tokens import TokenManager
from handlers.context import FakeClock


def _clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 10, 2, 0, tzinfo=UTC))


class Issuer:
    """A token endpoint that counts calls, can be slow, and can fail."""

    def __init__(self, lifetime: float = 7200) -> None:
        self.calls = 0
        self.lifetime = lifetime
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> tuple[str, float]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        else:
            await asyncio.sleep(0.01)
        if self.fail:
            raise ConnectionError("token endpoint down")
        return f"tok{self.calls}", self.lifetime


async def test_hundred_concurrent_gets_fetch_once() -> None:
    issuer = Issuer()
    tm = TokenManager(issuer, _clock())
    tokens = await asyncio.gather(*(tm.get() for _ in range(100)))
    assert set(tokens) == {"tok1"}
    assert issuer.calls == 1
    assert await tm.get() == "tok1" and issuer.calls == 1


async def test_refreshed_before_expiry_not_after() -> None:
    issuer, clock = Issuer(), _clock()
    tm = TokenManager(issuer, clock, refresh_margin_s=300)
    assert await tm.get() == "tok1"
    clock.advance(seconds=7200 - 301)
    assert await tm.get() == "tok1"
    clock.advance(seconds=2)  # inside the margin: still valid at the platform, but refreshed now
    assert await tm.get() == "tok2"
    assert issuer.calls == 2


async def test_failed_refresh_keeps_a_still_valid_token_and_raises_when_expired() -> None:
    issuer, clock = Issuer(), _clock()
    tm = TokenManager(issuer, clock)
    await tm.get()
    clock.advance(seconds=7000)
    issuer.fail = True
    assert await tm.get() == "tok1"  # refresh failed, old token still accepted by the platform
    clock.advance(seconds=300)
    with pytest.raises(ConnectionError):
        await tm.get()
    issuer.fail = False
    assert await tm.get() == "tok4"


async def test_invalidate_only_drops_the_named_token() -> None:
    issuer = Issuer()
    tm = TokenManager(issuer, _clock())
    old = await tm.get()
    tm.invalidate(old)
    new = await tm.get()
    assert new != old
    tm.invalidate(old)  # a late caller with the old token must not evict the fresh one
    assert await tm.get() == new
    assert issuer.calls == 2


async def test_call_retries_once_on_expired_and_concurrent_retries_share_one_fetch() -> None:
    issuer = Issuer()
    tm = TokenManager(issuer, _clock())
    await tm.get()
    seen: list[str] = []

    async def api(token: str) -> dict[str, int]:
        seen.append(token)
        await asyncio.sleep(0.001)  # all 50 are in flight with the old token before any answer
        return {"errcode": 42001} if token == "tok1" else {"errcode": 0}

    results = await asyncio.gather(*(tm.call(api, expired=lambda r: r["errcode"] in (40014, 42001)) for _ in range(50)))
    assert all(r["errcode"] == 0 for r in results)
    assert issuer.calls == 2
    assert seen.count("tok1") == 50 and seen.count("tok2") == 50

    always_expired = TokenManager(Issuer(), _clock())
    calls = 0

    async def broken(token: str) -> int:
        nonlocal calls
        calls += 1
        return 42001

    assert await always_expired.call(broken, expired=lambda r: r == 42001) == 42001
    assert calls == 2  # bounded: one retry, never a loop


async def test_cancelled_waiter_does_not_cancel_the_shared_fetch() -> None:
    issuer = Issuer()
    issuer.gate = asyncio.Event()
    tm = TokenManager(issuer, _clock())
    impatient = asyncio.create_task(tm.get())
    patient = asyncio.create_task(tm.get())
    await asyncio.sleep(0)
    impatient.cancel()
    issuer.gate.set()
    assert await patient == "tok1"
    assert issuer.calls == 1
