"""DingTalk Stream mode against a fake Stream endpoint (connections/open + WebSocket frames):
immediate acks after storing, duplicates, card callbacks, server disconnect, a silent socket
caught by the watchdog, refused opens, and a clean shutdown."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from dingtalk_stream.chatbot import ChatbotMessage
from sqlalchemy import select

from bot.app import create_app
from bot.dingtalk import DingTalkAdapter, StreamConnection
from bot.keys import GATEWAY
from handlers.context import FakeClock
from store.models import InboxEvent
from tests.conftest import JIANGSU_LEAD
from tests.dingtalk_fakes import (
    TOPIC_CARD,
    TOPIC_ROBOT,
    FakeDingTalk,
    callback_frame,
    card_callback,
    dingtalk_ids,
    dingtalk_toml,
    robot_message,
    system_frame,
)
from tests.feishu_fakes import settings_with_platform_ids


@dataclass
class Env:
    client: TestClient
    fake: FakeDingTalk
    clock: FakeClock

    @property
    def gateway(self) -> Any:
        return self.client.app[GATEWAY]

    @property
    def stream(self) -> StreamConnection:
        adapter = self.gateway.adapters["dingtalk"]
        assert isinstance(adapter, DingTalkAdapter) and adapter.stream is not None
        return adapter.stream

    async def inbox(self) -> list[InboxEvent]:
        return await self.gateway.db.run(lambda s: list(s.execute(select(InboxEvent).order_by(InboxEvent.id)).scalars()))

    async def send(self, topic: str, data: dict[str, Any], message_id: str) -> dict[str, Any]:
        await self.fake.push(callback_frame(topic, data, message_id))
        return await self.fake.wait_ack(message_id)


async def _env(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock, watchdog_s: float) -> AsyncIterator[Env]:
    fake = FakeDingTalk()
    await fake.start()
    settings = settings_with_platform_ids(db_url, tmp_path, dingtalk_toml(fake.base_url, mode="stream", watchdog_s=watchdog_s), dingtalk_ids())
    client = await aiohttp_client(create_app(settings, clock=clock, start_workers=False))
    await fake.wait_connected()
    try:
        yield Env(client, fake, clock)
    finally:
        await client.close()
        await fake.close()


@pytest.fixture
async def env(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Env]:
    async for e in _env(aiohttp_client, db_url, tmp_path, clock, watchdog_s=30.0):
        yield e


async def test_robot_message_frame_is_stored_then_acked_and_duplicates_dropped(env: Env) -> None:
    data = robot_message("dt_lina", "帮助", msg_id="msg-1")
    assert ChatbotMessage.from_dict(data).message_id == "msg-1"  # the SDK reads our frame data the same way
    ack = await env.send(TOPIC_ROBOT, data, "frame-1")
    assert ack["code"] == 200 and ack["headers"] == {"messageId": "frame-1", "contentType": "application/json"}
    assert json.loads(ack["data"]) == {"response": None}
    assert len(await env.inbox()) == 1  # stored before the ack went out
    # DingTalk redelivers (new frame id, same msgId): acked again, stored once.
    ack = await env.send(TOPIC_ROBOT, data, "frame-2")
    assert ack["code"] == 200
    await env.gateway.drain()
    assert len(await env.inbox()) == 1
    assert len(env.fake.texts_for("dt_lina")) == 1


async def test_malformed_frame_is_acked_with_400_and_not_stored(env: Env) -> None:
    ack = await env.send(TOPIC_ROBOT, {"msgtype": "text"}, "frame-bad")
    assert ack["code"] == 400
    ack = await env.send("/v1.0/some/other/topic", {"x": 1}, "frame-topic")
    assert ack["code"] == 400
    assert await env.inbox() == []


async def test_ping_is_answered_and_events_are_acked(env: Env) -> None:
    await env.fake.push(system_frame("ping", "ping-1"))
    ack = await env.fake.wait_ack("ping-1")
    assert ack["code"] == 200 and ack["headers"]["messageId"] == "ping-1"
    frame = {"specVersion": "1.0", "type": "EVENT", "headers": {"messageId": "ev-1", "topic": "*", "eventType": "user_add_org"}, "data": "{}"}
    await env.fake.push(frame)
    assert (await env.fake.wait_ack("ev-1"))["code"] == 200


async def test_lead_card_click_over_stream_updates_the_card(env: Env) -> None:
    resp = await env.client.post("/api/leads", json=JIANGSU_LEAD)
    owner = (await resp.json())["owner"]
    await env.gateway.drain()
    (biz, card), = env.fake.cards_for(f"dt_{owner}")
    ack = await env.send(TOPIC_CARD, card_callback(f"dt_{owner}", biz, card["contents"][-1]["actions"][0]["id"]), "card-frame-1")
    assert ack["code"] == 200
    await env.gateway.drain()
    assert "已接受" in json.dumps(env.fake.cards[biz]["card"], ensure_ascii=False)


async def test_store_failure_is_not_acked_so_dingtalk_redelivers(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    real = env.gateway.ingest
    calls = {"n": 0}

    async def flaky(key: str, event: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database is locked")
        return await real(key, event)

    monkeypatch.setattr(env.gateway, "ingest", flaky)
    await env.fake.push(callback_frame(TOPIC_ROBOT, robot_message("dt_lina", "帮助", msg_id="m-x"), "f-x"))
    with pytest.raises(asyncio.TimeoutError):
        await env.fake.wait_ack("f-x", timeout=0.5)
    assert (await env.send(TOPIC_ROBOT, robot_message("dt_lina", "帮助", msg_id="m-x"), "f-x2"))["code"] == 200
    assert len(await env.inbox()) == 1


async def test_server_disconnect_reconnects_and_keeps_serving(env: Env) -> None:
    await env.fake.disconnect()
    await env.fake.wait_connected(count=2)
    assert env.stream.connects == 2
    ack = await env.send(TOPIC_ROBOT, robot_message("dt_lina", "帮助", msg_id="after-reconnect"), "f-after")
    assert ack["code"] == 200
    # The socket dropping without a goodbye also reconnects.
    await env.fake.drop_sockets()
    await env.fake.wait_connected(count=3)
    assert len(await env.inbox()) == 1


async def test_watchdog_reconnects_a_silent_connection(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> None:
    async for env in _env(aiohttp_client, db_url, tmp_path, clock, watchdog_s=0.3):
        # The fake sends nothing at all (a zombie socket): the watchdog must notice.
        await env.fake.wait_connected(count=2, timeout=5)
        assert env.stream.watchdog_trips >= 1
        ack = await env.send(TOPIC_ROBOT, robot_message("dt_lina", "帮助", msg_id="w-1"), "w-frame")
        assert ack["code"] == 200


async def test_refused_open_is_retried_with_backoff(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> None:
    fake = FakeDingTalk()
    fake.refuse_open = 2
    await fake.start()
    settings = settings_with_platform_ids(db_url, tmp_path, dingtalk_toml(fake.base_url, mode="stream"), dingtalk_ids())
    client = await aiohttp_client(create_app(settings, clock=clock, start_workers=False))
    try:
        await fake.wait_connected(timeout=5)
        assert fake.refuse_open == 0 and fake.opens == 1
    finally:
        await client.close()
        await fake.close()


async def test_clean_shutdown_closes_the_socket_and_stops_the_loop(env: Env) -> None:
    stream = env.stream
    task = stream._task
    assert task is not None and not task.done()
    await stream.stop()
    assert task.done() and stream._task is None
    await asyncio.sleep(0.05)
    assert env.fake.sockets == []
    opens = env.fake.opens
    await asyncio.sleep(0.3)
    assert env.fake.opens == opens  # no reconnect after stop


# ---------------------------------------------------------------- hostile frames (found by fuzzing)

DEEP = "[" * 50_000  # json.loads gives up with RecursionError, not ValueError


async def test_frames_the_sdk_cannot_read_are_acked_with_400_on_the_same_connection(env: Env) -> None:
    """fuzz/corpus/dingtalk_events/regress-frame-*: such a frame escaped _on_frame, was never acked
    (DingTalk redelivers it) and the connection was dropped and reopened."""
    good = callback_frame(TOPIC_ROBOT, robot_message("dt_lina", "帮助", msg_id="m-ok"), "f-ok")
    for message_id, change in [
        ("f-not-json", {"data": "not json"}),
        ("f-deep", {"data": DEEP}),
        ("f-time", {"headers": {**good["headers"], "messageId": "f-time", "time": "soon"}}),
        ("f-card-deep", {"headers": {**good["headers"], "messageId": "f-card-deep", "topic": TOPIC_CARD},
                         "data": json.dumps({**card_callback("dt_lina", "c1", "act_0"), "content": DEEP})}),
    ]:
        frame = {**good, "headers": {**good["headers"], "messageId": message_id}, **change}
        await env.fake.push(frame)
        ack = await env.fake.wait_ack(message_id)
        assert ack["code"] == 400 and "格式错误" in ack["message"], ack
    # Headers that are no object: nothing to echo, but still a 400 and the socket stays up.
    await env.fake.push({**good, "headers": "h"})
    assert (await env.fake.wait_ack(""))["code"] == 400
    assert env.stream.connects == 1
    assert await env.inbox() == []
    # The next genuine frame is served on the same connection.
    assert (await env.send(TOPIC_ROBOT, robot_message("dt_lina", "帮助", msg_id="m-ok"), "f-ok"))["code"] == 200
    assert env.stream.connects == 1 and len(await env.inbox()) == 1


async def test_rich_text_that_is_no_list_is_acked_and_stored(env: Env) -> None:
    """fuzz/corpus/dingtalk_events/regress-richtext-not-a-list: was a TypeError, never acked, redelivered forever."""
    data = robot_message("dt_lina", msgtype="richText", content={"richText": 7}, msg_id="m-rich")
    assert (await env.send(TOPIC_ROBOT, data, "f-rich"))["code"] == 200
    rows = await env.inbox()
    assert [json.loads(r.payload)["text"] for r in rows] == [""]
