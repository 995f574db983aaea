"""Feishu: callback authentication, message normalisation, cards and the Open API client,
end to end through the real app against a fake Feishu server."""

from __future__ import annotations

import asyncio
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
from bot.crypto import FeishuCrypto, feishu_signature
from bot.feishu import FeishuAdapter, flatten_forward, post_to_text, resolve_mentions
from bot.keys import GATEWAY
from cards.feishu import iter_buttons, render_feishu_card
from cards.model import Card, CardAction, CardField
from handlers.context import FakeClock
from store.models import FollowUp, InboxEvent, OutboxMessage
from tests.conftest import JIANGSU_LEAD
from tests.feishu_fakes import (
    ENCRYPT_KEY,
    FakeFeishu,
    FeishuSender,
    feishu_ids,
    feishu_toml,
    settings_with_platform_ids,
)


@dataclass
class Env:
    client: TestClient
    fake: FakeFeishu
    sender: FeishuSender
    clock: FakeClock

    @property
    def adapter(self) -> FeishuAdapter:
        adapter = self.client.app[GATEWAY].adapters["feishu"]
        assert isinstance(adapter, FeishuAdapter)
        return adapter

    async def post(self, payload: dict[str, Any], **kw: Any) -> Any:
        body, headers = self.sender.request(payload, int(self.clock.now().timestamp()), **kw)
        return await self.client.post("/callback/feishu", data=body, headers=headers)

    async def drain(self) -> None:
        await self.adapter.settle()
        await self.client.app[GATEWAY].drain()

    async def inbox_count(self) -> int:
        return await self.client.app[GATEWAY].db.run(lambda s: s.execute(select(func.count()).select_from(InboxEvent)).scalar_one())


async def _env(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock, *, encrypt: bool = True, schema: str = "2.0", stt: Any = None) -> AsyncIterator[Env]:
    fake = FakeFeishu()
    await fake.start()
    settings = settings_with_platform_ids(db_url, tmp_path, feishu_toml(fake.base_url, encrypt=encrypt, schema=schema), feishu_ids())
    app = create_app(settings, clock=clock, start_workers=False)
    client = await aiohttp_client(app)
    client.app[GATEWAY].inline_answer_seconds = 0.0
    env = Env(client, fake, FeishuSender(ENCRYPT_KEY if encrypt else None), clock)
    if stt is not None:
        env.adapter.stt = stt
    try:
        yield env
    finally:
        await fake.close()


@pytest.fixture
async def env(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Env]:
    async for e in _env(aiohttp_client, db_url, tmp_path, clock):
        yield e


# ---------------------------------------------------------------- renderers (pure)

LEAD_CARD = Card(
    title="新线索：苏州恒锐精密机械有限公司",
    fields=(CardField("联系人", "王建国"), CardField("预算", "60万")),
    text="询价 *伺服* 压装机",
    actions=(CardAction("接受", "accept:c1::sig", "primary"), CardAction("无效", "invalid:c1::sig", "danger")),
)


def test_card_json_2_has_schema_buttons_with_our_value_and_escapes_markdown() -> None:
    out = render_feishu_card(LEAD_CARD, "c1")
    assert out["schema"] == "2.0" and out["config"]["update_multi"] is True
    buttons = iter_buttons(out)
    assert [b["text"]["content"] for b in buttons] == ["接受", "无效"]
    assert buttons[0]["value"] == {"k": "accept:c1::sig", "c": "c1"} and buttons[1]["type"] == "danger"
    assert out["body"]["elements"][1]["content"] == "询价 \\*伺服\\* 压装机"
    closed = render_feishu_card(LEAD_CARD.with_status("已接受 · 张伟"), "c1")
    assert iter_buttons(closed) == [] and closed["header"]["template"] == "grey"
    assert len(json.dumps(render_feishu_card(Card(title="x" * 500, text="y" * 100_000), "c")).encode()) < 30_000


def test_card_json_1_fallback_uses_action_container() -> None:
    out = render_feishu_card(LEAD_CARD, "c1", schema="1.0")
    assert "schema" not in out and out["elements"][-1]["tag"] == "action"
    assert len(out["elements"][-1]["actions"]) == 2


def test_mentions_post_and_forward_flattening() -> None:
    mentions = [{"key": "@_user_1", "name": "leadbot"}, {"key": "@_user_2", "name": "王总"}]
    assert resolve_mentions("@_user_1 帮我看下 @_user_2", mentions) == "帮我看下 @王总"
    assert resolve_mentions("转给 @_user_2 跟进", mentions) == "转给 @王总 跟进"
    post = {"zh_cn": {"title": "拜访纪要", "content": [[{"tag": "text", "text": "客户 "}, {"tag": "at", "user_name": "李娜"}], [{"tag": "img", "image_key": "x"}]]}}
    assert post_to_text(post) == "拜访纪要\n客户 @李娜\n[图片]"
    items = [
        {"message_id": "root", "msg_type": "merge_forward", "body": {"content": "{}"}},
        {"message_id": "a", "upper_message_id": "root", "msg_type": "text", "create_time": "1773104400000", "sender": {"id": "ou_cust", "sender_type": "user"}, "body": {"content": json.dumps({"text": "下周三来看产线"})}},
        {"message_id": "b", "upper_message_id": "root", "msg_type": "merge_forward", "create_time": "1773104500000", "sender": {"id": "ou_zhangwei", "sender_type": "user"}, "body": {"content": "{}"}},
        {"message_id": "c", "upper_message_id": "b", "msg_type": "text", "create_time": "1773104000000", "sender": {"id": "ou_zhangwei", "sender_type": "user"}, "body": {"content": json.dumps({"text": "报价 52 万"})}},
    ]
    lines = flatten_forward(items, "root", {"ou_zhangwei": "张伟"}, max_depth=3, max_items=50)
    assert [(l.speaker, l.text) for l in lines] == [("用户cust", "下周三来看产线"), ("张伟", "[聊天记录]"), ("张伟", "报价 52 万")]
    assert lines[0].sent_at == "3月10日 09:00"
    assert len(flatten_forward(items, "root", {}, max_depth=1, max_items=50)) == 2  # nested record not opened
    assert len(flatten_forward(items, "root", {}, max_depth=3, max_items=1)) == 1


# ---------------------------------------------------------------- callback authentication

async def test_url_verification_answers_challenge_only_with_the_right_token(env: Env) -> None:
    resp = await env.post({"challenge": "ch-123", "token": "vtok-abcdef", "type": "url_verification"}, sign=False)
    assert resp.status == 200 and await resp.json() == {"challenge": "ch-123"}
    resp = await env.post({"challenge": "ch-123", "token": "wrong", "type": "url_verification"}, sign=False)
    assert resp.status == 400 and "签名" in (await resp.json())["error"]


async def test_plaintext_mode_checks_verification_token(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> None:
    async for env in _env(aiohttp_client, db_url, tmp_path, clock, encrypt=False):
        resp = await env.post({"challenge": "c", "token": "vtok-abcdef", "type": "url_verification"})
        assert await resp.json() == {"challenge": "c"}
        good = env.sender.text_message("ou_zhangwei", "帮助")
        assert (await env.post(good)).status == 200
        bad = env.sender.text_message("ou_zhangwei", "帮助")
        bad["header"]["token"] = "forged"
        assert (await env.post(bad)).status == 400
        await env.drain()
        assert len(env.fake.texts_for("ou_zhangwei")) == 1


async def test_forged_stale_unsigned_and_malformed_callbacks_are_4xx_and_store_nothing(env: Env) -> None:
    now = int(env.clock.now().timestamp())
    payload = env.sender.text_message("ou_zhangwei", "帮助")
    body, headers = env.sender.request(payload, now)
    forged = dict(headers, **{"X-Lark-Signature": "0" * 64})
    cases = [
        (body, forged),
        (body[:-3] + b'AA"}', headers),  # body changed after signing
        env.sender.request(payload, now - 301),  # outside our ±300 s window
        env.sender.request(payload, now + 301),
        env.sender.request(payload, now, sign=False),  # unsigned event
        (json.dumps(payload).encode(), {"Content-Type": "application/json"}),  # plaintext while encryption is on
        (b"not json", headers),
        (b'{"encrypt": "@@@"}', headers),
    ]
    for raw, hdrs in cases:
        resp = await env.client.post("/callback/feishu", data=raw, headers=hdrs)
        assert 400 <= resp.status < 500, (raw[:40], resp.status)
        assert "error" in await resp.json()
    assert await env.inbox_count() == 0
    # The genuine one still goes through afterwards.
    assert (await env.client.post("/callback/feishu", data=body, headers=headers)).status == 200
    assert await env.inbox_count() == 1


async def test_lark_oapi_accepts_the_requests_our_fake_sender_builds(env: Env) -> None:
    import lark_oapi as lark
    from lark_oapi.core.model import RawRequest
    from lark_oapi.event.callback.model.p2_card_action_trigger import (
        P2CardActionTriggerResponse,
    )

    got: list[str] = []

    def on_click(data: Any) -> P2CardActionTriggerResponse:
        got.append(data.event.action.value["c"])
        return P2CardActionTriggerResponse({"toast": {"type": "info", "content": "ok"}})

    handler = (
        lark.EventDispatcherHandler.builder(ENCRYPT_KEY, "vtok-abcdef")
        .register_p2_im_message_receive_v1(lambda data: got.append(data.event.message.message_id))
        .register_p2_card_action_trigger(on_click)
        .build()
    )
    for payload in (env.sender.text_message("ou_zhangwei", "你好", message_id="om_x"), env.sender.card_click("ou_zhangwei", {"k": "k", "c": "card-1"}, message_id="om_y")):
        body, headers = env.sender.request(payload, int(env.clock.now().timestamp()))
        req = RawRequest()
        req.uri, req.body, req.headers = "/callback/feishu", body, headers
        assert handler.do(req).status_code == 200
    assert got == ["om_x", "card-1"]


# ---------------------------------------------------------------- messages

async def test_text_with_mentions_becomes_a_followup_and_replies(env: Env) -> None:
    await env.client.post("/api/leads", json=JIANGSU_LEAD)
    await env.drain()
    owner = next(m for m in ("zhangwei", "lina", "wangqiang") if env.fake.cards_for(f"ou_{m}"))
    msg = env.sender.text_message(f"ou_{owner}", "@_user_1 今天和恒锐精密王总通了电话，下周三去现场看产线",
                                  mentions=[{"key": "@_user_1", "id": {"open_id": "ou_bot"}, "name": "leadbot"}])
    assert (await env.post(msg)).status == 200
    await env.drain()
    notes = await env.client.app[GATEWAY].db.run(lambda s: list(s.execute(select(FollowUp)).scalars()))
    assert len(notes) == 1 and notes[0].text.startswith("今天和恒锐精密王总") and "@" not in notes[0].text
    said = env.fake.texts_for(f"ou_{owner}") + [json.dumps(c, ensure_ascii=False) for _m, c in env.fake.cards_for(f"ou_{owner}")[1:]]
    assert any("跟进" in t for t in said)


async def test_duplicates_by_event_id_and_by_message_id_are_handled_once(env: Env) -> None:
    msg = env.sender.text_message("ou_lina", "帮助", message_id="om_same", event_id="ev-1")
    for _ in range(3):
        assert (await env.post(msg)).status == 200  # webhook retries, re-signed each time
    backfill = env.sender.text_message("ou_lina", "帮助", message_id="om_same", event_id="ev-2")
    assert (await env.post(backfill)).status == 200  # long-connection backfill: new event id
    await env.drain()
    assert await env.inbox_count() == 1
    assert len(env.fake.texts_for("ou_lina")) == 1


async def test_merge_forward_is_fetched_after_the_ack_and_becomes_a_chat_record(env: Env) -> None:
    env.fake.trees["om_fwd"] = [
        {"message_id": "om_fwd", "msg_type": "merge_forward", "body": {"content": "{}"}},
        {"message_id": "c1", "upper_message_id": "om_fwd", "msg_type": "text", "create_time": "1773104400000", "sender": {"id": "ou_customer1", "sender_type": "user"}, "body": {"content": json.dumps({"text": "王总：下周三来苏州看产线"})}},
        {"message_id": "c2", "upper_message_id": "om_fwd", "msg_type": "text", "create_time": "1773104460000", "sender": {"id": "ou_zhangwei", "sender_type": "user"}, "body": {"content": json.dumps({"text": "好的，我带压装机样本"})}},
    ]
    env.fake.fail("/open-apis/im/v1/messages/om_fwd", status=500, times=1)  # first fetch fails, the retry works
    msg = env.sender.text_message("ou_zhangwei", "", msg_type="merge_forward", message_id="om_fwd", content={"content": "Merged and Forwarded Message"})
    resp = await env.post(msg)
    assert resp.status == 200
    await env.adapter.settle()
    env.clock.advance(seconds=3)  # past the first backoff step
    await env.adapter.settle()
    rows = await env.client.app[GATEWAY].db.run(lambda s: list(s.execute(select(InboxEvent)).scalars()))
    assert len(rows) == 1
    event = json.loads(rows[0].payload)
    assert event["kind"] == "forward"
    assert [(l["speaker"], l["text"]) for l in event["chat_record"]] == [("用户mer1", "王总：下周三来苏州看产线"), ("张伟", "好的，我带压装机样本")]
    assert event["chat_record"][0]["sent_at"] == "3月10日 09:00"
    # A retry of the same forward after it was stored does not fetch again.
    fetches = sum(1 for m, p in env.fake.requests if p == "/open-apis/im/v1/messages/om_fwd")
    await env.post(env.sender.text_message("ou_zhangwei", "", msg_type="merge_forward", message_id="om_fwd", content={}))
    await env.adapter.settle()
    assert sum(1 for m, p in env.fake.requests if p == "/open-apis/im/v1/messages/om_fwd") == fetches


class FakeSTT:
    def __init__(self) -> None:
        self.calls: list[tuple[bytes, str]] = []

    async def transcribe(self, audio: bytes, *, fmt: str) -> str:
        self.calls.append((audio, fmt))
        return "客户说价格再考虑一下"


async def test_audio_goes_through_the_speech_to_text_interface(env: Env) -> None:
    stt = FakeSTT()
    env.adapter.stt = stt
    env.fake.resources[("om_voice", "file_v1")] = b"OPUS-bytes"
    msg = env.sender.text_message("ou_lina", "", msg_type="audio", message_id="om_voice", content={"file_key": "file_v1", "duration": 3000})
    assert (await env.post(msg)).status == 200
    await env.adapter.settle()
    assert stt.calls == [(b"OPUS-bytes", "opus")]
    rows = await env.client.app[GATEWAY].db.run(lambda s: list(s.execute(select(InboxEvent)).scalars()))
    event = json.loads(rows[0].payload)
    assert event["kind"] == "voice" and event["text"] == "客户说价格再考虑一下" and event["file_ref"] == "file_v1"


async def test_audio_without_speech_to_text_asks_for_text(env: Env) -> None:
    msg = env.sender.text_message("ou_lina", "", msg_type="audio", content={"file_key": "file_v2", "duration": 1000})
    assert (await env.post(msg)).status == 200
    await env.drain()
    assert "转文字" in env.fake.texts_for("ou_lina")[-1]


async def test_post_rich_text_is_flattened(env: Env) -> None:
    content = {"title": "拜访纪要", "content": [[{"tag": "text", "text": "帮助"}]]}
    msg = env.sender.text_message("ou_lina", "", msg_type="post", content=content)
    assert (await env.post(msg)).status == 200
    rows = await env.client.app[GATEWAY].db.run(lambda s: list(s.execute(select(InboxEvent)).scalars()))
    assert json.loads(rows[0].payload)["text"] == "拜访纪要\n帮助"


# ---------------------------------------------------------------- cards and delivery

async def _lead_card(env: Env) -> tuple[str, str, dict[str, Any]]:
    resp = await env.client.post("/api/leads", json=JIANGSU_LEAD)
    owner = (await resp.json())["owner"]
    await env.drain()
    (mid, card), = env.fake.cards_for(f"ou_{owner}")
    return owner, mid, card


async def test_click_answered_inline_with_toast_and_updated_card(env: Env) -> None:
    owner, mid, card = await _lead_card(env)
    accept = iter_buttons(card)[0]["value"]
    env.client.app[GATEWAY].inline_answer_seconds = 2.0
    click = env.sender.card_click(f"ou_{owner}", accept, message_id=mid, token=env.fake.issue_callback_token(mid))
    body, headers = env.sender.request(click, int(env.clock.now().timestamp()))

    async def dispatcher() -> None:
        for _ in range(100):
            if await env.client.app[GATEWAY].dispatch_pending():
                return
            await asyncio.sleep(0.01)

    resp, _ = await asyncio.gather(env.client.post("/callback/feishu", data=body, headers=headers), dispatcher())
    answer = await resp.json()
    assert answer["toast"]["type"] == "success" and answer["toast"]["content"].startswith("已接受")
    assert answer["card"]["type"] == "raw" and iter_buttons(answer["card"]["data"]) == []
    await env.drain()
    # The outbox update was satisfied by the inline answer: no second API call.
    assert env.fake.patches == [] and env.fake.delayed_updates == []
    sent = await env.client.app[GATEWAY].db.run(lambda s: s.execute(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "sent")).scalar_one())
    assert sent == 2


async def test_slow_click_gets_a_toast_then_delayed_update_then_patch(env: Env) -> None:
    owner, mid, card = await _lead_card(env)
    invalid = iter_buttons(card)[2]["value"]
    token = env.fake.issue_callback_token(mid)
    resp = await env.post(env.sender.card_click(f"ou_{owner}", invalid, message_id=mid, token=token))
    assert (await resp.json())["toast"]["content"].startswith("已收到")
    await env.drain()
    # 无效 asks for a reason with a new card; clicking a reason updates both cards.
    (ask_mid, ask), = [(m, c) for m, c in env.fake.cards_for(f"ou_{owner}") if m != mid]
    reason = iter_buttons(ask)[1]["value"]
    resp = await env.post(env.sender.card_click(f"ou_{owner}", reason, message_id=ask_mid, token=env.fake.issue_callback_token(ask_mid)))
    assert resp.status == 200
    await env.drain()
    assert "已标记无效（同行）" in json.dumps(env.fake.card_of(mid), ensure_ascii=False)
    assert "已选择：同行" in json.dumps(env.fake.card_of(ask_mid), ensure_ascii=False)
    assert len(env.fake.delayed_updates) == 2  # both went through the callback tokens
    # Once the callback token has expired (30 min), updates go through PATCH of the message.
    env.clock.advance(minutes=31)
    adapter = env.adapter
    from bot.gateway import Delivered

    result = await adapter._update_card(invalid["c"], Card(title="x", status="done"), None)
    assert isinstance(result, Delivered) and env.fake.patches and env.fake.patches[-1][0] == mid


async def test_card_refused_falls_back_to_text(env: Env) -> None:
    env.fake.fail("/open-apis/im/v1/messages", status=400, body={"code": 230099, "msg": "card content failed"}, times=1)
    resp = await env.client.post("/api/leads", json=JIANGSU_LEAD)
    owner = (await resp.json())["owner"]
    await env.drain()
    texts = env.fake.texts_for(f"ou_{owner}")
    assert len(texts) == 1 and texts[0].startswith("【新线索") and "可操作：接受 / 转派 / 无效" in texts[0]


async def test_expired_token_is_refreshed_once_and_the_send_succeeds(env: Env) -> None:
    await env.post(env.sender.text_message("ou_lina", "帮助"))
    await env.drain()
    assert env.fake.token_fetches == 1
    env.fake.expire_tokens()
    await env.post(env.sender.text_message("ou_lina", "帮助"))
    await env.drain()
    assert env.fake.token_fetches == 2 and len(env.fake.texts_for("ou_lina")) == 2
    # Proactive refresh: 90 minutes later (< 30 min left) a new token is fetched first.
    env.clock.advance(minutes=91)
    await env.post(env.sender.text_message("ou_lina", "帮助"))
    await env.drain()
    assert env.fake.token_fetches == 3


async def test_rate_limit_and_permanent_errors_map_to_delivery_errors(env: Env) -> None:
    env.fake.fail("/open-apis/im/v1/messages", status=429, body={"code": 99991400, "msg": "request trigger frequency limit"}, headers={"x-ogw-ratelimit-reset": "7"})
    await env.post(env.sender.text_message("ou_lina", "帮助"))
    await env.drain()
    row = (await env.client.app[GATEWAY].db.run(lambda s: list(s.execute(select(OutboxMessage)).scalars())))[0]
    assert row.status == "pending" and row.next_attempt_at.timestamp() - env.clock.now().timestamp() == pytest.approx(7, abs=1)
    env.clock.advance(seconds=8)
    await env.drain()
    assert len(env.fake.texts_for("ou_lina")) == 1
    env.fake.fail("/open-apis/im/v1/messages", status=400, body={"code": 230013, "msg": "bot has no availability to this user"})
    await env.post(env.sender.text_message("ou_zhangwei", "帮助"))
    await env.drain()
    rows = await env.client.app[GATEWAY].db.run(lambda s: list(s.execute(select(OutboxMessage).where(OutboxMessage.recipient == "ou_zhangwei")).scalars()))
    assert rows[0].status == "dead" and "230013" in (rows[0].last_error or "")


def test_config_errors_are_explained(db_url: str, tmp_path: Path) -> None:
    from bot.feishu import FeishuConfig

    settings = settings_with_platform_ids(db_url, tmp_path, '\n[platforms.feishu]\nenabled = true\napp_id = "cli_x"\n', {})
    with pytest.raises(ConfigError) as err:
        FeishuConfig.from_settings(settings)
    assert "app_secret" in str(err.value) and "App Secret" in str(err.value)
    settings = settings_with_platform_ids(db_url, tmp_path, '\n[platforms.feishu]\nenabled = true\napp_id = "cli_x"\napp_secret = "s"\n', {})
    with pytest.raises(ConfigError) as err:
        FeishuConfig.from_settings(settings)
    assert "Verification Token" in str(err.value)





# ---------------------------------------------------------------- hostile bodies (found by fuzzing)

DEEP = "[" * 50_000  # json.loads gives up with RecursionError, not ValueError


async def test_deeply_nested_json_anywhere_in_a_callback_is_a_400_with_a_reason(env: Env) -> None:
    """fuzz/corpus/feishu_events/regress-{body,message-content}-deep-json: was a 500 / 503 Feishu retries forever."""
    now = int(env.clock.now().timestamp())
    _, headers = env.sender.request(env.sender.text_message("ou_zhangwei", "帮助"), now)
    # The outer body, read before anything is authenticated.
    resp = await env.client.post("/callback/feishu", data=DEEP.encode(), headers={"Content-Type": "application/json"})
    assert resp.status == 400 and "格式错误" in (await resp.json())["error"]
    # A correctly encrypted and signed body whose plaintext is the deep array.
    inner = json.dumps({"encrypt": FeishuCrypto(ENCRYPT_KEY).encrypt(DEEP)}).encode()
    signed = dict(headers, **{"X-Lark-Signature": feishu_signature(headers["X-Lark-Request-Timestamp"], headers["X-Lark-Request-Nonce"], ENCRYPT_KEY, inner)})
    resp = await env.client.post("/callback/feishu", data=inner, headers=signed)
    assert resp.status == 400 and "格式错误" in (await resp.json())["error"]
    # A genuine message event whose content is the deep array.
    msg = env.sender.text_message("ou_zhangwei", "帮助", event_id="ev-deep")
    msg["event"]["message"]["content"] = DEEP
    resp = await env.post(msg)
    assert resp.status == 400 and (await resp.json())["error"] == "malformed message content / 消息内容格式错误"
    # A card click whose button value is a string holding the deep array.
    click = env.sender.card_click("ou_zhangwei", {}, message_id="om_card", event_id="ev-click-deep")
    click["event"]["action"]["value"] = DEEP
    resp = await env.post(click)
    assert resp.status == 400 and (await resp.json())["error"] == "unknown button / 无法识别的按钮"
    await env.drain()
    assert await env.inbox_count() == 0
    assert env.fake.texts_for("ou_zhangwei") == []


async def test_post_whose_content_is_a_number_is_read_as_its_title(env: Env) -> None:
    """fuzz/corpus/feishu_events/regress-post-content-not-a-list: was a TypeError, 503, retried forever."""
    msg = env.sender.text_message("ou_lina", "", msg_type="post", content={"title": "拜访纪要", "content": 7})
    resp = await env.post(msg)
    assert resp.status == 200
    rows = await env.client.app[GATEWAY].db.run(lambda s: list(s.execute(select(InboxEvent)).scalars()))
    assert [json.loads(r.payload)["text"] for r in rows] == ["拜访纪要"]
    assert post_to_text({"zh_cn": {"title": "纪要", "content": {"x": 1}}}) == "纪要"


async def test_forward_with_odd_create_times_and_a_deep_child_is_still_expanded(env: Env) -> None:
    """fuzz/corpus/feishu_events/regress-forward-*: '²' or 5000 digits as create_time, or a child whose
    content is deep JSON, aborted the expansion; now the odd times sort first and the unreadable child is skipped."""
    def child(mid: str, created: str, content: str) -> dict[str, Any]:
        return {"message_id": mid, "upper_message_id": "om_fwd2", "msg_type": "text", "create_time": created,
                "sender": {"id": "ou_zhangwei", "sender_type": "user"}, "body": {"content": content}}

    env.fake.trees["om_fwd2"] = [
        {"message_id": "om_fwd2", "msg_type": "merge_forward", "body": {"content": "{}"}},
        child("c1", "1773104460000", json.dumps({"text": "好的，我带压装机样本"})),
        child("c2", "\u00b2", json.dumps({"text": "上标时间"})),
        child("c3", "9" * 5000, json.dumps({"text": "超长时间"})),
        child("c4", "1773104400000", DEEP),
        child("c5", "1773104400000", json.dumps({"text": "王总：下周三来苏州看产线"})),
    ]
    msg = env.sender.text_message("ou_zhangwei", "", msg_type="merge_forward", message_id="om_fwd2", content={"content": "Merged and Forwarded Message"})
    assert (await env.post(msg)).status == 200
    await env.adapter.settle()
    rows = await env.client.app[GATEWAY].db.run(lambda s: list(s.execute(select(InboxEvent)).scalars()))
    event = json.loads(rows[0].payload)
    assert event["kind"] == "forward"
    assert [(l["text"], l["sent_at"]) for l in event["chat_record"]] == [
        ("上标时间", None), ("超长时间", None), ("王总：下周三来苏州看产线", "3月10日 09:00"), ("好的，我带压装机样本", "3月10日 09:01"),
    ]
