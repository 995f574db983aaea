"""Each scan driven by a fake clock across nights, weekends, Spring Festival and make-up Saturdays."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from handlers.context import Outgoing
from store.models import AuditEvent, Lead
from tests.test_scheduler_world import World, open_world, sh


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    yield from open_world(db_url, tmp_path)

EAST = {"zhangwei", "lina", "wangqiang"}


def cards_of(items: list[tuple[object, Outgoing]], member: str) -> list[Outgoing]:
    return [o for _, o in items if o.member_id == member and o.kind == "card"]


# ---------------------------------------------------------------- 1. unaccepted lead cards


def test_unaccepted_leads_move_once_and_the_manager_gets_one_card(world: World) -> None:
    leads = [world.lead(company=f"苏州测试{i}号机械有限公司", phone=f"1391234567{i}") for i in range(3)]
    first = {l.id: l.owner_id for l in leads}
    assert set(first.values()) <= EAST
    world.take()
    # Two business hours after 10:00 is 12:00: a minute before, nothing moves.
    counts = world.run(sh(2026, 3, 10, 11, 59))
    assert counts["unaccepted"] == 0 and world.take() == []

    world.run(sh(2026, 3, 10, 12, 0))
    items = world.take()
    for lead in leads:
        now = world.get(Lead, lead.id)
        assert now.status == "assigned" and now.owner_id in EAST and now.owner_id != first[lead.id]
        # The first rep's card is closed with 已转派, a silent update.
        updates = [o for _, o in items if o.kind == "card_update" and o.member_id == first[lead.id]]
        assert updates and updates[0].card is not None and updates[0].card.status.startswith("已转派")
        assert now.accept_due_at == sh(2026, 3, 10, 14, 0).astimezone(now.accept_due_at.tzinfo)
    manager_cards = cards_of(items, "chenjing")
    assert len(manager_cards) == 1
    card = manager_cards[0].card
    assert card is not None and "3 条" in card.title
    assert all(f"#{l.id}" in card.text for l in leads)
    # The same tick again (a replay, or a second server) changes and sends nothing.
    world.run(sh(2026, 3, 10, 12, 0))
    assert world.take() == []


def test_reassignment_never_goes_back_to_someone_who_had_it(world: World) -> None:
    lead = world.lead()
    owners = [lead.owner_id]
    t = sh(2026, 3, 10, 12, 0)
    for hop in range(2):
        world.run(t)
        current = world.get(Lead, lead.id)
        assert current.owner_id not in owners
        owners.append(current.owner_id)
        t = current.accept_due_at
    # All three reps had it; the third timeout leaves it for the manager, who is told in the card.
    world.take()
    world.run(t)
    assert world.get(Lead, lead.id).status == "unassigned"
    card = cards_of(world.take(), "chenjing")[0].card
    assert card is not None and "暂无可派销售" in card.text
    actions = [a.action for a in world.all(select(AuditEvent).where(AuditEvent.entity_id == lead.id).order_by(AuditEvent.id))]
    assert actions.count("accept_timeout") == 3


def test_deadline_counts_business_hours_over_the_night(world: World) -> None:
    world.clock.set(sh(2026, 3, 10, 17, 30))
    lead = world.lead()
    world.take()
    for at in (sh(2026, 3, 10, 23, 0), sh(2026, 3, 11, 8, 0), sh(2026, 3, 11, 10, 29)):
        world.run(at)
    assert world.get(Lead, lead.id).owner_id == lead.owner_id
    world.run(sh(2026, 3, 11, 10, 30))
    assert world.get(Lead, lead.id).owner_id != lead.owner_id


def test_spring_festival_and_the_make_up_saturday(world: World) -> None:
    # Friday 2026-02-13 17:00: one hour on Friday, the second on the make-up Saturday 02-14.
    world.clock.set(sh(2026, 2, 13, 17, 0))
    friday = world.lead()
    assert world.get(Lead, friday.id).accept_due_at == sh(2026, 2, 14, 10, 0)
    # Saturday 02-14 17:30: half an hour, then nine days off, then Tuesday 02-24.
    world.clock.set(sh(2026, 2, 14, 17, 30))
    saturday = world.lead(company="无锡海川传感科技有限公司", phone="13800000001")
    assert world.get(Lead, saturday.id).accept_due_at == sh(2026, 2, 24, 10, 30)
    world.take()
    world.run(sh(2026, 2, 14, 10, 0))
    assert world.get(Lead, friday.id).owner_id != friday.owner_id
    for day in range(15, 24):
        world.run(sh(2026, 2, day, 10, 30))
    assert world.get(Lead, saturday.id).owner_id == saturday.owner_id
    world.run(sh(2026, 2, 24, 10, 30))
    assert world.get(Lead, saturday.id).owner_id != saturday.owner_id


def test_reassignment_at_closing_time_waits_for_the_morning(world: World) -> None:
    world.clock.set(sh(2026, 3, 13, 16, 0))  # a Friday
    lead = world.lead()
    world.take()
    world.run(sh(2026, 3, 13, 18, 0))  # due exactly at closing: quiet hours already
    items = world.take()
    new_owner = world.get(Lead, lead.id).owner_id
    card_times = {w for w, o in items if o.kind == "card"}
    # New lead card and the manager's card are delivered Monday 09:00; the close is silent.
    assert card_times == {sh(2026, 3, 16, 9, 0)}
    assert cards_of(items, new_owner) and cards_of(items, "chenjing")
    assert all(w == sh(2026, 3, 13, 18, 0) for w, o in items if o.kind == "card_update")


async def test_end_to_end_in_the_sandbox(bot, clock) -> None:  # type: ignore[no-untyped-def]
    from scheduler.scans import run_all
    from tests.conftest import JIANGSU_LEAD

    body = await bot.post_lead(**JIANGSU_LEAD)
    first = body["owner"]
    clock.set(sh(2026, 3, 10, 12, 0))
    counts = await asyncio.to_thread(run_all, bot.gateway.db, bot.gateway.ctx, clock.now(), bot.gateway.enqueue)
    assert counts["unaccepted"] >= 3
    await bot.drain()
    assert (await bot.cards(first))[0]["status"].startswith("已转派")
    view = await (await bot.client.get(f"/api/leads/{body['lead_id']}")).json()
    assert view["owner"] in EAST - {first}
    assert len([c for c in await bot.cards(view["owner"]) if c["title"].startswith("新线索")]) == 1
    manager = [c for c in await bot.cards("chenjing") if "线索超时转派" in c["title"]]
    assert len(manager) == 1
    assert [a["label"] for a in manager[0]["actions"]] == ["本周不再提醒"]


# ---------------------------------------------------------------- 2. first touch and stage deadlines


def test_first_touch_nudge_after_n_business_hours_once(world: World) -> None:
    quiet = world.accepted_lead(sh(2026, 3, 10, 17, 0))
    touched = world.accepted_lead(sh(2026, 3, 10, 17, 0), company="海川传感")
    world.touch(touched.id, sh(2026, 3, 11, 9, 30))
    world.run(sh(2026, 3, 11, 11, 59))  # 1 h Tue + 3 h Wed = 12:00
    assert not [o for _, o in world.take() if o.dedupe_key.startswith("alert:first_touch")]
    world.run(sh(2026, 3, 11, 12, 0))
    got = [o for _, o in world.take() if o.dedupe_key.startswith("alert:first_touch")]
    assert len(got) == 1 and got[0].member_id == "zhangwei"
    assert got[0].card is not None and f"#{quiet.id}" in got[0].card.title
    world.run(sh(2026, 3, 11, 15, 0))
    assert not [o for _, o in world.take() if o.dedupe_key.startswith("alert:first_touch")]


def test_first_touch_over_a_weekend(world: World) -> None:
    world.accepted_lead(sh(2026, 3, 13, 16, 0))  # Friday: 2 h Friday, 2 h Monday → Mon 11:00
    for at in (sh(2026, 3, 14, 10, 0), sh(2026, 3, 15, 10, 0), sh(2026, 3, 16, 10, 59)):
        world.run(at)
        assert not [o for _, o in world.take() if o.dedupe_key.startswith("alert:first_touch")]
    world.run(sh(2026, 3, 16, 11, 0))
    assert [o for _, o in world.take() if o.dedupe_key.startswith("alert:first_touch")]


def test_stage_deadline_at_night_is_delivered_next_working_morning(world: World) -> None:
    opp = world.opportunity("lina", sh(2026, 3, 11, 18, 0))
    world.run(sh(2026, 3, 11, 17, 59))
    assert not [o for _, o in world.take() if "stage_due" in o.dedupe_key]
    world.run(sh(2026, 3, 11, 18, 5))
    got = [(w, o) for w, o in world.take() if "stage_due" in o.dedupe_key]
    assert len(got) == 1
    when, out = got[0]
    assert out.member_id == "lina" and when == sh(2026, 3, 12, 9, 0)
    assert out.card is not None and opp.name in out.card.title
    assert "本周不再提醒" in [a.label for a in out.card.actions]
    world.run(sh(2026, 3, 12, 9, 0))
    assert not [o for _, o in world.take() if "stage_due" in o.dedupe_key]


# ---------------------------------------------------------------- 5. follow-up dates


def _contact_cards(world: World) -> list[tuple[object, Outgoing]]:
    return [(w, o) for w, o in world.take() if o.dedupe_key.startswith("alert:next_contact")]


def test_next_contact_date_reminds_that_morning_once(world: World) -> None:
    lead = world.accepted_lead(sh(2026, 3, 10, 10, 0))
    world.touch(lead.id, sh(2026, 3, 10, 11, 0), text="客户说下次联系 3月12日", next_contact_on=date(2026, 3, 12))
    world.run(sh(2026, 3, 11, 9, 0))
    world.run(sh(2026, 3, 12, 8, 30))
    assert _contact_cards(world) == []
    world.run(sh(2026, 3, 12, 9, 0))
    got = _contact_cards(world)
    assert len(got) == 1 and got[0][1].member_id == "zhangwei"
    assert "恒锐精密" in got[0][1].card.text  # type: ignore[union-attr]
    world.run(sh(2026, 3, 12, 9, 30))
    assert _contact_cards(world) == []


def test_next_contact_in_spring_festival_waits_for_the_first_working_morning(world: World) -> None:
    lead = world.accepted_lead(sh(2026, 2, 10, 10, 0))
    world.touch(lead.id, sh(2026, 2, 10, 11, 0), next_contact_on=date(2026, 2, 20))
    world.touch(lead.id, sh(2026, 2, 10, 11, 5), next_contact_on=date(2026, 2, 14))
    world.run(sh(2026, 2, 13, 9, 0))
    world.take()
    world.run(sh(2026, 2, 14, 9, 0))  # make-up Saturday: a working morning
    sat = _contact_cards(world)
    assert len(sat) == 1 and "2月14日" in sat[0][1].card.text  # type: ignore[union-attr]
    for day in range(15, 24):
        world.run(sh(2026, 2, day, 9, 30))
        assert _contact_cards(world) == []
    world.run(sh(2026, 2, 24, 9, 0))
    tue = _contact_cards(world)
    assert len(tue) == 1 and "2月20日" in tue[0][1].card.text and "顺延" in tue[0][1].card.text  # type: ignore[union-attr]


async def test_quiet_hours_hold_cards_in_the_real_outbox_until_monday(bot, clock) -> None:  # type: ignore[no-untyped-def]
    from scheduler.scans import run_all
    from tests.conftest import JIANGSU_LEAD

    clock.set(sh(2026, 3, 13, 16, 0))  # Friday
    body = await bot.post_lead(**JIANGSU_LEAD)
    first = body["owner"]
    clock.set(sh(2026, 3, 13, 18, 0))
    await asyncio.to_thread(run_all, bot.gateway.db, bot.gateway.ctx, clock.now(), bot.gateway.enqueue)
    await bot.drain()
    # The silent update of the first card goes out; nobody is pinged on Friday night.
    assert (await bot.cards(first))[0]["status"].startswith("已转派")
    view = await (await bot.client.get(f"/api/leads/{body['lead_id']}")).json()
    assert [c for c in await bot.cards(view["owner"]) if c["title"].startswith("新线索")] == []
    assert not [c for c in await bot.cards("chenjing") if "线索超时转派" in c["title"]]
    clock.set(sh(2026, 3, 15, 12, 0))  # Sunday
    await bot.drain()
    assert [c for c in await bot.cards(view["owner"]) if c["title"].startswith("新线索")] == []
    clock.set(sh(2026, 3, 16, 9, 0))  # Monday morning
    await bot.drain()
    assert len([c for c in await bot.cards(view["owner"]) if c["title"].startswith("新线索")]) == 1
    assert len([c for c in await bot.cards("chenjing") if "线索超时转派" in c["title"]]) == 1
