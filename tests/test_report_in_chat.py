"""A manager asks for a report in the sandbox chat and gets a card with its chart."""

from __future__ import annotations

import base64

from tests.conftest import JIANGSU_LEAD, SandboxDriver


async def test_manager_gets_a_chart_card_and_a_rep_is_refused(bot: SandboxDriver) -> None:
    await bot.post_lead(**JIANGSU_LEAD)
    await bot.push("chenjing", "报表 本周")
    card = (await bot.cards("chenjing"))[-1]
    assert "<img" in card["html"] and "data:image/png;base64," in card["html"]
    png = base64.b64decode(card["html"].split("data:image/png;base64,", 1)[1].split('"', 1)[0])
    assert png.startswith(b"\x89PNG") and len(png) < 1_000_000
    await bot.push("zhangwei", "报表")
    assert "经理" in await bot.last_text("zhangwei")
