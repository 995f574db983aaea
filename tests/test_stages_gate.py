"""Stages in the sandbox: post a lead, accept, move stages by chat and by card, the gate
asks for exactly what is missing and moves the stage when the answers arrive."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from bot.keys import GATEWAY
from nlp.calendar import SHANGHAI
from store.models import AuditEvent, Opportunity
from tests.conftest import JIANGSU_LEAD, SandboxDriver


async def _accepted(bot: SandboxDriver) -> tuple[str, int]:
    body = await bot.post_lead(**JIANGSU_LEAD)
    owner = body["owner"]
    await bot.click(owner, (await bot.cards(owner))[0], "接受")
    return owner, body["lead_id"]


def _texts(messages: list[dict]) -> list[str]:
    return [m["text"] for m in messages if m["from"] == "bot" and "card" not in m]


async def _opp(bot: SandboxDriver) -> Opportunity:
    db = bot.client.app[GATEWAY].db
    return await db.run(lambda s: s.execute(select(Opportunity)).scalars().one())


async def test_gate_asks_for_missing_fields_then_moves(bot: SandboxDriver) -> None:
    owner, lead_id = await _accepted(bot)
    await bot.push(owner, "恒锐 进入 需求诊断")
    ask = await bot.last_text(owner)
    # The lead's budget (60万) is already known: only 痛点 and 决策人 are asked, 痛点 first.
    assert "还需要 2 项信息" in ask and "痛点" in ask and "决策人" in ask and "预算" not in ask.split("\n")[0]
    assert "最头疼" in ask
    opp = await _opp(bot)
    assert opp.stage == "首通电话" and opp.lead_id == lead_id

    await bot.push(owner, "压装精度不稳定，返工多")
    nxt = await bot.last_text(owner)
    assert "还差 1 项" in nxt and "拍板" in nxt
    assert (await _opp(bot)).stage == "首通电话"

    await bot.push(owner, "设备科王主任")
    done = await bot.last_text(owner)
    assert "已进入「需求诊断」" in done
    opp = await _opp(bot)
    assert opp.stage == "需求诊断"
    # 16 business hours (9:00–18:00) from Tuesday 10:00: 8 on Tuesday, 8 on Wednesday.
    assert opp.stage_due_at == datetime(2026, 3, 11, 17, 0, tzinfo=SHANGHAI)

    resp = await bot.client.get(f"/api/opportunities/{opp.id}")
    view = await resp.json()
    assert view["stage"] == "需求诊断"
    assert view["fields"] == {"痛点": "压装精度不稳定，返工多", "决策人": "设备科王主任", "预算": 60000000}
    assert [a["action"] for a in view["audit"]] == ["created", "stage_requested", "stage_changed"]
    # The manager (陈静) is told by template.
    manager_texts = _texts(await bot.messages("chenjing"))
    assert any("进入需求诊断" in t and "压装精度" in t and "王主任" in t for t in manager_texts)


async def test_skipping_is_refused_politely_and_nothing_changes(bot: SandboxDriver) -> None:
    owner, _ = await _accepted(bot)
    await bot.push(owner, "恒锐 进入 报价")
    text = await bot.last_text(owner)
    assert "不能跳过" in text and "需求诊断" in text
    assert (await _opp(bot)).stage == "首通电话"
    await bot.push(owner, "恒锐 签约")
    assert "签约前需要先走完「报价」" in await bot.last_text(owner)


async def test_labelled_answers_fill_several_fields_at_once_and_cancel_works(bot: SandboxDriver) -> None:
    owner, _ = await _accepted(bot)
    await bot.push(owner, "恒锐 进入 需求诊断")
    await bot.push(owner, "取消")
    assert "已取消" in await bot.last_text(owner)
    # After cancelling, a plain message is a follow-up note again (a card comes back).
    before = len(await bot.cards(owner))
    await bot.push(owner, "恒锐王总说下周来厂里看设备")
    assert len(await bot.cards(owner)) == before + 1

    await bot.push(owner, "恒锐 进入 需求诊断")
    await bot.push(owner, "痛点：节拍跟不上；决策人：王总")
    assert "已进入「需求诊断」" in await bot.last_text(owner)


async def test_wrong_answer_is_asked_again_and_quote_amount_becomes_deal_amount(bot: SandboxDriver) -> None:
    owner, _ = await _accepted(bot)
    for stage, answer in (("需求诊断", "痛点：节拍；决策人：王总"), ("方案发送", None), ("异议处理", None), ("下次联系", "下周三")):
        await bot.push(owner, f"恒锐 进入 {stage}")
        if answer:
            await bot.push(owner, answer)
        assert f"已进入「{stage}」" in await bot.last_text(owner), stage
    opp = await _opp(bot)
    assert opp.stage_due_at == datetime(2026, 3, 18, 9, 0, tzinfo=SHANGHAI)  # the morning of 下周三
    await bot.push(owner, "恒锐 进入 报价")
    assert "报价金额" in await bot.last_text(owner)
    await bot.push(owner, "还在算")
    assert "没能识别金额" in await bot.last_text(owner)
    await bot.push(owner, "48.5万")
    assert "已进入「报价」" in await bot.last_text(owner)
    opp = await _opp(bot)
    assert opp.amount_fen == 48500000
    assert any("进入方案报价，金额 48.5万" in t for t in _texts(await bot.messages("chenjing")))
    await bot.push(owner, "恒锐 签约")
    assert "已签约，金额 48.5万" in await bot.last_text(owner)
    await bot.push(owner, "恒锐 进入 报价")
    assert "不能再变更阶段" in await bot.last_text(owner)


async def test_lost_needs_a_reason_and_takes_it_from_the_command(bot: SandboxDriver) -> None:
    owner, _ = await _accepted(bot)
    await bot.push(owner, "恒锐 进入 需求诊断")
    await bot.push(owner, "取消")
    await bot.push(owner, "恒锐 输单 原因：选了竞品，价格低两成")
    assert "已记录" in await bot.last_text(owner) and "选了竞品" in await bot.last_text(owner)
    assert (await _opp(bot)).stage == "输单"


async def test_override_is_for_managers_and_audited(bot: SandboxDriver) -> None:
    owner, _ = await _accepted(bot)
    await bot.push(owner, "恒锐 强制进入 报价 原因：客户口头确认")
    assert "需要经理" in await bot.last_text(owner)
    await bot.push(owner, "商机 恒锐")  # the deal exists; the manager can see it in their region
    await bot.push("chenjing", "恒锐 强制进入 报价")
    assert "需要写明原因" in await bot.last_text("chenjing")
    await bot.push("chenjing", "恒锐 强制进入 报价 原因：客户口头确认需求，补录")
    assert "已进入「报价」" in await bot.last_text("chenjing")
    db = bot.client.app[GATEWAY].db
    rows = await db.run(lambda s: list(s.execute(select(AuditEvent).where(AuditEvent.action == "stage_override")).scalars()))
    assert len(rows) == 1 and rows[0].actor == "chenjing" and "补录" in rows[0].detail


async def test_stage_card_buttons_use_the_same_gate(bot: SandboxDriver) -> None:
    owner, _ = await _accepted(bot)
    await bot.push(owner, "商机 恒锐")
    card = (await bot.cards(owner))[-1]
    assert "【首通电话】" in card["text"]
    assert [a["label"] for a in card["actions"]] == ["推进到需求诊断", "输单"]
    await bot.click(owner, card, "推进到需求诊断")
    assert "还需要 2 项信息" in await bot.last_text(owner)
    await bot.push(owner, "节拍跟不上")
    await bot.push(owner, "王总")
    assert (await _opp(bot)).stage == "需求诊断"
    # Someone else pressing the card is told it is not theirs.
    await bot.click("lina" if owner != "lina" else "zhangwei", card, "输单")
    assert (await _opp(bot)).stage == "需求诊断"


async def test_notes_with_stage_words_stay_notes(bot: SandboxDriver) -> None:
    owner, _ = await _accepted(bot)
    before = len(await bot.cards(owner))
    await bot.push(owner, "恒锐王总说项目进入试产阶段了，下周签约")
    assert len(await bot.cards(owner)) == before + 1  # a follow-up confirmation card
    db = bot.client.app[GATEWAY].db
    assert await db.run(lambda s: s.execute(select(Opportunity)).first()) is None
