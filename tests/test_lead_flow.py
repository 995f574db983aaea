"""The five user steps of the foundation, end to end through HTTP on a real database."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from bot.keys import GATEWAY
from store.models import FollowUp, Lead, OutboxMessage
from tests.conftest import JIANGSU_LEAD, SandboxDriver

EAST_REPS = {"zhangwei", "lina", "wangqiang"}


async def test_web_form_lead_goes_to_a_rep_of_the_province_region(bot: SandboxDriver) -> None:
    body = await bot.post_lead(**JIANGSU_LEAD)
    assert body["status"] == "assigned"
    assert body["owner"] in EAST_REPS
    cards = await bot.cards(body["owner"])
    assert len(cards) == 1
    card = cards[0]
    assert "苏州恒锐精密机械有限公司" in card["title"]
    assert [a["label"] for a in card["actions"]] == ["接受", "转派", "无效"]
    assert ["预算", "60万"] in card["fields"]
    # Nobody else got it.
    for other in EAST_REPS - {body["owner"]}:
        assert await bot.cards(other) == []


async def test_round_robin_spreads_leads_inside_the_region(bot: SandboxDriver) -> None:
    owners = []
    for i in range(6):
        body = await bot.post_lead(**{**JIANGSU_LEAD, "company": f"测试公司{i}号", "phone": f"1391234567{i}"})
        owners.append(body["owner"])
    assert set(owners) == EAST_REPS
    assert owners[:3] != owners[1:4]  # it rotates rather than sticking to one rep


async def test_accept_updates_card_and_second_click_is_refused(bot: SandboxDriver) -> None:
    body = await bot.post_lead(**JIANGSU_LEAD)
    owner = body["owner"]
    card = (await bot.cards(owner))[0]
    await bot.click(owner, card, "接受")
    updated = (await bot.cards(owner))[0]
    assert updated["card_id"] == card["card_id"]
    assert updated["status"].startswith("已接受")
    assert updated["actions"] == []
    # A second click on the old button (the page may be stale) is refused politely.
    await bot.click(owner, card, "接受")
    assert "已由" in await bot.last_text(owner) and "无需重复" in await bot.last_text(owner)
    # Someone else clicking the same button is told it is not theirs.
    other = next(iter(EAST_REPS - {owner}))
    await bot.click(other, card, "接受")
    assert "分配给了" in await bot.last_text(other)

    resp = await bot.client.get(f"/api/leads/{body['lead_id']}")
    view = await resp.json()
    assert view["status"] == "accepted" and view["owner"] == owner
    assert [a["action"] for a in view["audit"]] == ["created", "assigned", "accepted"]
    assert view["rule"]


async def test_invalid_asks_for_a_reason_and_records_it(bot: SandboxDriver) -> None:
    body = await bot.post_lead(**JIANGSU_LEAD)
    owner = body["owner"]
    await bot.click(owner, (await bot.cards(owner))[0], "无效")
    ask = (await bot.cards(owner))[-1]
    assert [a["label"] for a in ask["actions"]] == ["空号", "同行", "重复", "无需求"]
    await bot.click(owner, ask, "同行")
    view = await (await bot.client.get(f"/api/leads/{body['lead_id']}")).json()
    assert view["status"] == "invalid" and view["invalid_reason"] == "同行"
    cards = await bot.cards(owner)
    assert cards[0]["status"].startswith("已标记无效（同行）")
    assert cards[-1]["status"] == "已选择：同行"


async def test_transfer_hands_the_lead_to_another_rep_of_the_region(bot: SandboxDriver) -> None:
    body = await bot.post_lead(**JIANGSU_LEAD)
    first = body["owner"]
    await bot.click(first, (await bot.cards(first))[0], "转派")
    view = await (await bot.client.get(f"/api/leads/{body['lead_id']}")).json()
    assert view["owner"] in EAST_REPS - {first}
    assert view["status"] == "assigned"
    assert (await bot.cards(first))[0]["status"].startswith("已转派")
    assert len(await bot.cards(view["owner"])) == 1


async def test_followup_typed_in_chat_is_confirmed_and_linked_to_the_lead(bot: SandboxDriver) -> None:
    body = await bot.post_lead(**JIANGSU_LEAD)
    owner = body["owner"]
    await bot.click(owner, (await bot.cards(owner))[0], "接受")
    await bot.push(owner, "今天和恒锐精密王总通了电话，下周三去现场看产线，需要带压装机样本")
    card = (await bot.cards(owner))[-1]
    assert card["title"] == "请确认跟进记录"
    fields = dict(card["fields"])
    assert "恒锐" in fields["客户"] and "3月18日" in fields["事件与日期"]
    await bot.click(owner, card, "确认")
    assert (await bot.cards(owner))[-1]["status"].startswith("已记录")

    rows = await bot.gateway.db.run(lambda s: list(s.execute(select(FollowUp)).scalars()))
    assert len(rows) == 1 and rows[0].lead_id == body["lead_id"] and rows[0].status in ("confirmed", "awaiting_next")
    lead = await bot.gateway.db.run(lambda s: s.get(Lead, body["lead_id"]))
    assert lead.last_interaction_at is not None


async def test_unclear_followup_asks_which_lead(bot: SandboxDriver) -> None:
    a = await bot.post_lead(**JIANGSU_LEAD)
    owner = a["owner"]
    # Give the same rep a second lead by posting until the rotation comes back.
    second = None
    for i in range(8):
        b = await bot.post_lead(**{**JIANGSU_LEAD, "company": f"无锡海川传感{i}", "phone": f"1380000000{i}", "contact": "赵刚"})
        if b["owner"] == owner:
            second = b
            break
    assert second is not None
    await bot.push(owner, "客户说价格再考虑一下")
    ask = (await bot.cards(owner))[-1]
    assert ask["title"] == "请确认跟进记录"
    labels = [x["label"] for x in ask["actions"]]
    assert "新建客户" in labels and "不是客户沟通" in labels
    pick = next(x for x in ask["actions"] if "海川" in x["label"])
    await bot.click(owner, ask, pick["label"])
    rows = await bot.gateway.db.run(lambda s: list(s.execute(select(FollowUp)).scalars()))
    assert [(r.lead_id, r.status in ("confirmed", "awaiting_next")) for r in rows] == [(second["lead_id"], True)]


async def test_bad_leads_get_400_with_chinese_reason_and_nothing_written(bot: SandboxDriver) -> None:
    cases = [
        ({**JIANGSU_LEAD, "company": ""}, "company"),
        ({k: v for k, v in JIANGSU_LEAD.items() if k != "phone"}, "phone"),
        ({**JIANGSU_LEAD, "phone": "12345"}, "phone"),
        ({**JIANGSU_LEAD, "province": "火星"}, "province"),
        ({**JIANGSU_LEAD, "budget": "很多"}, "budget"),
        ({**JIANGSU_LEAD, "source": "天上掉的"}, "source"),
    ]
    for payload, field in cases:
        resp = await bot.client.post("/api/leads", json=payload)
        assert resp.status == 400
        body = await resp.json()
        assert field in body["fields"], body
        assert any("\u4e00" <= ch <= "\u9fff" for ch in body["fields"][field])
    for raw in (b"not json", b"[1,2]", b"\xff\xfe", b'{"company": '):
        resp = await bot.client.post("/api/leads", data=raw, headers={"Content-Type": "application/json"})
        assert resp.status == 400
        assert "JSON" in (await resp.json())["error"]
    counts = await bot.gateway.db.run(
        lambda s: (s.execute(select(func.count()).select_from(Lead)).scalar_one(), s.execute(select(func.count()).select_from(OutboxMessage)).scalar_one())
    )
    assert counts == (0, 0)


async def test_duplicate_sandbox_message_is_handled_once(bot: SandboxDriver) -> None:
    for _ in range(3):
        resp = await bot.client.post("/sandbox/api/send", json={"user": "zhangwei", "text": "帮助", "client_msg_id": "m-1"})
        assert resp.status == 200
    await bot.drain()
    replies = [m for m in await bot.messages("zhangwei") if m["from"] == "bot"]
    assert len(replies) == 1 and "leadbot" in replies[0]["text"]


async def test_forged_button_is_refused(bot: SandboxDriver) -> None:
    body = await bot.post_lead(**JIANGSU_LEAD)
    owner = body["owner"]
    card = (await bot.cards(owner))[0]
    forged = card["actions"][0]["action"].replace("accept", "invalid", 1)
    resp = await bot.client.post("/sandbox/api/action", json={"user": owner, "card_id": card["card_id"], "action": forged})
    assert resp.status == 200
    await bot.drain()
    assert "无效或已过期" in await bot.last_text(owner)
    view = await (await bot.client.get(f"/api/leads/{body['lead_id']}")).json()
    assert view["status"] == "assigned"


async def test_sandbox_rejects_malformed_requests(bot: SandboxDriver) -> None:
    for path, payload in (
        ("/sandbox/api/send", {"user": "nobody", "text": "hi"}),
        ("/sandbox/api/send", {"user": "zhangwei", "text": ""}),
        ("/sandbox/api/action", {"user": "zhangwei"}),
    ):
        resp = await bot.client.post(path, json=payload)
        assert resp.status == 400
    resp = await bot.client.post("/sandbox/api/send", data=b"\x00garbage")
    assert resp.status == 400
    # Deeply nested JSON exhausts the decoder's stack: still a 400, never a 500.
    resp = await bot.client.post("/sandbox/api/send", data=b"[" * 100_000)
    assert resp.status == 400
    resp = await bot.client.post("/sandbox/api/send", data=b'{"user": "zhangwei", "text": "' + b"a" * 300_000 + b'"}')
    assert resp.status == 413
    resp = await bot.client.get("/sandbox/api/messages", params={"user": "nobody"})
    assert resp.status == 400
    resp = await bot.client.get("/api/leads/abc")
    assert resp.status == 400
    resp = await bot.client.get("/api/leads/999")
    assert resp.status == 404


async def test_acknowledged_events_survive_a_restart(bot: SandboxDriver, aiohttp_client, settings, clock) -> None:  # type: ignore[no-untyped-def]
    # Ingest without handling (the process "dies" before the dispatcher runs).
    resp = await bot.client.post("/sandbox/api/send", json={"user": "lina", "text": "帮助"})
    assert resp.status == 200
    from bot.app import create_app

    second = await aiohttp_client(create_app(settings, clock=clock, start_workers=False))
    await second.app[GATEWAY].drain()
    msgs = (await (await second.get("/sandbox/api/messages", params={"user": "lina"})).json())["messages"]
    assert [m["from"] for m in msgs] == ["user", "bot"]


async def test_healthz_and_metrics(bot: SandboxDriver) -> None:
    resp = await bot.client.get("/healthz")
    assert resp.status == 200 and (await resp.json())["status"] == "ok"
    await bot.post_lead(**JIANGSU_LEAD)
    text = await (await bot.client.get("/metrics")).text()
    assert 'leadbot_outbox_messages{status="sent"} 1' in text


async def test_outbox_payload_is_the_neutral_card(bot: SandboxDriver) -> None:
    await bot.post_lead(**JIANGSU_LEAD)
    rows = await bot.gateway.db.run(lambda s: list(s.execute(select(OutboxMessage)).scalars()))
    assert len(rows) == 1
    payload = json.loads(rows[0].payload)
    assert payload["card"]["title"].startswith("新线索")
