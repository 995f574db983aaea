"""Issue 4 in the sandbox: a note or forwarded chat becomes a confirmed record, with edits,
opportunities, the missing next step, and customer questions."""

from __future__ import annotations

import json
from datetime import date

from sqlalchemy import select

from store.models import Contact, Customer, FollowUp, Lead, Opportunity
from tests.conftest import JIANGSU_LEAD, SandboxDriver

FORWARD = """顾海峰 10:32
你好，我们是台州瑞丰阀门有限公司的，想问下DN200的高压球阀
我 10:35
顾总您好，可以的，方便留个电话吗
顾海峰 10:36
13857601234，下周二上午可以来厂里看一下，预算在30万左右"""


async def _accepted_lead(bot: SandboxDriver) -> tuple[str, int]:
    body = await bot.post_lead(**JIANGSU_LEAD)
    owner = body["owner"]
    await bot.click(owner, (await bot.cards(owner))[0], "接受")
    return owner, body["lead_id"]


async def test_forwarded_chat_from_a_new_customer_becomes_a_lead(bot: SandboxDriver) -> None:
    await bot.push("zhangwei", FORWARD)
    card = (await bot.cards("zhangwei"))[-1]
    fields = dict(card["fields"])
    assert card["title"] == "请确认跟进记录"
    assert "台州瑞丰阀门有限公司" in fields["客户"]
    assert "顾" in fields["联系人"]
    assert "30万" in fields["金额"]
    assert "3月17日" in fields["事件与日期"]  # 下周二 from Tuesday 2026-03-10
    await bot.click("zhangwei", card, "新建客户")

    def load(s):  # type: ignore[no-untyped-def]
        lead = s.execute(select(Lead)).scalars().one()
        customer = s.get(Customer, lead.customer_id)
        people = list(s.execute(select(Contact)).scalars())
        note = s.execute(select(FollowUp)).scalars().one()
        return lead, customer, people, note

    lead, customer, people, note = await bot.gateway.db.run(load)
    assert (lead.source, lead.owner_id, lead.status) == ("微信转发", "zhangwei", "accepted")
    assert customer.next_contact_on == date(2026, 3, 17)
    assert customer.budget_fen == 30_000_000
    assert [(p.name, p.phone_norm) for p in people] == [("顾海峰", "13857601234")]
    assert note.lead_id == lead.id and note.confirmed_at is not None


async def test_edit_in_plain_words_then_confirm(bot: SandboxDriver) -> None:
    owner, lead_id = await _accepted_lead(bot)
    await bot.push(owner, "恒锐王总说下周三来公司谈，带上压装机资料")
    card = (await bot.cards(owner))[-1]
    assert "3月18日" in dict(card["fields"])["事件与日期"]
    await bot.click(owner, card, "修改")
    assert "日期改成下周五" in await bot.last_text(owner)
    await bot.push(owner, "日期改成下周五")
    cards = await bot.cards(owner)
    assert cards[-2]["status"] == "已更新，见下方新卡片"
    fresh = cards[-1]
    assert "3月20日" in dict(fresh["fields"])["事件与日期"] and "3月18日" not in dict(fresh["fields"])["事件与日期"]
    await bot.click(owner, fresh, "确认")
    note = await bot.gateway.db.run(lambda s: s.execute(select(FollowUp)).scalars().one())
    assert note.next_contact_on == date(2026, 3, 20) and note.lead_id == lead_id


async def test_not_a_customer_conversation_is_discarded(bot: SandboxDriver) -> None:
    owner, _ = await _accepted_lead(bot)
    await bot.push(owner, "恒锐那边下午开会，晚上聚餐别忘了")
    await bot.click(owner, (await bot.cards(owner))[-1], "不是客户沟通")
    note = await bot.gateway.db.run(lambda s: s.execute(select(FollowUp)).scalars().one())
    assert note.status == "discarded"
    assert (await bot.cards(owner))[-1]["status"].startswith("已忽略")


async def test_signing_intent_offers_one_tap_opportunity(bot: SandboxDriver) -> None:
    owner, lead_id = await _accepted_lead(bot)
    await bot.push(owner, "恒锐王总确认了，合同总价68万，下周一签合同，我这周把合同范本发过去")
    card = (await bot.cards(owner))[-1]
    assert "签约意向" in dict(card["fields"])["意向"]
    await bot.click(owner, card, "确认")
    offer = (await bot.cards(owner))[-1]
    assert offer["title"] == "检测到签约意向，要建商机吗？"
    await bot.click(owner, offer, "一键建商机")
    opp = await bot.gateway.db.run(lambda s: s.execute(select(Opportunity)).scalars().one())
    assert (opp.lead_id, opp.owner_id, opp.amount_fen) == (lead_id, owner, 68_000_000)
    assert "已建商机" in await bot.last_text(owner)
    await bot.click(owner, offer, "一键建商机")
    assert len(await bot.gateway.db.run(lambda s: list(s.execute(select(Opportunity)).scalars()))) == 1


async def test_missing_next_step_is_asked_once(bot: SandboxDriver) -> None:
    owner, _ = await _accepted_lead(bot)
    await bot.push(owner, "恒锐王总说设备运行稳定，挺满意的")
    await bot.click(owner, (await bot.cards(owner))[-1], "确认")
    assert "下一步打算做什么" in await bot.last_text(owner)
    await bot.push(owner, "月底回访一次")
    note = await bot.gateway.db.run(lambda s: s.execute(select(FollowUp)).scalars().one())
    assert json.loads(note.fields_json)["next_action"] == "月底回访一次"
    assert note.status == "confirmed"


async def test_ask_about_a_customer_in_plain_words(bot: SandboxDriver) -> None:
    owner, _ = await _accepted_lead(bot)
    await bot.push(owner, "恒锐最近怎么样")
    card = (await bot.cards(owner))[-1]
    fields = dict(card["fields"])
    assert card["title"] == "苏州恒锐精密机械有限公司"
    assert fields["阶段"] == "线索 · 跟进中"
    # Another region's rep cannot see it.
    await bot.push("liuyang", "查一下恒锐")
    assert "没有在您名下找到" in await bot.last_text("liuyang")
    assert not any(c["title"] == "苏州恒锐精密机械有限公司" for c in await bot.cards("liuyang"))
