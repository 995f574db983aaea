"""DingTalk HTTP mode: outgoing-robot sign, encrypted event subscription, message normalisation,
StandardCard delivery and the robot API, through the real app against a fake DingTalk."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.app import create_app
from bot.config import ConfigError
from bot.crypto import DingTalkEventCrypto
from bot.dingtalk import DingTalkAdapter, DingTalkConfig, Malformed, robot_message_event
from bot.keys import GATEWAY
from cards.dingtalk import action_id, action_index, render_standard_card
from cards.model import Card, CardAction, CardField
from handlers.context import FakeClock
from store.models import InboxEvent, OutboxMessage
from tests.conftest import JIANGSU_LEAD
from tests.dingtalk_fakes import (
    AES_KEY,
    APP_KEY,
    EVENT_TOKEN,
    FakeDingTalk,
    card_callback,
    dingtalk_ids,
    dingtalk_toml,
    event_http_request,
    robot_http_request,
    robot_message,
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
    def adapter(self) -> DingTalkAdapter:
        a = self.gateway.adapters["dingtalk"]
        assert isinstance(a, DingTalkAdapter)
        return a

    def now_ms(self) -> int:
        return int(self.clock.now().timestamp() * 1000)

    async def robot(self, data: dict[str, Any], **kw: Any) -> Any:
        body, headers = robot_http_request(data, self.now_ms(), **kw)
        return await self.client.post("/callback/dingtalk", data=body, headers=headers)

    async def event(self, data: dict[str, Any]) -> Any:
        body, query = event_http_request(data, self.now_ms())
        return await self.client.post("/callback/dingtalk", data=body, params=query)

    async def inbox(self) -> list[InboxEvent]:
        return await self.gateway.db.run(lambda s: list(s.execute(select(InboxEvent).order_by(InboxEvent.id)).scalars()))


@pytest.fixture
async def env(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Env]:
    fake = FakeDingTalk()
    await fake.start()
    settings = settings_with_platform_ids(db_url, tmp_path, dingtalk_toml(fake.base_url), dingtalk_ids())
    client = await aiohttp_client(create_app(settings, clock=clock, start_workers=False))
    try:
        yield Env(client, fake, clock)
    finally:
        await fake.close()


def _now_ms(clock: FakeClock) -> int:
    return int(clock.now().timestamp() * 1000)


# ---------------------------------------------------------------- pure parts

def test_standard_card_has_request_buttons_and_closes() -> None:
    card = Card(title="新线索：苏州恒锐", fields=(CardField("预算", "60万"),), actions=(CardAction("接受", "k1", "primary"), CardAction("无效", "k2", "danger")))
    out = render_standard_card(card, "c1")
    buttons = out["contents"][-1]["actions"]
    assert [b["label"]["text"] for b in buttons] == ["接受", "无效"]
    assert all(b["actionType"] == "request" for b in buttons) and [b["id"] for b in buttons] == ["act_0", "act_1"]
    assert "**预算**：60万" in out["contents"][0]["text"]
    closed = render_standard_card(card.with_status("已接受"), "c1")
    assert all(c["type"] != "action" for c in closed["contents"])
    assert action_index(action_id(3)) == 3 and action_index("act_x") is None and action_index(None) is None


def test_message_types_are_normalised(clock: FakeClock) -> None:
    now = clock.now()
    key, ev = robot_message_event(robot_message("u1", " 帮助 ", msg_id="m1"), now)
    assert key == "msg:m1" and ev.kind == "text" and ev.text == "帮助" and ev.platform_user == "u1"
    _, ev = robot_message_event(robot_message("u1", msgtype="audio", content={"duration": 4000, "downloadCode": "dc", "recognition": "客户说下周三来看产线"}), now)
    assert ev.kind == "voice" and ev.text == "客户说下周三来看产线" and ev.file_ref == "dc"
    _, ev = robot_message_event(robot_message("u1", msgtype="richText", content={"richText": [{"text": "拜访纪要："}, {"downloadCode": "p1", "type": "picture"}, {"text": "报价52万"}]}), now)
    assert ev.text == "拜访纪要：[图片]报价52万"
    _, ev = robot_message_event(robot_message("u1", msgtype="picture", content={"downloadCode": "pic1"}), now)
    assert ev.kind == "file" and ev.file_ref == "pic1"
    record = {"chatRecord": json.dumps([{"senderNick": "王总", "content": "下周三来看产线", "createAt": 1773104400000}, {"senderNick": "张伟", "content": "好的"}])}
    _, ev = robot_message_event(robot_message("u1", msgtype="chatRecord", content=record), now)
    assert ev.kind == "forward" and [(l.speaker, l.text) for l in ev.chat_record] == [("王总", "下周三来看产线"), ("张伟", "好的")]
    assert ev.chat_record[0].sent_at == "3月10日 09:00"
    with pytest.raises(Malformed):
        robot_message_event({"msgtype": "text"}, now)


def test_config_errors_are_explained(db_url: str, tmp_path: Path) -> None:
    def cfg(extra: str) -> Any:
        return DingTalkConfig.from_settings(settings_with_platform_ids(db_url, tmp_path, "\n[platforms.dingtalk]\nenabled = true\n" + extra, {}))

    with pytest.raises(ConfigError, match="AppKey"):
        cfg("")
    with pytest.raises(ConfigError, match="stream"):
        cfg('app_key = "k"\napp_secret = "s"\nmode = "websocket"\n')
    with pytest.raises(ConfigError, match="aes_key"):
        cfg('app_key = "k"\napp_secret = "s"\ntoken = "t"\n')
    assert cfg('app_key = "k"\napp_secret = "s"\n').robot_code == "k"


# ---------------------------------------------------------------- HTTP outgoing robot

async def test_robot_message_is_stored_and_answered_through_the_session_webhook(env: Env) -> None:
    resp = await env.robot(robot_message("dt_lina", "帮助", webhook=env.fake.webhook_url("dt_lina"), created_ms=env.now_ms()))
    assert resp.status == 200
    await env.gateway.drain()
    assert env.fake.webhook_texts and "leadbot" in env.fake.webhook_texts[0][1]
    assert env.fake.texts == []  # no robot API call while the webhook is valid
    # Two hours later the webhook has expired: the reply goes through the robot API.
    env.clock.advance(hours=2)
    await env.robot(robot_message("dt_lina", "帮助", created_ms=env.now_ms()))
    await env.gateway.drain()
    assert [u for u, _ in env.fake.texts] == ["dt_lina"]


async def test_forged_stale_foreign_and_malformed_robot_calls_are_refused(env: Env) -> None:
    good = robot_message("dt_lina", "帮助", created_ms=env.now_ms())
    body, headers = robot_http_request(good, env.now_ms())
    cases = [
        (body, dict(headers, sign="AAAA" + headers["sign"][4:])),
        robot_http_request(good, env.now_ms(), secret="wrong-secret"),
        robot_http_request(good, env.now_ms() - 3601_000),  # older than one hour
        robot_http_request({**good, "robotCode": "someone-else"}, env.now_ms()),
        robot_http_request({**good, "createAt": env.now_ms() - 7200_000}, env.now_ms()),  # fresh sign, stale body
        robot_http_request({"msgtype": "text"}, env.now_ms()),
        (b"[]", headers),
        (b"\xff", headers),
    ]
    for raw, hdrs in cases:
        resp = await env.client.post("/callback/dingtalk", data=raw, headers=hdrs)
        assert resp.status == 400, (raw[:30], resp.status)
    assert (await env.client.post("/callback/dingtalk", data=body)).status == 400  # no sign at all
    assert await env.inbox() == []


async def test_captured_sign_replayed_with_same_msgid_is_dropped(env: Env) -> None:
    first = robot_message("dt_lina", "帮助", msg_id="msgA", created_ms=env.now_ms())
    assert (await env.robot(first)).status == 200
    # An attacker reuses the (timestamp, sign) pair with a different body but the same msgId,
    # and DingTalk itself may retry: both are acknowledged and dropped.
    replay = {**first, "text": {"content": "把线索 1 转给 我"}}
    assert (await env.robot(replay)).status == 200
    assert (await env.robot(first)).status == 200
    rows = await env.inbox()
    assert len(rows) == 1 and json.loads(rows[0].payload)["text"] == "帮助"


async def test_voice_note_uses_dingtalk_recognition(env: Env) -> None:
    resp = await env.client.post("/api/leads", json=JIANGSU_LEAD)
    owner = (await resp.json())["owner"]
    await env.gateway.drain()
    note = "今天和恒锐精密王总通了电话，下周三去现场看产线"
    data = robot_message(f"dt_{owner}", msgtype="audio", content={"duration": 3000, "downloadCode": "dc1", "recognition": note}, created_ms=env.now_ms())
    assert (await env.robot(data)).status == 200
    await env.gateway.drain()
    row = (await env.inbox())[-1]
    assert json.loads(row.payload)["kind"] == "voice" and json.loads(row.payload)["text"] == note
    from store.models import FollowUp

    notes = await env.gateway.db.run(lambda s: list(s.execute(select(FollowUp)).scalars()))
    assert [n.text for n in notes] == [note]


# ---------------------------------------------------------------- HTTP event subscription

async def test_check_url_is_answered_with_the_encrypted_success(env: Env) -> None:
    resp = await env.event({"EventType": "check_url"})
    assert resp.status == 200
    reply = await resp.json()
    assert set(reply) == {"msg_signature", "encrypt", "timeStamp", "nonce"}
    crypto = DingTalkEventCrypto(EVENT_TOKEN, AES_KEY, APP_KEY)
    assert crypto.verify_and_decrypt(reply["msg_signature"], reply["timeStamp"], reply["nonce"], reply["encrypt"]) == "success"
    # Forged signature and a key for another app are refused.
    body, query = event_http_request({"EventType": "check_url"}, env.now_ms())
    assert (await env.client.post("/callback/dingtalk", data=body, params={**query, "msg_signature": "0" * 40})).status == 400
    other = DingTalkEventCrypto(EVENT_TOKEN, AES_KEY, "another-app")
    enc = other.encrypt('{"EventType":"check_url"}')
    ts = str(env.now_ms())
    resp = await env.client.post("/callback/dingtalk", data=json.dumps({"encrypt": enc}), params={"msg_signature": other.signature(ts, "n", enc), "timestamp": ts, "nonce": "n"})
    assert resp.status == 400
    # Stale by more than the window.
    body, query = event_http_request({"EventType": "check_url"}, env.now_ms() - 3700_000)
    assert (await env.client.post("/callback/dingtalk", data=body, params=query)).status == 400


async def test_card_click_over_http_events_updates_the_standard_card(env: Env) -> None:
    resp = await env.client.post("/api/leads", json=JIANGSU_LEAD)
    owner = (await resp.json())["owner"]
    await env.gateway.drain()
    (biz, card), = env.fake.cards_for(f"dt_{owner}")
    accept = card["contents"][-1]["actions"][0]["id"]
    resp = await env.event(card_callback(f"dt_{owner}", biz, accept))
    assert resp.status == 200
    await env.gateway.drain()
    assert env.fake.card_updates and env.fake.card_updates[-1][0] == biz
    text = json.dumps(env.fake.cards[biz]["card"], ensure_ascii=False)
    assert "已接受" in text and '"actionType"' not in text
    # A button id we never issued is refused.
    assert (await env.event(card_callback(f"dt_{owner}", biz, "act_9"))).status == 400
    assert (await env.event(card_callback(f"dt_{owner}", "unknown-card", "act_0"))).status == 400


async def test_expired_token_outage_and_recovery(env: Env) -> None:
    await env.robot(robot_message("dt_lina", "帮助", created_ms=env.now_ms()))
    await env.gateway.drain()
    assert env.fake.token_fetches == 1
    env.fake.expire_tokens()
    await env.robot(robot_message("dt_lina", "帮助", created_ms=env.now_ms()))
    await env.gateway.drain()
    assert env.fake.token_fetches == 2 and len(env.fake.texts_for("dt_lina")) == 2
    env.fake.down = True
    await env.robot(robot_message("dt_lina", "帮助", created_ms=env.now_ms()))
    await env.gateway.drain()
    row = (await env.gateway.db.run(lambda s: list(s.execute(select(OutboxMessage).order_by(OutboxMessage.id.desc())).scalars())))[0]
    assert row.status == "pending" and row.attempts == 1 and "unavailable" in (row.last_error or "")
    env.fake.down = False
    env.clock.advance(minutes=1)
    await env.gateway.drain()
    assert len(env.fake.texts_for("dt_lina")) == 3
    env.fake.fail("/v1.0/robot/oToMessages/batchSend", status=429, body={"code": "Throttling.Api", "message": "too fast"})
    await env.robot(robot_message("dt_lina", "帮助", created_ms=env.now_ms()))
    await env.gateway.drain()
    sent = await env.gateway.db.run(lambda s: s.execute(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "sent")).scalar_one())
    assert sent == 3


async def test_card_sent_before_a_restart_is_still_updated_in_place(env: Env) -> None:
    resp = await env.client.post("/api/leads", json=JIANGSU_LEAD)
    owner = (await resp.json())["owner"]
    await env.gateway.drain()
    (biz, card), = env.fake.cards_for(f"dt_{owner}")
    await env.event(card_callback(f"dt_{owner}", biz, card["contents"][-1]["actions"][2]["id"]))  # 无效 → asks for a reason
    await env.gateway.drain()
    (ask_biz, ask), = [(b, c) for b, c in env.fake.cards_for(f"dt_{owner}") if b != biz]
    env.adapter._sent_cards.clear()  # what a restart forgets
    await env.event(card_callback(f"dt_{owner}", ask_biz, ask["contents"][-1]["actions"][0]["id"]))
    await env.gateway.drain()
    assert len(env.fake.cards_for(f"dt_{owner}")) == 2  # updated, not re-sent
    assert "已选择：空号" in json.dumps(env.fake.cards[ask_biz]["card"], ensure_ascii=False)
    assert "已标记无效（空号）" in json.dumps(env.fake.cards[biz]["card"], ensure_ascii=False)


# ---------------------------------------------------------------- hostile bodies (found by fuzzing)

DEEP = "[" * 50_000  # json.loads gives up with RecursionError, not ValueError


async def test_deeply_nested_json_in_a_signed_request_is_a_400_with_a_reason(env: Env) -> None:
    """fuzz/corpus/dingtalk_events/regress-{card-content,chat-record}-deep-json: was a 503, retried forever."""
    ts = str(env.now_ms())
    _, headers = robot_http_request({}, env.now_ms())
    resp = await env.client.post("/callback/dingtalk", data=DEEP.encode(), headers=headers)
    assert resp.status == 400 and (await resp.json())["error"] == "malformed body / 请求体格式错误"
    crypto = DingTalkEventCrypto(EVENT_TOKEN, AES_KEY, APP_KEY)
    encrypt = crypto.encrypt(DEEP)
    query = {"msg_signature": crypto.signature(ts, "n1", encrypt), "timestamp": ts, "nonce": "n1"}
    resp = await env.client.post("/callback/dingtalk", data=json.dumps({"encrypt": encrypt}), params=query)
    assert resp.status == 400 and (await resp.json())["error"] == "malformed event / 事件格式错误"
    # A card click whose content is a string holding the deep array.
    click = {**card_callback("dt_lina", "some-card", "act_0"), "content": DEEP}
    resp = await env.event(click)
    assert resp.status == 400 and (await resp.json())["error"] == "malformed card callback / 卡片回调格式错误"
    assert await env.inbox() == []


async def test_odd_rich_text_and_chat_record_are_stored_as_what_can_be_read(env: Env) -> None:
    """fuzz/corpus/dingtalk_events/regress-richtext-not-a-list, regress-chat-record-deep-json: a number as
    richText was a TypeError (503), a deep chatRecord string a RecursionError (503); both are accepted now."""
    rich = robot_message("dt_lina", msgtype="richText", content={"richText": 7}, msg_id="m-rich", created_ms=env.now_ms())
    assert (await env.robot(rich)).status == 200
    record = robot_message("dt_lina", msgtype="chatRecord", content={"chatRecord": DEEP}, msg_id="m-record", created_ms=env.now_ms())
    assert (await env.robot(record)).status == 200
    events = [json.loads(r.payload) for r in await env.inbox()]
    assert [(e["kind"], e["text"], e["chat_record"]) for e in events] == [("text", "", []), ("forward", "", [])]
