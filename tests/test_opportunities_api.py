"""Opportunities over HTTP and chat: one-tap creation sets the stage clock, the API view,
scores by API, the scheduler sees stage deadlines, decision chains from chat."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from bot.keys import GATEWAY
from handlers.decision_chain import parse_statement
from nlp.calendar import SHANGHAI
from scheduler.scans import scan_stage_due
from store.models import Contact, Opportunity
from store.models_sales import DecisionLink
from tests.conftest import JIANGSU_LEAD, SandboxDriver


async def _accepted(bot: SandboxDriver) -> tuple[str, int]:
    body = await bot.post_lead(**JIANGSU_LEAD)
    owner = body["owner"]
    await bot.click(owner, (await bot.cards(owner))[0], "接受")
    return owner, body["lead_id"]


async def test_one_tap_opportunity_from_a_follow_up_has_a_stage_deadline(bot: SandboxDriver) -> None:
    owner, lead_id = await _accepted(bot)
    await bot.push(owner, "恒锐王总说价格没问题，准备签合同，预算60万，下周三来厂里")
    card = (await bot.cards(owner))[-1]
    await bot.click(owner, card, "确认")
    offer = next(c for c in reversed(await bot.cards(owner)) if c["title"].startswith("检测到签约意向"))
    await bot.click(owner, offer, "一键建商机")
    assert "已建商机" in await bot.last_text(owner)
    db = bot.client.app[GATEWAY].db
    opp = await db.run(lambda s: s.execute(select(Opportunity)).scalars().one())
    assert opp.stage == "首通电话" and opp.lead_id == lead_id
    # 4 business hours from 10:00 (the clock of the first stage).
    assert opp.stage_due_at == datetime(2026, 3, 10, 14, 0, tzinfo=SHANGHAI)
    view = await (await bot.client.get(f"/api/opportunities/{opp.id}")).json()
    assert view["amount_fen"] == 60000000 and view["stage_due_at"].startswith("2026-03-10T06:00")
    assert view["audit"][0]["action"] == "created" and "一键建档" in view["audit"][0]["detail"]


async def test_api_create_view_and_errors(bot: SandboxDriver) -> None:
    owner, lead_id = await _accepted(bot)
    resp = await bot.client.post("/api/opportunities", json={"lead_id": lead_id, "amount": "48万", "expected_close_on": "2026-06-30"})
    assert resp.status == 201
    body = await resp.json()
    assert body["owner"] == owner and body["amount_fen"] == 48000000 and body["stage"] == "首通电话"
    assert body["stages"][0] == "首通电话" and body["expected_close_on"] == "2026-06-30"
    assert (await bot.client.get("/api/opportunities/999")).status == 404
    assert (await bot.client.get("/api/opportunities/abc")).status == 400
    assert (await bot.client.post("/api/opportunities", data=b"{bad")).status == 400
    assert (await bot.client.post("/api/opportunities", json={"lead_id": lead_id, "amount": "很多"})).status == 400
    assert (await bot.client.post("/api/opportunities", json={"name": "x"})).status == 400


async def test_scheduler_sees_the_stage_deadline(bot: SandboxDriver) -> None:
    owner, _ = await _accepted(bot)
    await bot.push(owner, "商机 恒锐")
    gateway = bot.client.app[GATEWAY]
    due = await gateway.db.run(lambda s: s.execute(select(Opportunity.stage_due_at)).scalar_one())
    assert due == datetime(2026, 3, 10, 14, 0, tzinfo=SHANGHAI)
    before = await gateway.db.run(lambda s: scan_stage_due(s, gateway.ctx, due - timedelta(minutes=1)))
    after = await gateway.db.run(lambda s: scan_stage_due(s, gateway.ctx, due + timedelta(minutes=1)))
    assert before == [] and len(after) == 1 and after[0].member_id == owner


async def test_scores_by_api_and_health_card_in_chat(bot: SandboxDriver) -> None:
    owner, lead_id = await _accepted(bot)
    resp = await bot.client.post("/api/scoring/facts", json={"entity": "lead", "id": lead_id, "facts": {"微信互动次数": 12, "官网停留分钟": 4}})
    assert resp.status == 200 and await resp.json() == {"score": "4.1", "tier": "B"}
    bad = await bot.client.post("/api/scoring/facts", json={"entity": "lead", "id": lead_id, "facts": {"微信互动": 1}})
    assert bad.status == 400 and "微信互动次数" in (await bad.json())["error"]
    assert (await bot.client.post("/api/scoring/facts", json={"entity": "lead", "id": 999, "facts": {}})).status == 404
    health = await (await bot.client.get("/api/customers/1/health")).json()
    assert health["score"] == 10 and health["tier"] == "暂缓" and len(health["terms"]) == 5
    await bot.push(owner, "恒锐 健康分")
    card = (await bot.cards(owner))[-1]
    assert card["title"].startswith("苏州恒锐精密机械有限公司 · 健康分 10（暂缓）")
    assert ["未结工单>0 不成立", "+10"] in card["fields"]


async def test_rules_reload_without_a_file_keeps_the_rules(bot: SandboxDriver) -> None:
    resp = await bot.client.post("/api/rules/reload")
    body = await resp.json()
    assert resp.status == 409 and not body["ok"] and "仍在使用上一版有效规则" in body["message"]
    await bot.push("zhangwei", "重新加载规则")
    assert "需要管理员" in await bot.last_text("zhangwei")
    await bot.push("admin", "重新加载规则")
    assert "仍在使用上一版有效规则" in await bot.last_text("admin")


def test_decision_statements_from_chat() -> None:
    said = parse_statement("王主任说了算，李主任管技术")
    assert said.weights == {"王主任": 90, "李主任": 60} and said.links == (("李主任", "王主任"),)
    explicit = parse_statement("设备科王主任 → 影响 → 检验科李主任")
    assert explicit.links == (("设备科王主任", "检验科李主任"),) and explicit.weights == {}
    assert parse_statement("张总权重70，小刘只是传话，周工说了不算").weights == {"张总": 70, "周工": 10}


async def test_decision_chain_card_from_chat(bot: SandboxDriver) -> None:
    owner, _ = await _accepted(bot)
    await bot.push(owner, "恒锐 决策链：设备科王主任说了算，检验科李主任管技术")
    card = (await bot.cards(owner))[-1]
    assert card["title"].endswith("· 决策链")
    lines = card["text"].split("\n")
    assert lines[0] == "设备科王主任 · 权重 90"
    assert lines[1] == "└─ 影响 → 检验科李主任（技术） · 权重 60"
    await bot.push(owner, "恒锐 决策链：张总 影响 王主任")
    text = (await bot.cards(owner))[-1]["text"]
    assert "张总" in text and text.count("设备科王主任") == 1  # 王主任 is the same person
    db = bot.client.app[GATEWAY].db
    assert await db.run(lambda s: len(s.execute(select(DecisionLink)).all())) == 2
    assert await db.run(lambda s: len(s.execute(select(Contact)).all())) == 3
    await bot.push(owner, "恒锐 决策链：随便说说")
    assert "没能看懂" in await bot.last_text(owner)
