"""A chart delivery resumed after a restart continues where it stopped (issue 10).

On WeCom a manager's report is two messages: the template card, then the chart as an
``image`` message. When the process stops after the card went out and before the image
did, the new process (same database, nothing in memory) must send only the image, reuse
the uploaded media while WeCom still keeps it (3 days), and never send the card again.
What the member received is read off the fake WeCom server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.app import create_app
from bot.keys import GATEWAY
from handlers.context import FakeClock
from store.models import ChartUpload, OutboxMessage
from tests.wecom_fakes import FakeWeComApi, WeComCallbacks, wecom_settings

MANAGER = "ChenJing"  # 陈静's WeCom userid in tests.wecom_fakes


class Restartable:
    """The real app on one database, started again as a new process would be."""

    def __init__(self, aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock, api: FakeWeComApi) -> None:
        self._make_client = aiohttp_client
        self.settings = wecom_settings(db_url, tmp_path, api.base_url())
        self.clock = clock
        self.api = api
        self.client: TestClient | None = None

    async def start(self) -> TestClient:
        self.client = await self._make_client(create_app(self.settings, clock=self.clock, start_workers=False))
        return self.client

    async def restart(self) -> TestClient:
        assert self.client is not None
        await self.client.close()  # everything held in memory is gone
        return await self.start()

    async def drain(self) -> None:
        assert self.client is not None
        await self.client.app[GATEWAY].drain()

    async def rows(self) -> list[OutboxMessage]:
        assert self.client is not None
        return await self.client.app[GATEWAY].db.run(lambda s: list(s.execute(select(OutboxMessage).where(OutboxMessage.kind == "card")).scalars()))


@pytest.fixture
async def world(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Restartable]:
    api = FakeWeComApi(clock)
    await api.start()
    app = Restartable(aiohttp_client, db_url, tmp_path, clock, api)
    await app.start()
    try:
        yield app
    finally:
        assert api.server is not None
        await api.server.close()


async def _card_sent_then_stopped(world: Restartable) -> None:
    """报表 from the manager: the card goes out, the image message fails, the process stops."""
    api = world.api
    api.slow_seconds = 0.0
    api.failures.extend(["slow", 500])  # consumed per message/send: the card passes, the image meets a 500
    cb = WeComCallbacks(world.clock)
    assert world.client is not None
    query, body = cb.encrypt(cb.text(MANAGER, "报表"))
    assert (await world.client.post(f"/callback/wecom?{query}", data=body)).status == 200
    await world.drain()
    assert [s.msgtype for s in api.to(MANAGER)] == ["template_card"]
    assert len(api.uploads) == 1
    await world.restart()


async def test_resumed_delivery_sends_only_the_image_and_reuses_the_upload(world: Restartable) -> None:
    await _card_sent_then_stopped(world)
    world.clock.advance(minutes=5)
    await world.drain()
    api = world.api
    # One card, then its chart; no second card, no markdown copy of it.
    assert [s.msgtype for s in api.to(MANAGER)] == ["template_card", "image"]
    assert api.images_to(MANAGER) == [api.uploads[0][0]]
    assert len(api.uploads) == 1  # still valid: not uploaded again
    assert [r.status for r in await world.rows()] == ["sent"]
    # The record of that delivery says the card part went out (with what WeCom returned).
    records = await world.client.app[GATEWAY].db.run(lambda s: list(s.execute(select(ChartUpload)).scalars()))  # type: ignore[union-attr]
    assert len(records) == 1 and '"card"' in records[0].parts_json


async def test_after_the_media_expired_the_chart_is_uploaded_again_but_the_card_is_not_resent(world: Restartable) -> None:
    await _card_sent_then_stopped(world)
    world.clock.advance(days=3)  # WeCom keeps temporary media for 3 days
    await world.drain()
    api = world.api
    assert [s.msgtype for s in api.to(MANAGER)] == ["template_card", "image"]
    assert len(api.uploads) == 2 and api.images_to(MANAGER) == [api.uploads[1][0]]
    assert [r.status for r in await world.rows()] == ["sent"]


async def test_a_new_report_uploads_its_own_chart(world: Restartable) -> None:
    # Records are per delivery: a later report is a new picture and a new upload.
    cb = WeComCallbacks(world.clock)
    assert world.client is not None
    for _ in range(2):
        query, body = cb.encrypt(cb.text(MANAGER, "报表"))
        assert (await world.client.post(f"/callback/wecom?{query}", data=body)).status == 200
        await world.drain()
        world.clock.advance(minutes=1)
    assert [s.msgtype for s in world.api.to(MANAGER)] == ["template_card", "image"] * 2
    assert len(world.api.uploads) == 2
