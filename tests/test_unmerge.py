"""Un-merging a lead that de-duplication wrongly joined to an existing customer (issue 5)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from bot.app import create_app
from bot.config import parse
from handlers.context import FakeClock
from handlers.dedupe import without_merge_note
from handlers.merges import DEFAULT_REASON, parse_split
from store.models import AuditEvent, Customer, FollowUp, Lead, Opportunity
from tests.conftest import JIANGSU_LEAD, TEMPLATE, SandboxDriver

NAMES = {"zhangwei": "张伟", "lina": "李娜", "wangqiang": "王强"}
# Same normalised company key as JIANGSU_LEAD ("恒锐精密机械"), another factory: a wrong merge.
WUXI_LEAD = {**JIANGSU_LEAD, "company": "恒锐精密机械（无锡）有限公司", "contact": "钱多多", "phone": "13700001111",
             "city": "无锡市", "industry": "光伏", "budget": "20万", "note": "问激光打标机"}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("拆分线索 12", (12, DEFAULT_REASON)),
        ("拆分线索#12 无锡那家是另一个工厂", (12, "无锡那家是另一个工厂")),
        ("拆开线索 １２，名字像而已。", (12, "名字像而已")),
        ("把线索 7 拆分出来", (7, DEFAULT_REASON)),
        ("线索 12 不是同一家", (12, "不是同一家")),
        ("线索12不是同一家公司，只是重名", (12, "不是同一家公司，只是重名")),
        ("拆分线索", None),
        ("线索 12 转给张伟", None),
        ("拆分线索 abc", None),
    ],
)
def test_split_command_grammar(text: str, expected: tuple[int, str] | None) -> None:
    assert parse_split(text) == expected


def test_merge_note_is_taken_out_of_an_explanation() -> None:
    chain = "老客户再次咨询：公司名「恒锐精密机械」与客户 #1 相同 · 华东池 · 江苏 → 轮转 · 你今日剩余额度 4"
    assert without_merge_note(chain) == "华东池 · 江苏 → 轮转 · 你今日剩余额度 4"
    assert without_merge_note("老客户再次咨询：电话「139****5678」与客户 #1 相同 · 老客户再次咨询 → 原负责人 张伟") == ""


async def _view(bot: SandboxDriver, lead_id: int) -> dict[str, Any]:
    resp = await bot.client.get(f"/api/leads/{lead_id}")
    assert resp.status == 200
    return await resp.json()


async def _merged_pair(bot: SandboxDriver, *, accept_second: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """Lead A (accepted, its customer) and lead B, merged into A's customer and routed to A's rep."""
    a = await bot.post_lead(**JIANGSU_LEAD)
    owner = a["owner"]
    await bot.click(owner, (await bot.cards(owner))[0], "接受")
    b = await bot.post_lead(**WUXI_LEAD)
    assert b["owner"] == owner
    card = (await bot.cards(owner))[-1]
    assert card["title"] == f"新线索 #{b['lead_id']} · {WUXI_LEAD['company']}" and "老客户再次咨询" in card["text"]
    if accept_second:
        await bot.click(owner, card, "接受")
    return a, b


def _seed_records(session: Session, a: int, b: int) -> None:
    """A follow-up and an opportunity on each lead, as chat would have recorded them."""
    customer = session.get(Lead, a).customer_id  # type: ignore[union-attr]
    now = session.get(Lead, b).created_at  # type: ignore[union-attr]
    for lead_id, text in ((a, "恒锐苏州：压装机报价"), (b, "无锡钱总：打标机下周演示")):
        session.add(FollowUp(lead_id=lead_id, customer_id=customer, member_id="zhangwei", text=text, status="confirmed",
                             next_contact_on=date(2026, 3, 20 if lead_id == b else 16), created_at=now, confirmed_at=now))
        session.add(Opportunity(lead_id=lead_id, customer_id=customer, owner_id="zhangwei", name=text, amount_fen=100_00,
                                created_at=now, updated_at=now))
    row = session.get(Customer, customer)
    assert row is not None
    row.next_contact_on = date(2026, 3, 20)  # set by lead B's follow-up, the latest one
    session.add(row)


async def test_manager_splits_a_wrong_merge_in_chat(bot: SandboxDriver) -> None:
    a, b = await _merged_pair(bot)
    owner, lead_a, lead_b = a["owner"], a["lead_id"], b["lead_id"]
    # A later enquiry joined through lead B's phone: the split points at it.
    c = await bot.post_lead(**{**WUXI_LEAD, "contact": "孙会计", "note": "再问价"})
    await bot.gateway.db.run(lambda s: _seed_records(s, lead_a, lead_b))
    old_customer = (await bot.gateway.db.run(lambda s: s.get(Lead, lead_a))).customer_id

    await bot.push("chenjing", "合并记录")
    listing = await bot.last_text("chenjing")
    assert f"线索 #{lead_b} {WUXI_LEAD['company']}：公司名「恒锐精密机械」与客户 #{old_customer}相同（线索 #{lead_a}）" in listing
    assert "拆分线索 编号" in listing

    await bot.push("chenjing", f"拆分线索 {lead_b} 无锡那家是另一个工厂")
    reply = await bot.last_text("chenjing")
    view = await _view(bot, lead_b)
    new_owner = view["owner"]
    assert f"已拆分线索 #{lead_b}" in reply and "迁移跟进 1 条、商机 1 条" in reply
    assert f"原客户 #{old_customer}" in reply and f"线索 #{c['lead_id']} 当初是因与本线索相同" in reply
    # It reached the old owner only because of the merge and was not accepted: assigned afresh.
    assert new_owner not in (None, owner)
    assert f"已按新线索重新分配给{NAMES[new_owner]}" in reply
    old_card = next(x for x in await bot.cards(owner) if x["title"].startswith(f"新线索 #{lead_b} "))
    assert old_card["status"].startswith(f"已拆分为独立客户，改由{NAMES[new_owner]}负责")
    told = await bot.last_text(owner)
    assert f"线索 #{lead_b}" in told and "不是同一家" in told and f"现由{NAMES[new_owner]}负责" in told and "感谢" in told
    fresh = (await bot.cards(new_owner))[-1]
    assert fresh["title"].startswith(f"新线索 #{lead_b} ") and "老客户再次咨询" not in fresh["text"]
    assert [x["label"] for x in fresh["actions"]] == ["接受", "转派", "无效"]

    assert not view["explanation"].startswith("老客户再次咨询") and "拆分为独立客户" in view["explanation"]
    split = [row for row in view["audit"] if row["action"] == "unmerged"]
    assert len(split) == 1 and split[0]["actor"] == "chenjing"
    assert f"从客户 #{old_customer}" in split[0]["detail"] and "无锡那家是另一个工厂" in split[0]["detail"]
    assert view["audit"][-1]["action"] == "assigned" and view["audit"][-1]["detail"].startswith(f"→ {new_owner}")

    def check(session: Session) -> int:
        lead = session.get(Lead, lead_b)
        assert lead is not None and lead.customer_id not in (None, old_customer)
        new = session.get(Customer, lead.customer_id)
        assert new is not None
        assert (new.name, new.province, new.city, new.industry, new.budget_fen, new.owner_id) == (
            WUXI_LEAD["company"], "江苏省", "无锡市", "光伏", 20_000_000, new_owner)
        assert new.next_contact_on == date(2026, 3, 20)
        old = session.get(Customer, old_customer)
        assert old is not None and old.next_contact_on == date(2026, 3, 16)  # back to what lead A's follow-up said
        # Records of lead B moved with it; lead A's and lead C's stay with the old customer.
        assert {(f.lead_id, f.customer_id) for f in session.execute(select(FollowUp)).scalars()} == {
            (lead_a, old_customer), (lead_b, new.id)}
        assert {(o.lead_id, o.customer_id) for o in session.execute(select(Opportunity)).scalars()} == {
            (lead_a, old_customer), (lead_b, new.id)}
        assert session.get(Lead, c["lead_id"]).customer_id == old_customer  # type: ignore[union-attr]
        audits = {(e.entity, e.entity_id, e.action) for e in session.execute(select(AuditEvent)).scalars()}
        assert {("customer", old_customer, "lead_split"), ("customer", new.id, "created")} <= audits
        assert any(e == "opportunity" and act == "customer_moved" for e, _, act in audits)
        return int(session.execute(select(func.count()).select_from(Customer)).scalar_one())

    customers = await bot.gateway.db.run(check)

    # Twice is once: nothing changes, and the manager is told so.
    await bot.push("chenjing", f"线索 {lead_b} 不是同一家")
    assert "无需重复操作" in await bot.last_text("chenjing") and "陈静" in await bot.last_text("chenjing")
    assert await bot.gateway.db.run(lambda s: int(s.execute(select(func.count()).select_from(Customer)).scalar_one())) == customers
    assert [row["action"] for row in (await _view(bot, lead_b))["audit"]].count("unmerged") == 1
    await bot.push("chenjing", "合并记录")
    assert "已拆分 → 客户 #" in await bot.last_text("chenjing")


async def test_an_accepted_lead_stays_with_its_rep(bot: SandboxDriver) -> None:
    a, b = await _merged_pair(bot, accept_second=True)
    owner, lead_b = a["owner"], b["lead_id"]
    await bot.push("chenjing", f"拆开线索 {lead_b}")
    reply = await bot.last_text("chenjing")
    assert f"{NAMES[owner]}已接受这条线索，负责人不变" in reply and f"把线索 {lead_b} 转给" in reply
    told = await bot.last_text(owner)
    assert "不是同一家" in told and "仍由您负责" in told
    view = await _view(bot, lead_b)
    assert (view["owner"], view["status"]) == (owner, "accepted")
    assert view["explanation"].startswith("已从客户 #") and "负责人不变" in view["explanation"]
    assert "老客户再次咨询" not in view["explanation"]
    assert next(row["detail"] for row in view["audit"] if row["action"] == "unmerged").endswith(f"原因：{DEFAULT_REASON}；迁移跟进 0 条、商机 0 条")


async def test_who_may_split_and_what_cannot_be_split(bot: SandboxDriver) -> None:
    a, b = await _merged_pair(bot)
    lone = await bot.post_lead(**{**JIANGSU_LEAD, "company": "常州新源动力", "phone": "13655550000", "contact": "周一"})
    owner = a["owner"]
    cases = [
        (owner, f"拆分线索 {b['lead_id']}", "只对经理和管理员开放"),
        ("huangwei", f"拆分线索 {b['lead_id']}", "属于华东区域，只有该区域的经理或管理员可以拆分"),
        ("chenjing", "拆分线索 99999", "没有找到线索 #99999"),
        ("chenjing", f"拆分线索 {lone['lead_id']}", "没有与已有客户合并"),
        ("chenjing", f"拆分线索 {a['lead_id']}", "第一条线索"),
    ]
    for who, text, expected in cases:
        await bot.push(who, text)
        assert expected in await bot.last_text(who), (who, text)
    await bot.push(owner, "合并记录")
    assert "只对经理和管理员开放" in await bot.last_text(owner)
    view = await _view(bot, b["lead_id"])
    assert view["owner"] == owner
    assert not any(row["action"] == "unmerged" for row in view["audit"])
    # The admin may split in any region.
    await bot.push("admin", f"拆分线索 {b['lead_id']}")
    assert f"已拆分线索 #{b['lead_id']}" in await bot.last_text("admin")


async def test_management_api_splits_once_and_refuses_clearly(bot: SandboxDriver) -> None:
    a, b = await _merged_pair(bot)
    lead_b = b["lead_id"]
    url = f"/api/leads/{lead_b}/unmerge"
    refused = [
        (f"/api/leads/{a['lead_id']}/unmerge", {}, 409, "first_lead"),
        ("/api/leads/424242/unmerge", {}, 404, "not_found"),
        (url, {"by": "zhangwei"}, 403, "forbidden"),
        (url, {"by": "huangwei"}, 403, "forbidden"),
    ]
    for path, body, status, code in refused:
        resp = await bot.client.post(path, json=body)
        assert resp.status == status, path
        got = await resp.json()
        assert got["code"] == code and got["error"]
    for path, body in (("/api/leads/x1/unmerge", {}), (url, {"reason": 5}), (url, {"by": "nobody"})):
        assert (await bot.client.post(path, json=body)).status == 400
    # Not JSON objects, NUL and a lone surrogate (PostgreSQL would refuse to store them): 400, not 500.
    for raw in (b"[1]", b'{"reason": "a\\u0000b"}', b'{"reason": "\\ud800"}', b'{"by": "\\udfff"}'):
        assert (await bot.client.post(url, data=raw, headers={"Content-Type": "application/json"})).status == 400, raw

    resp = await bot.client.post(url, json={"reason": "代理商电话，不是同一家", "by": "chenjing"})
    assert resp.status == 200
    first = await resp.json()
    assert first["status"] == "split" and first["from_customer_id"] != first["customer_id"]
    assert first["reassigned"] is True and first["owner"] != a["owner"]
    await bot.drain()
    assert "不是同一家" in await bot.last_text(a["owner"])

    again = await (await bot.client.post(url)).json()  # no body at all
    assert again["status"] == "already_split" and again["customer_id"] == first["customer_id"] and "无需重复操作" in again["message"]
    trail = (await _view(bot, lead_b))["audit"]
    split = [row for row in trail if row["action"] == "unmerged"]
    assert len(split) == 1 and split[0]["actor"] == "chenjing" and "代理商电话" in split[0]["detail"]


async def test_unmerge_needs_the_management_token(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> None:
    settings = parse(TEMPLATE, str(tmp_path / "leadbot.toml"), {"LEADBOT_DATABASE_URL": db_url, "LEADBOT_SERVER__API_TOKEN": "t0ken"})
    client = await aiohttp_client(create_app(settings, clock=clock, start_workers=False))
    assert (await client.post("/api/leads/1/unmerge", json={})).status == 401
    resp = await client.post("/api/leads/1/unmerge", json={}, headers={"Authorization": "Bearer t0ken"})
    assert resp.status == 404 and (await resp.json())["code"] == "not_found"


async def test_a_lead_merged_but_routed_by_rotation_keeps_its_rep_with_a_corrected_card(bot: SandboxDriver) -> None:
    a = await bot.post_lead(**JIANGSU_LEAD)
    owner = a["owner"]

    def away(session: Session) -> None:
        from store.models import Member

        member = session.get(Member, owner)
        assert member is not None
        member.on_leave = True
        session.add(member)

    await bot.gateway.db.run(away)
    b = await bot.post_lead(**WUXI_LEAD)
    rep = b["owner"]
    assert rep not in (None, owner)
    merged_card = (await bot.cards(rep))[-1]
    assert merged_card["text"].count("老客户再次咨询") == 1

    await bot.push("chenjing", f"拆分线索 {b['lead_id']}")
    assert f"负责人不变（{NAMES[rep]}）" in await bot.last_text("chenjing")
    cards = await bot.cards(rep)
    assert cards[-2]["status"].startswith("已更新：不是老客户，见下方新卡片")
    fresh = cards[-1]
    assert fresh["title"] == merged_card["title"] and "老客户再次咨询" not in fresh["text"] and "拆分为独立客户" in fresh["text"]
    assert "仍由您负责" in await bot.last_text(rep)
    # The old customer's owner never had this lead and hears nothing about it.
    assert len(await bot.cards(owner)) == 1 and "拆分" not in await bot.last_text(owner)
    await bot.click(rep, fresh, "接受")
    assert (await _view(bot, b["lead_id"]))["status"] == "accepted"


async def test_two_splits_at_once_make_one_customer(bot: SandboxDriver) -> None:
    import asyncio

    _, b = await _merged_pair(bot)
    url = f"/api/leads/{b['lead_id']}/unmerge"
    answers = await asyncio.gather(*(bot.client.post(url, json={"reason": f"第{i}次"}) for i in range(2)))
    statuses = sorted([(await r.json())["status"] for r in answers])
    assert statuses == ["already_split", "split"]
    customers = await bot.gateway.db.run(lambda s: int(s.execute(select(func.count()).select_from(Customer)).scalar_one()))
    assert customers == 2


async def test_a_split_sticks_for_later_enquiries_of_the_same_name(bot: SandboxDriver) -> None:
    a, b = await _merged_pair(bot)
    await bot.push("chenjing", f"拆分线索 {b['lead_id']}")
    customers = await bot.gateway.db.run(lambda s: {lid: s.get(Lead, lid).customer_id for lid in (a["lead_id"], b["lead_id"])})  # type: ignore[union-attr]

    # Another 无锡 person, new phone: the name alone no longer decides.
    stranger = await bot.post_lead(**{**WUXI_LEAD, "contact": "周工", "phone": "13700002222"})
    # The split-off company's own number still finds it.
    known = await bot.post_lead(**{**WUXI_LEAD, "contact": "钱多多", "phone": "13700001111", "note": "追问交期"})

    def customer_of(session: Session, lead_id: int) -> int:
        return session.get(Lead, lead_id).customer_id  # type: ignore[union-attr]

    assert await bot.gateway.db.run(lambda s: customer_of(s, stranger["lead_id"])) not in customers.values()
    assert await bot.gateway.db.run(lambda s: customer_of(s, known["lead_id"])) == customers[b["lead_id"]]
    view = await _view(bot, stranger["lead_id"])
    assert not any(row["action"] == "merged" for row in view["audit"])
