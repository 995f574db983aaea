"""Amount answers at a stage gate that are not amounts a company could quote.

Found by fuzzing (fuzz/corpus/chat_commands/regress-stage-amount-*): ``9e999999`` raised
decimal.Overflow, ``NaN`` raised InvalidOperation (the rep got the generic error reply
instead of being asked again), and ``9e999992`` held the worker for tens of seconds
building a million-digit integer. The rep now gets a Chinese answer that says what to
write, and the stage does not move.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.keys import GATEWAY
from handlers.stages import MAX_AMOUNT_YUAN, StageField, parse_answer
from store.models import Opportunity
from tests.conftest import JIANGSU_LEAD, SandboxDriver

NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
QUOTE = StageField("报价金额", "amount")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        ("9e999999", "金额过大（上限 1 万亿元）"),
        ("9e999992", "金额过大（上限 1 万亿元）"),
        ("1000000000001", "金额过大"),
        ("NaN", "没能识别金额"),
        ("-NaN", "没能识别金额"),
        ("sNaN", "没能识别金额"),
        ("Infinity", "没能识别金额"),
        ("-5", "金额不能为负数"),
    ],
)
def test_amounts_no_one_quotes_are_asked_again(answer: str, hint: str) -> None:
    value, reply = parse_answer(QUOTE, answer, NOW)
    assert value is None and hint in reply


def test_the_largest_amount_taken_is_one_trillion_yuan() -> None:
    assert parse_answer(QUOTE, str(MAX_AMOUNT_YUAN), NOW) == (100_000_000_000_000, "")
    assert parse_answer(QUOTE, "48.5万", NOW) == (48_500_000, "")


async def test_the_rep_is_asked_for_a_sensible_amount_and_the_stage_waits(bot: SandboxDriver) -> None:
    body = await bot.post_lead(**JIANGSU_LEAD)
    owner = body["owner"]
    await bot.click(owner, (await bot.cards(owner))[0], "接受")
    for stage, answer in (("需求诊断", "痛点：节拍；决策人：王总"), ("方案发送", None), ("异议处理", None), ("下次联系", "下周三")):
        await bot.push(owner, f"恒锐 进入 {stage}")
        if answer:
            await bot.push(owner, answer)
    await bot.push(owner, "恒锐 进入 报价")
    assert "报价金额" in await bot.last_text(owner)

    await bot.push(owner, "9e999992")
    assert "金额过大（上限 1 万亿元），请填写一个合理的金额" in await bot.last_text(owner)
    await bot.push(owner, "NaN")
    assert "没能识别金额" in await bot.last_text(owner)
    db = bot.client.app[GATEWAY].db
    opp = await db.run(lambda s: s.execute(select(Opportunity)).scalars().one())
    assert opp.stage == "下次联系" and opp.amount_fen == 60_000_000  # still the lead's budget (60万)

    await bot.push(owner, "48.5万")
    assert "已进入「报价」" in await bot.last_text(owner)
    opp = await db.run(lambda s: s.execute(select(Opportunity)).scalars().one())
    assert opp.amount_fen == 48_500_000
