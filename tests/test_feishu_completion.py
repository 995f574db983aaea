"""Feishu events that need work after the ack are never lost (issue 10).

A merged forward (its messages are fetched from Feishu) and a voice note (downloaded and
transcribed) are stored ``incomplete`` before Feishu gets its 200, then completed from the
stored row by the gateway: retried with backoff while Feishu fails, resumed by a new
process on the same database, handled exactly once, and handled in a degraded form (the
rep hears back) when completion fails for good. Time moves by the fake clock.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.app import create_app
from bot.feishu import FeishuAdapter
from bot.gateway import COMPLETE_LEASE, Gateway
from bot.keys import GATEWAY
from handlers.context import FakeClock
from store import inbox
from store.models import FollowUp, InboxEvent
from tests.feishu_fakes import (
    FakeFeishu,
    FeishuSender,
    feishu_ids,
    feishu_toml,
    settings_with_platform_ids,
)

REP = "ou_zhangwei"
TREE = "/open-apis/im/v1/messages/om_fwd"


def _tree() -> list[dict[str, Any]]:
    return [
        {"message_id": "om_fwd", "msg_type": "merge_forward", "body": {"content": "{}"}},
        {"message_id": "c1", "upper_message_id": "om_fwd", "msg_type": "text", "create_time": "1773104400000",
         "sender": {"id": "ou_customer1", "sender_type": "user"}, "body": {"content": json.dumps({"text": "王总：下周三来苏州看产线"})}},
        {"message_id": "c2", "upper_message_id": "om_fwd", "msg_type": "text", "create_time": "1773104460000",
         "sender": {"id": REP, "sender_type": "user"}, "body": {"content": json.dumps({"text": "好的，我带压装机样本"})}},
    ]


class World:
    """A fake Feishu and the real app on one database, which can be started again."""

    def __init__(self, aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock, fake: FakeFeishu) -> None:
        self._make_client = aiohttp_client
        self.settings = settings_with_platform_ids(db_url, tmp_path, feishu_toml(fake.base_url), feishu_ids())
        self.clock = clock
        self.fake = fake
        self.sender = FeishuSender()
        self.client: TestClient | None = None

    async def start(self) -> None:
        self.client = await self._make_client(create_app(self.settings, clock=self.clock, start_workers=False))

    async def restart(self) -> None:
        assert self.client is not None
        await self.client.close()
        await self.start()

    @property
    def gateway(self) -> Gateway:
        assert self.client is not None
        return self.client.app[GATEWAY]

    @property
    def adapter(self) -> FeishuAdapter:
        adapter = self.gateway.adapters["feishu"]
        assert isinstance(adapter, FeishuAdapter)
        return adapter

    async def post(self, payload: dict[str, Any]) -> int:
        assert self.client is not None
        body, headers = self.sender.request(payload, int(self.clock.now().timestamp()))
        return (await self.client.post("/callback/feishu", data=body, headers=headers)).status

    def forward(self, event_id: str) -> dict[str, Any]:
        return self.sender.text_message(REP, "", msg_type="merge_forward", message_id="om_fwd",
                                        content={"content": "Merged and Forwarded Message"}, event_id=event_id)

    async def rows(self) -> list[InboxEvent]:
        return await self.gateway.db.run(lambda s: list(s.execute(select(InboxEvent)).scalars()))

    async def notes(self) -> list[FollowUp]:
        return await self.gateway.db.run(lambda s: list(s.execute(select(FollowUp)).scalars()))

    def said_to(self, open_id: str) -> list[dict[str, Any]]:
        return [m for m in self.fake.sent if m["receive_id"] == open_id]

    def fetches(self, path: str = TREE) -> int:
        return sum(1 for method, p in self.fake.requests if method == "GET" and p == path)


@pytest.fixture
async def world(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[World]:
    fake = FakeFeishu()
    await fake.start()
    w = World(aiohttp_client, db_url, tmp_path, clock, fake)
    await w.start()
    try:
        yield w
    finally:
        await fake.close()


async def test_forward_survives_a_restart_while_feishu_fails_and_is_handled_once(world: World) -> None:
    world.fake.trees["om_fwd"] = _tree()
    world.fake.fail(TREE, status=500, times=1000)
    assert await world.post(world.forward("ev-1")) == 200
    # Durable before the answer: the row is there, waiting for completion, nothing handled.
    (row,) = await world.rows()
    assert row.status == "incomplete" and json.loads(row.payload)["kind"] == "forward"
    await world.gateway.drain()
    (row,) = await world.rows()
    assert row.status == "incomplete" and row.complete_attempts == 1 and "500" in (row.error or "")
    assert world.fetches() == 1 and world.said_to(REP) == []
    # Feishu redelivers (a webhook retry, a backfill with a new event id): stored once.
    assert await world.post(world.forward("ev-1")) == 200
    assert await world.post(world.forward("ev-2")) == 200
    assert len(await world.rows()) == 1

    await world.restart()  # a new process, nothing in memory
    world.fake.failures.clear()
    assert await world.post(world.forward("ev-1")) == 200  # its replay cache is empty: the inbox key drops it
    world.clock.advance(seconds=5)
    await world.gateway.drain()
    (row,) = await world.rows()
    assert row.status == "done"
    event = json.loads(row.payload)
    assert [line["text"] for line in event["chat_record"]] == ["王总：下周三来苏州看产线", "好的，我带压装机样本"]
    notes = await world.notes()
    assert len(notes) == 1 and "下周三来苏州看产线" in notes[0].text
    assert len(world.said_to(REP)) == 1  # one confirmation card
    assert world.fetches() == 2  # the failed try, then the one that worked
    await world.gateway.drain()
    world.clock.advance(minutes=20)
    await world.gateway.drain()
    assert len(await world.notes()) == 1 and len(world.said_to(REP)) == 1


async def test_a_recalled_forward_is_answered_at_once_not_retried(world: World) -> None:
    # No tree: Feishu answers 400 / 230011 "message not found" (recalled or deleted).
    assert await world.post(world.forward("ev-1")) == 200
    await world.gateway.drain()
    (row,) = await world.rows()
    assert row.status == "done" and world.fetches() == 1
    event = json.loads(row.payload)
    assert event["extra"]["expand_error"] == "fetch_failed" and "230011" in event["extra"]["completion_error"]
    said = world.said_to(REP)
    assert len(said) == 1 and said[0]["msg_type"] == "text"  # the rep hears back, about the forward
    assert "合并转发的聊天记录暂时无法读取" in json.loads(said[0]["content"])["text"]
    assert await world.notes() == []


async def test_feishu_failing_for_a_quarter_hour_degrades_the_forward_once(world: World) -> None:
    world.fake.trees["om_fwd"] = _tree()
    world.fake.fail(TREE, status=503, times=1000)
    assert await world.post(world.forward("ev-1")) == 200
    states: list[str] = []
    for _ in range(9):  # 18 minutes in 2-minute steps (the backoff's cap)
        await world.gateway.drain()
        states.append((await world.rows())[0].status)
        world.clock.advance(minutes=2)
    # Retried while younger than 15 minutes, then handled as an unreadable record.
    assert states[:7] == ["incomplete"] * 7 and states[-1] == "done"
    assert 7 <= world.fetches() <= 12
    assert len(world.said_to(REP)) == 1 and await world.notes() == []


async def test_a_process_killed_mid_completion_leaves_a_lease_that_runs_out(world: World) -> None:
    world.fake.trees["om_fwd"] = _tree()
    assert await world.post(world.forward("ev-1")) == 200
    # Another process claimed the row and died before finishing it.
    now = world.clock.now()
    await world.gateway.db.run(lambda s: inbox.claim_incomplete(s, now, 10, COMPLETE_LEASE, skip_locked=False))
    await world.restart()
    await world.gateway.drain()
    assert world.fetches() == 0 and (await world.rows())[0].status == "incomplete"
    world.clock.advance(seconds=COMPLETE_LEASE.total_seconds() + 1)
    await world.gateway.drain()
    assert (await world.rows())[0].status == "done"
    assert len(await world.notes()) == 1 and len(world.said_to(REP)) == 1


class FlakySTT:
    """Speech-to-text that fails its first call."""

    def __init__(self) -> None:
        self.calls = 0

    async def transcribe(self, audio: bytes, *, fmt: str) -> str:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("asr unavailable")
        return "客户说价格再考虑一下，下周再联系"


async def test_voice_notes_are_retried_then_transcribed_or_answered_with_the_text_hint(world: World) -> None:
    stt = FlakySTT()
    world.adapter.stt = stt
    world.fake.resources[("om_voice", "file_v1")] = b"OPUS"
    ok = world.sender.text_message("ou_lina", "", msg_type="audio", message_id="om_voice", content={"file_key": "file_v1", "duration": 3000})
    gone = world.sender.text_message("ou_wangqiang", "", msg_type="audio", message_id="om_gone", content={"file_key": "file_x", "duration": 1000})
    assert await world.post(ok) == 200 and await world.post(gone) == 200
    assert {r.status for r in await world.rows()} == {"incomplete"}
    await world.gateway.drain()
    # The missing file (4xx) is answered at once; the ASR hiccup waits for its retry.
    assert "转文字" in json.loads(world.said_to("ou_wangqiang")[0]["content"])["text"]
    assert world.said_to("ou_lina") == []
    world.clock.advance(seconds=5)
    await world.gateway.drain()
    assert stt.calls == 2
    rows = {r.event_key: r for r in await world.rows()}
    assert rows["msg:om_voice"].status == "done" and json.loads(rows["msg:om_voice"].payload)["text"].startswith("客户说价格")
    assert [n.text for n in await world.notes()] == ["客户说价格再考虑一下，下周再联系"]
    assert len(world.said_to("ou_lina")) == 1 and len(world.said_to("ou_wangqiang")) == 1
