"""The gateway's completion step, platform-neutral: any adapter with ``complete()`` may store
events ``incomplete``; a crashing ``complete()`` is retried and then degraded, never lost;
an adapter without it cannot store incomplete events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.app import create_app
from bot.gateway import Gateway
from bot.keys import GATEWAY
from bot.sandbox import SandboxAdapter
from handlers.context import FakeClock, HandlerContext
from handlers.events import InboundEvent
from store.db import Database
from store.models import InboxEvent, OutboxMessage
from tests.conftest import make_settings


class BuggySandbox(SandboxAdapter):
    """The sandbox, with a completion step that crashes until ``fixed``."""

    fixed = False
    calls = 0

    async def complete(self, event: InboundEvent) -> InboundEvent:
        BuggySandbox.calls += 1
        if not BuggySandbox.fixed:
            raise KeyError("bug")
        return InboundEvent(platform=event.platform, platform_user=event.platform_user, kind="text",
                            received_at=event.received_at, text="帮助")


@pytest.fixture
async def client(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[TestClient]:
    BuggySandbox.fixed, BuggySandbox.calls = False, 0

    def extra(db: Database, ctx: HandlerContext) -> list[Any]:
        return [BuggySandbox(db, ctx.clock)]  # replaces the plain sandbox adapter

    yield await aiohttp_client(create_app(make_settings(db_url, tmp_path), clock=clock, start_workers=False, extra_adapters=extra))


def _event(clock: FakeClock) -> InboundEvent:
    return InboundEvent(platform="sandbox", platform_user="lina", kind="voice", received_at=clock.now())


async def test_a_crashing_completion_is_retried_then_handled_degraded(client: TestClient, clock: FakeClock) -> None:
    gateway: Gateway = client.app[GATEWAY]
    assert await gateway.ingest("v1", _event(clock), incomplete=True) is not None
    for _ in range(12):  # 22 minutes
        await gateway.drain()
        clock.advance(minutes=2)
    rows = await gateway.db.run(lambda s: list(s.execute(select(InboxEvent)).scalars()))
    assert [r.status for r in rows] == ["done"] and "KeyError" in (rows[0].error or "")
    assert BuggySandbox.calls >= 7  # retried with backoff, not once
    out = await gateway.db.run(lambda s: list(s.execute(select(OutboxMessage)).scalars()))
    assert len(out) == 1 and "转文字" in out[0].payload  # the stored voice event, answered


async def test_a_fixed_completion_hands_the_completed_event_to_the_handlers(client: TestClient, clock: FakeClock) -> None:
    gateway: Gateway = client.app[GATEWAY]
    await gateway.ingest("v2", _event(clock), incomplete=True)
    await gateway.drain()
    BuggySandbox.fixed = True
    clock.advance(seconds=5)
    await gateway.drain()
    out = await gateway.db.run(lambda s: list(s.execute(select(OutboxMessage)).scalars()))
    assert len(out) == 1 and "leadbot" in out[0].payload  # the help text: the completed event was handled


async def test_an_adapter_without_complete_cannot_store_incomplete_events(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> None:
    client = await aiohttp_client(create_app(make_settings(db_url, tmp_path), clock=clock, start_workers=False))
    with pytest.raises(TypeError):
        await client.app[GATEWAY].ingest("v3", _event(clock), incomplete=True)
