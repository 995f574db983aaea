"""Managers in chat: re-assign a lead by hand, see the lead pool (issue 5)."""

from __future__ import annotations

from tests.conftest import JIANGSU_LEAD, SandboxDriver


async def test_manager_reassigns_a_lead_in_chat(bot: SandboxDriver) -> None:
    body = await bot.post_lead(**JIANGSU_LEAD)
    first = body["owner"]
    target = next(r for r in ("zhangwei", "lina", "wangqiang") if r != first)
    names = {"zhangwei": "张伟", "lina": "李娜", "wangqiang": "王强"}
    await bot.push("chenjing", f"把线索 {body['lead_id']} 转给{names[target]}")
    assert f"转给{names[target]}" in await bot.last_text("chenjing")
    assert (await bot.cards(first))[0]["status"].startswith("已由陈静转派给")
    new_card = (await bot.cards(target))[-1]
    assert [a["label"] for a in new_card["actions"]] == ["接受", "转派", "无效"]
    await bot.click(target, new_card, "接受")
    view = await (await bot.client.get(f"/api/leads/{body['lead_id']}")).json()
    assert (view["owner"], view["status"], view["rule"]) == (target, "accepted", "manager")


async def test_reps_and_other_regions_cannot(bot: SandboxDriver) -> None:
    body = await bot.post_lead(**JIANGSU_LEAD)
    await bot.push("zhangwei", f"把线索 {body['lead_id']} 转给李娜")
    assert "只对经理开放" in await bot.last_text("zhangwei")
    await bot.push("huangwei", f"把线索 {body['lead_id']} 转给刘洋")
    assert "没有找到您区域内的线索" in await bot.last_text("huangwei")


async def test_lead_pool_view(bot: SandboxDriver) -> None:
    await bot.post_lead(**JIANGSU_LEAD)
    bot.gateway.ctx.clock.advance(hours=3)  # type: ignore[attr-defined]
    await bot.push("chenjing", "线索池")
    card = (await bot.cards("chenjing"))[-1]
    assert card["title"] == "线索池"
    assert dict(card["fields"]) == {"华东": "待分配 0 · 待接受 1 · 已超时 1"}
