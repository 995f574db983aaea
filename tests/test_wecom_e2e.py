"""WeCom end to end: lead → template_card → click callback → accepted → card updated;
plus duplicates, concurrent clicks, expired tokens, outages, rate limits and dead letters."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlalchemy import select

from bot.wecom import task_id_for
from store.models import CardHandle, InboxEvent, Lead, OutboxMessage
from tests.conftest import JIANGSU_LEAD
from tests.wecom_fakes import (
    USERIDS,
    Sent,
    WeComHarness,
    wecom_harness,  # noqa: F401  (the ``wecom`` fixture)
)

EAST = {USERIDS[m]: m for m in ("zhangwei", "lina", "wangqiang")}


def _button(card: Sent, label: str) -> str:
    return next(b["key"] for b in card.body["template_card"]["button_list"] if b["text"] == label)


async def _lead_card(h: WeComHarness, **overrides: Any) -> tuple[dict[str, Any], str, Sent]:
    body = await h.post_lead(**{**JIANGSU_LEAD, **overrides})
    userid = USERIDS[body["owner"]]
    cards = h.api.cards_to(userid)
    assert len(cards) == 1
    return body, userid, cards[0]


async def _outbox(h: WeComHarness) -> list[OutboxMessage]:
    return await h.gateway.db.run(lambda s: list(s.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars()))


async def _lead(h: WeComHarness, lead_id: int) -> Lead:
    return await h.gateway.db.run(lambda s: s.get(Lead, lead_id))


async def test_lead_card_click_accepts_and_updates_the_card(wecom: WeComHarness) -> None:
    body, userid, card = await _lead_card(wecom)
    tc = card.body["template_card"]
    assert tc["card_type"] == "button_interaction"
    assert [b["text"] for b in tc["button_list"]] == ["接受", "转派", "无效"]
    assert "苏州恒锐精密机械有限公司" in tc["main_title"]["title"]
    assert card.body["agentid"] == 1000002 and card.touser in EAST
    task_id = tc["task_id"]

    code = wecom.api.issue_code()
    resp = await wecom.post(wecom.cb.card_click(userid, task_id, _button(card, "接受"), code))
    assert resp.status == 200 and await resp.text() == ""
    # The click's response_code is on the card handle before anything is handled.
    handle = await wecom.gateway.db.run(lambda s: s.get(CardHandle, task_id))
    assert handle.response_code == code
    await wecom.drain()

    lead = await _lead(wecom, body["lead_id"])
    assert lead.status == "accepted" and lead.owner_id == EAST[userid]
    assert len(wecom.api.updates) == 1
    update = wecom.api.updates[0]
    assert update["response_code"] == code and update["userids"] == [userid]
    assert update["button"]["replace_name"] == "已接受"
    # The code is single-use: it was cleared after the update.
    handle = await wecom.gateway.db.run(lambda s: s.get(CardHandle, task_id))
    assert handle.response_code is None


async def test_duplicated_click_deliveries_are_handled_once(wecom: WeComHarness) -> None:
    _, userid, card = await _lead_card(wecom)
    inner = wecom.cb.card_click(userid, card.body["template_card"]["task_id"], _button(card, "接受"), wecom.api.issue_code())
    query, raw = wecom.cb.encrypt(inner)
    results = await asyncio.gather(*(wecom.post_raw(query, raw) for _ in range(3)), wecom.post(inner))
    assert all(r.status == 200 for r in results)
    await wecom.drain()
    rows = await wecom.gateway.db.run(lambda s: list(s.execute(select(InboxEvent).where(InboxEvent.platform == "wecom")).scalars()))
    assert len(rows) == 1
    assert len(wecom.api.updates) == 1
    assert wecom.api.texts_to(userid) == []  # no "already handled" noise either


async def test_concurrent_clicks_first_accept_wins(wecom: WeComHarness) -> None:
    body, userid, card = await _lead_card(wecom)
    task_id = card.body["template_card"]["task_id"]
    same_ms = wecom.cb.now_s()
    other = next(u for u in EAST if u != userid)
    clicks = [
        wecom.cb.card_click(userid, task_id, _button(card, "接受"), wecom.api.issue_code(), create_time=same_ms),
        wecom.cb.card_click(userid, task_id, _button(card, "无效"), wecom.api.issue_code(), create_time=same_ms),
        wecom.cb.card_click(other, task_id, _button(card, "接受"), wecom.api.issue_code(), create_time=same_ms),
    ]
    results = await asyncio.gather(*(wecom.post(c) for c in clicks))
    assert [r.status for r in results] == [200, 200, 200]
    await wecom.drain()
    lead = await _lead(wecom, body["lead_id"])
    assert lead.status == "accepted" and lead.owner_id == EAST[userid]
    # The other rep is not allowed to press this button on this lead.
    assert any("分配给了" in t for t in wecom.api.texts_to(other))
    # Whichever of the owner's two clicks was stored first, 接受 wins and the card is closed
    # once: 无效 after 接受 is refused politely, 无效 before it only asked for a reason.
    refused = any("无需重复" in t for t in wecom.api.texts_to(userid))
    asked = len(wecom.api.cards_to(userid)) == 2
    assert refused != asked
    assert len(wecom.api.updates) == 1 and wecom.api.updates[0]["button"]["replace_name"] == "已接受"


async def test_double_click_in_the_same_second_is_one_event(wecom: WeComHarness) -> None:
    body, userid, card = await _lead_card(wecom)
    task_id = card.body["template_card"]["task_id"]
    same = wecom.cb.now_s()
    clicks = [wecom.cb.card_click(userid, task_id, _button(card, "接受"), wecom.api.issue_code(), create_time=same) for _ in range(2)]
    assert [r.status for r in await asyncio.gather(*(wecom.post(c) for c in clicks))] == [200, 200]
    await wecom.drain()
    assert (await _lead(wecom, body["lead_id"])).status == "accepted"
    assert len(wecom.api.updates) == 1 and wecom.api.texts_to(userid) == []


async def test_expired_token_is_refreshed_and_the_send_retried_once(wecom: WeComHarness) -> None:
    await _lead_card(wecom)
    assert wecom.api.token_calls == 1
    wecom.api.expire_tokens()
    await _lead_card(wecom, company="宁波恒锂新能源有限公司", phone="13800001111")
    assert wecom.api.token_calls == 2
    outbox = await _outbox(wecom)
    assert [m.status for m in outbox] == ["sent", "sent"] and all(m.attempts == 1 for m in outbox)


async def test_hundred_concurrent_sends_fetch_one_token(wecom: WeComHarness) -> None:
    adapter = wecom.adapter
    now = wecom.gateway.ctx.clock.now()
    msgs = [
        OutboxMessage(id=i, platform="wecom", recipient=f"user{i}", kind="text", payload=json.dumps({"text": f"通知{i}"}),
                      dedupe_key=f"t{i}", next_attempt_at=now, created_at=now)
        for i in range(100)
    ]
    await asyncio.gather(*(adapter.deliver(m, None, None) for m in msgs))
    assert wecom.api.token_calls == 1
    assert len(wecom.api.sent) == 100


async def test_outage_then_recovery_every_card_arrives_once(wecom: WeComHarness) -> None:
    clock = wecom.gateway.ctx.clock
    wecom.api.outage = True
    leads = []
    for i in range(5):
        leads.append(await wecom.post_lead(**{**JIANGSU_LEAD, "company": f"常州测试{i}号机械有限公司", "phone": f"1381234000{i}"}))
    for _ in range(3):  # a few minutes of outage with retries
        clock.advance(minutes=2)
        await wecom.drain()
    assert wecom.api.sent == [] and wecom.api.send_attempts >= 5
    wecom.api.outage = False
    # A slow answer, a 5xx and a 45009 on the way back.
    wecom.api.failures = ["slow", 502, 45009]
    for _ in range(6):
        clock.advance(minutes=11)
        await wecom.drain()
    task_ids = [s.body["template_card"]["task_id"] for s in wecom.api.sent if s.msgtype == "template_card"]
    assert len(task_ids) == 5 and len(set(task_ids)) == 5
    outbox = await _outbox(wecom)
    assert all(m.status == "sent" for m in outbox)
    retried = [s for s in wecom.api.sent + wecom.api.dropped if s.body.get("enable_duplicate_check")]
    assert retried, "retries ask WeCom to drop duplicates"


async def test_slow_answer_then_retry_is_deduplicated_by_wecom(wecom: WeComHarness) -> None:
    clock = wecom.gateway.ctx.clock
    wecom.api.failures = ["slow"]  # the fake delivers it, but after our 0.5 s timeout
    wecom.api.slow_seconds = 0.8
    body = await wecom.post_lead(**JIANGSU_LEAD)
    clock.advance(minutes=1)
    await wecom.drain()
    userid = USERIDS[body["owner"]]
    assert len(wecom.api.cards_to(userid)) == 1
    assert (await _outbox(wecom))[0].status == "sent"


async def test_per_member_rate_limit_defers_instead_of_losing(wecom: WeComHarness) -> None:
    clock = wecom.gateway.ctx.clock
    adapter = wecom.adapter
    now = clock.now()
    await wecom.gateway.db.run(lambda s: [s.add(OutboxMessage(platform="wecom", recipient="LiNa", kind="text",
                                                              payload=json.dumps({"text": f"提醒{i}"}), dedupe_key=f"r{i}",
                                                              next_attempt_at=now, created_at=now)) for i in range(35)])
    await wecom.drain()
    assert len(wecom.api.texts_to("LiNa")) == 30
    assert wecom.api.dropped == []  # nothing was sent past WeCom's limit
    clock.advance(seconds=61)
    await wecom.drain()
    texts = wecom.api.texts_to("LiNa")
    assert len(texts) == 35 and texts == [f"提醒{i}" for i in range(35)]
    assert adapter.rate_limits[0].limit == 30


async def test_dead_letter_after_repeated_failures_and_permanent_errors(wecom: WeComHarness) -> None:
    clock = wecom.gateway.ctx.clock
    now = clock.now()
    await wecom.gateway.db.run(lambda s: s.add(OutboxMessage(platform="wecom", recipient="ZhangWei", kind="text",
                                                             payload=json.dumps({"text": "x"}), dedupe_key="dead1",
                                                             next_attempt_at=now, created_at=now)))
    wecom.api.outage = True
    for _ in range(10):
        await wecom.drain()
        clock.advance(minutes=15)
    # Eight tries are not enough to give up during an outage: it keeps trying for six hours.
    outbox = await _outbox(wecom)
    assert outbox[0].status == "pending" and outbox[0].attempts >= 8
    for _ in range(30):
        await wecom.drain()
        clock.advance(minutes=11)
    outbox = await _outbox(wecom)
    assert outbox[0].status == "dead"
    wecom.api.outage = False
    wecom.api.failures = [81013]  # user not in the app's visible range: no point retrying
    await wecom.gateway.db.run(lambda s: s.add(OutboxMessage(platform="wecom", recipient="Nobody", kind="text",
                                                             payload=json.dumps({"text": "y"}), dedupe_key="dead2",
                                                             next_attempt_at=clock.now(), created_at=clock.now())))
    await wecom.drain()
    assert (await _outbox(wecom))[1].status == "dead"


async def test_expired_response_code_sends_a_fresh_message(wecom: WeComHarness) -> None:
    clock = wecom.gateway.ctx.clock
    _, userid, card = await _lead_card(wecom)
    task_id = card.body["template_card"]["task_id"]
    resp = await wecom.post(wecom.cb.card_click(userid, task_id, _button(card, "接受"), wecom.api.issue_code()))
    assert resp.status == 200
    clock.advance(hours=73)  # the dispatcher was down for three days
    await wecom.drain()
    assert wecom.api.updates == []
    closing = wecom.api.texts_to(userid)[-1]
    assert "已接受" in closing and "苏州恒锐精密机械有限公司" in closing


async def test_invalid_reason_card_is_updatable_too(wecom: WeComHarness) -> None:
    body, userid, card = await _lead_card(wecom)
    task_id = card.body["template_card"]["task_id"]
    await wecom.post(wecom.cb.card_click(userid, task_id, _button(card, "无效"), wecom.api.issue_code()))
    await wecom.drain()
    ask = wecom.api.cards_to(userid)[-1]
    assert [b["text"] for b in ask.body["template_card"]["button_list"]] == ["空号", "同行", "重复", "无需求"]
    ask_task = ask.body["template_card"]["task_id"]
    assert ask_task == task_id_for(task_id + "r")
    await wecom.post(wecom.cb.card_click(userid, ask_task, _button(ask, "同行"), wecom.api.issue_code()))
    await wecom.drain()
    lead = await _lead(wecom, body["lead_id"])
    assert (lead.status, lead.invalid_reason) == ("invalid", "同行")
    # The lead card is closed with the code its 无效 click brought; the question card with its own.
    assert {u["button"]["replace_name"] for u in wecom.api.updates} == {"已选择：同行", "已标记无效（同行）"}


async def test_deferred_sends_are_not_sent_with_duplicate_check(wecom: WeComHarness) -> None:
    clock = wecom.gateway.ctx.clock
    now = clock.now()
    # 31 identical texts: the 31st waits for the rate limit and must not be swallowed by
    # WeCom's content-based duplicate check when it finally goes out.
    await wecom.gateway.db.run(lambda s: [s.add(OutboxMessage(platform="wecom", recipient="WangQiang", kind="text",
                                                              payload=json.dumps({"text": "请查看今日待办"}), dedupe_key=f"same{i}",
                                                              next_attempt_at=now, created_at=now)) for i in range(31)])
    await wecom.drain()
    clock.advance(seconds=61)
    await wecom.drain()
    assert len(wecom.api.texts_to("WangQiang")) == 31 and wecom.api.dropped == []
    assert not any(s.body.get("enable_duplicate_check") for s in wecom.api.sent)


def test_config_errors_name_the_missing_key(tmp_path: Any) -> None:
    import pytest

    from bot.config import ConfigError, parse
    from bot.wecom import load_config
    from tests.conftest import TEMPLATE
    from tests.wecom_fakes import section

    text = TEMPLATE + section("http://127.0.0.1:9").replace('corp_id = "ww1436e0e65a779aee"\n', "")
    settings = parse(text, str(tmp_path / "leadbot.toml"), {"LEADBOT_DATABASE_URL": "sqlite:///x.db"})
    with pytest.raises(ConfigError) as err:
        load_config(settings)
    assert "platforms.wecom.corp_id" in str(err.value) and "企业ID" in str(err.value)
    bad_key = TEMPLATE + section("http://127.0.0.1:9").replace("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "short")
    with pytest.raises(ConfigError) as err:
        load_config(parse(bad_key, str(tmp_path / "leadbot.toml"), {"LEADBOT_DATABASE_URL": "sqlite:///x.db"}))
    assert "encoding_aes_key" in str(err.value)
    # Secrets from the environment override the file.
    env = {"LEADBOT_DATABASE_URL": "sqlite:///x.db", "LEADBOT_PLATFORMS__WECOM__SECRET": "from-env"}
    cfg = load_config(parse(TEMPLATE + section("http://127.0.0.1:9"), str(tmp_path / "leadbot.toml"), env))
    assert cfg.secret == "from-env" and "from-env" not in repr(cfg)
