"""Group-committed lead intake: a batch decides exactly as one-by-one intake would, and a
bad item fails alone (SQLite file and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from bot.app import create_app
from bot.keys import GATEWAY
from handlers import leads
from handlers.context import FakeClock
from nlp.calendar import SHANGHAI
from store.db import Database, GroupCommit, upgrade
from store.models import AuditEvent, Customer, Lead, OutboxMessage, RotationState
from tests.conftest import JIANGSU_LEAD, _pg_database, make_settings

NOW = datetime(2026, 3, 10, 10, 0, tzinfo=SHANGHAI)
SMALL_REP = """
[[members]]
id = "xuming"
name = "徐明"
role = "rep"
region = "华东"
manager = "chenjing"
daily_capacity = 2
"""


def _forms() -> list[leads.LeadForm]:
    """Twelve leads: new customers, a returning one (same phone), one from another region."""
    rows: list[dict[str, Any]] = []
    for i in range(10):
        rows.append({**JIANGSU_LEAD, "budget": "3万", "company": f"批量测试{i}号有限公司", "phone": f"1351111{i:04d}", "contact": f"客户{i}"})
    rows.append({**JIANGSU_LEAD, "budget": "3万", "company": "批量测试3号有限公司", "phone": "13511110003", "contact": "客户3", "note": "又来问价"})
    rows.append({**JIANGSU_LEAD, "province": "广东", "company": "深圳南方传感", "phone": "13622220000"})
    return [leads.validate_form(r) for r in rows]


async def _outcome(app: Any) -> tuple[list[tuple[str | None, str]], int, str]:
    def read(session: Session) -> tuple[list[tuple[str | None, str]], int, str]:
        owners = [(owner, status) for owner, status in session.execute(select(Lead.owner_id, Lead.status).order_by(Lead.id)).all()]
        customers = session.execute(select(func.count()).select_from(Customer)).scalar_one()
        rotation = session.execute(select(RotationState.state_json)).scalar_one()
        return owners, customers, rotation

    return await app[GATEWAY].db.run(read)


async def test_a_batch_assigns_exactly_like_one_intake_per_transaction(request: pytest.FixtureRequest, aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> None:
    one_by_one = await aiohttp_client(create_app(make_settings(db_url, tmp_path, SMALL_REP), clock=clock, start_workers=False))
    gateway = one_by_one.app[GATEWAY]
    for form in _forms():
        await gateway.db.run(lambda s, form=form: leads.intake(s, form, gateway.ctx))
    expected = await _outcome(one_by_one.app)
    await one_by_one.close()

    # A second, empty database: the whole list in one transaction.
    if db_url.startswith("sqlite"):
        other_url = f"sqlite:///{tmp_path / 'batch.db'}"
    else:
        second = _pg_database()
        other_url = next(second)
        request.addfinalizer(second.close)
    upgrade(other_url)
    batched = await aiohttp_client(create_app(make_settings(other_url, tmp_path, SMALL_REP), clock=clock, start_workers=False))
    gateway = batched.app[GATEWAY]
    results = await gateway.db.run(lambda s: leads.intake_many(s, _forms(), gateway.ctx))
    got = await _outcome(batched.app)

    assert got == expected
    owners = [owner for owner, _ in got[0]]
    assert owners.count("xuming") <= 2  # capacity holds inside one batch
    assert got[0][10][0] == got[0][3][0]  # the returning customer went back to its owner
    assert got[1] == 11  # one customer for the repeat enquiry
    assert [r.owner for r in results] == owners


async def test_concurrent_posts_share_transactions_and_each_gets_its_own_answer(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> None:
    client = await aiohttp_client(create_app(make_settings(db_url, tmp_path), clock=clock, start_workers=False))
    gateway = client.app[GATEWAY]
    commits = 0
    real_run = gateway.db.run

    async def counting_run(fn: Any) -> Any:
        nonlocal commits
        commits += 1
        return await real_run(fn)

    gateway.db.run = counting_run  # type: ignore[method-assign]
    bodies = [{**JIANGSU_LEAD, "budget": "2万", "company": f"并发批次{i:02d}有限公司", "phone": f"1372222{i:04d}"} for i in range(40)]
    responses = await asyncio.gather(*(client.post("/api/leads", json=b) for b in bodies))
    answers = [await r.json() for r in responses]
    gateway.db.run = real_run  # type: ignore[method-assign]

    assert all(r.status == 201 for r in responses)
    assert len({a["lead_id"] for a in answers}) == 40
    assert commits < 40  # posts that arrived together were written together

    def check(session: Session) -> list[tuple[int, str, str | None]]:
        return [tuple(r) for r in session.execute(select(Lead.id, Lead.company, Lead.owner_id)).all()]  # type: ignore[misc]

    stored = {lead_id: (company, owner) for lead_id, company, owner in await gateway.db.run(check)}
    for body, answer in zip(bodies, answers):
        assert stored[answer["lead_id"]] == (body["company"], answer["owner"])  # each caller got its own lead
    cards = await gateway.db.run(lambda s: s.execute(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "card")).scalar_one())
    assert cards == sum(1 for a in answers if a["owner"])


async def test_a_failing_item_fails_alone_and_nothing_else_is_lost(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gc.db'}"
    upgrade(url)
    db = Database(url)
    batches: list[int] = []

    def write(session: Session, items: Any) -> list[str]:
        batches.append(len(items))
        for item in items:
            session.add(AuditEvent(entity="test", entity_id=0, actor="t", action="wrote", detail=item, at=NOW))
            if item == "坏的":
                raise ValueError("bad item")
        return [f"ok:{item}" for item in items]

    commit: GroupCommit[str, str] = GroupCommit(db, write)
    items = [f"第{i}条" for i in range(6)] + ["坏的"] + [f"第{i}条" for i in range(6, 10)]
    outcomes = await asyncio.gather(*(commit.submit(i) for i in items), return_exceptions=True)
    await commit.close()

    assert isinstance(outcomes[6], ValueError)
    assert [o for i, o in enumerate(outcomes) if i != 6] == [f"ok:{i}" for i in items if i != "坏的"]
    assert max(batches) > 1  # they were batched before the failure split them
    written = db.transaction(lambda s: sorted(s.execute(select(AuditEvent.detail).where(AuditEvent.entity == "test")).scalars()))
    assert written == sorted(i for i in items if i != "坏的")  # each good item exactly once
    db.close()


async def test_shutdown_waits_for_submitted_leads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gc2.db'}"
    upgrade(url)
    db = Database(url)

    def write(session: Session, items: Any) -> list[int]:
        for item in items:
            session.add(AuditEvent(entity="test", entity_id=item, actor="t", action="wrote", detail="", at=NOW))
        return list(items)

    commit: GroupCommit[int, int] = GroupCommit(db, write)
    pending = [asyncio.ensure_future(commit.submit(i)) for i in range(25)]
    await asyncio.sleep(0)
    await commit.close()
    assert all(p.done() for p in pending)
    count = db.transaction(lambda s: s.execute(select(func.count()).select_from(AuditEvent).where(AuditEvent.entity == "test")).scalar_one())
    assert count == 25
    db.close()


async def test_a_big_b2b_budget_is_taken_in_whole(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> None:
    """3000万 is more than a 32-bit column holds in fen: stored and shown exactly."""
    client = await aiohttp_client(create_app(make_settings(db_url, tmp_path), clock=clock, start_workers=False))
    resp = await client.post("/api/leads", json={**JIANGSU_LEAD, "budget": "3000万"})
    assert resp.status == 201, await resp.text()
    lead_id = (await resp.json())["lead_id"]
    stored = await client.app[GATEWAY].db.run(lambda s: s.get(Lead, lead_id).budget_fen)  # type: ignore[union-attr]
    assert stored == 30_000_000 * 100
