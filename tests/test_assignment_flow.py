"""Issue 5 end to end: rules from leadbot.toml, top-N by won amount, de-duplication, capacity
under concurrency — through the real HTTP API on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import create_app
from bot.config import ConfigError, parse
from bot.keys import GATEWAY
from handlers.context import FakeClock
from store.models import Customer, Lead, Opportunity
from tests.conftest import JIANGSU_LEAD, TEMPLATE, SandboxDriver, make_settings

EXTRA = """
[[members]]
id = "qianfang"
name = "钱芳"
role = "rep"
region = "华东"
manager = "chenjing"
daily_capacity = 20

[[members]]
id = "xuming"
name = "徐明"
role = "rep"
region = "华东"
manager = "chenjing"
daily_capacity = 2

[[assignment.rules]]
name = "新能源汽车大单"
when = { source = "官网表单", industry_contains = "新能源汽车", budget_gte = "50万" }
to = { pool = "province", top_n = 3 }
"""

# Won amounts over the last 90 days, in yuan: the top three of 华东 are lina, qianfang, wangqiang.
WON = {"lina": 900_000, "qianfang": 700_000, "wangqiang": 500_000, "zhangwei": 100_000, "xuming": 0}


@pytest.fixture
async def pilot(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> SandboxDriver:
    settings = make_settings(db_url, tmp_path, EXTRA)
    client = await aiohttp_client(create_app(settings, clock=clock, start_workers=False))
    client.app[GATEWAY].inline_answer_seconds = 0.0
    driver = SandboxDriver(client)
    now = clock.now()

    def seed(session: Any) -> None:
        for rep, yuan in WON.items():
            if yuan:
                session.add(Opportunity(owner_id=rep, name=f"{rep} 已签单", amount_fen=yuan * 100, stage="签约", created_at=now - timedelta(days=30), updated_at=now - timedelta(days=10)))
        # An old deal outside the 90-day window does not count.
        session.add(Opportunity(owner_id="zhangwei", name="老单", amount_fen=99_000_000, stage="签约", created_at=now - timedelta(days=200), updated_at=now - timedelta(days=120)))

    await driver.gateway.db.run(seed)
    return driver


async def test_pilot_lead_reaches_a_top3_east_rep_with_the_reason_on_the_card(pilot: SandboxDriver) -> None:
    owners = set()
    for i in range(6):
        body = await pilot.post_lead(**{**JIANGSU_LEAD, "company": f"常州新源动力{i}号", "phone": f"1365555000{i}"})
        owners.add(body["owner"])
        card = (await pilot.cards(body["owner"]))[-1]
        assert "华东池" in card["text"] and "近90天业绩前3" in card["text"] and "剩余额度" in card["text"]
        view = await (await pilot.client.get(f"/api/leads/{body['lead_id']}")).json()
        assert view["rule"] == "新能源汽车大单"
    assert owners == {"lina", "qianfang", "wangqiang"}


async def test_small_budget_lead_uses_the_whole_region_pool(pilot: SandboxDriver) -> None:
    owners = set()
    for i in range(10):
        body = await pilot.post_lead(**{**JIANGSU_LEAD, "budget": "5万", "company": f"扬州小件{i}", "phone": f"1376666000{i}"})
        owners.add(body["owner"])
    assert "zhangwei" in owners  # not in the top 3, still gets ordinary leads


async def test_returning_customer_goes_to_its_owner_as_old_customer(pilot: SandboxDriver) -> None:
    first = await pilot.post_lead(**JIANGSU_LEAD)
    again = await pilot.post_lead(**{**JIANGSU_LEAD, "company": "恒锐精密机械（苏州）有限公司", "phone": "+86 139-1234-5678", "note": "又来问价"})
    assert again["owner"] == first["owner"]
    card = (await pilot.cards(first["owner"]))[-1]
    assert "老客户再次咨询" in card["text"]
    counts = await pilot.gateway.db.run(lambda s: (s.execute(select(func.count()).select_from(Customer)).scalar_one(), s.execute(select(func.count()).select_from(Lead)).scalar_one()))
    assert counts == (1, 2)  # one customer, both enquiries kept
    view = await (await pilot.client.get(f"/api/leads/{again['lead_id']}")).json()
    assert any(a["action"] == "merged" for a in view["audit"])


async def test_shared_switchboard_number_does_not_merge_everyone(pilot: SandboxDriver) -> None:
    for i in range(7):
        await pilot.post_lead(**{**JIANGSU_LEAD, "company": f"园区企业{i}号有限公司", "contact": f"联系人{i}", "phone": "0512-66668888"})
    customers = await pilot.gateway.db.run(lambda s: s.execute(select(func.count()).select_from(Customer)).scalar_one())
    assert customers >= 6


async def test_concurrent_form_posts_are_each_assigned_once_within_capacity(pilot: SandboxDriver) -> None:
    async def post(i: int) -> dict[str, Any]:
        resp = await pilot.client.post("/api/leads", json={**JIANGSU_LEAD, "budget": "1万", "company": f"并发测试{i:03d}", "phone": f"1350000{i:04d}", "contact": f"客户{i}"})
        assert resp.status == 201, await resp.text()
        return await resp.json()

    results = await asyncio.gather(*(post(i) for i in range(100)))
    await pilot.drain()
    assert len({r["lead_id"] for r in results}) == 100

    def per_owner(session: Any) -> dict[str | None, int]:
        return dict(session.execute(select(Lead.owner_id, func.count()).group_by(Lead.owner_id)).all())

    counts = await pilot.gateway.db.run(per_owner)
    capacity = {"zhangwei": 20, "lina": 20, "wangqiang": 15, "qianfang": 20, "xuming": 2}
    for rep, n in counts.items():
        if rep is not None:
            assert n <= capacity[rep], (rep, n)
    assert sum(capacity.values()) == 77
    assert counts.get(None, 0) == 100 - 77  # the rest wait for the manager, none lost
    cards = 0
    for rep in capacity:
        cards += len(await pilot.cards(rep))
    assert cards == 77


def test_a_misspelt_rule_key_is_refused_with_line_and_hint(tmp_path: Path) -> None:
    text = TEMPLATE + '\n[[assignment.rules]]\nname = "大单"\nwhen = { budgte = 500000 }\nto = { pool = "province" }\n'
    with pytest.raises(ConfigError) as err:
        parse(text, "leadbot.toml", {})
    message = str(err.value)
    assert "budgte" in message and "budget_gte" in message
    assert err.value.line == text.count("\n", 0, text.index("budgte")) + 1
