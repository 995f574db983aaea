"""Stalled leads, signing intent, 今日待办, the weekly report, and the notification budget."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from handlers import alerts as alerting
from handlers.actions import ActionKey
from handlers.alerts import Budget
from handlers.context import Outgoing
from store.models import AuditEvent, CardHandle, Member, Opportunity, Ticket
from store.models_schedule import AlertMute, AlertRecord
from tests.test_scheduler_world import World, open_world, sh


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    yield from open_world(db_url, tmp_path)


def keyed(items: list[tuple[object, Outgoing]], prefix: str) -> list[tuple[object, Outgoing]]:
    return [(w, o) for w, o in items if o.dedupe_key.startswith("alert:" + prefix)]


def click(world: World, member_id: str, out: Outgoing, label: str) -> list[Outgoing]:
    from handlers.router import (
        ACTION_HANDLERS,  # the lead wires ours in; fall back to ours here
    )

    assert out.card is not None
    action = next(a for a in out.card.actions if a.label == label)
    key = ActionKey.unpack(action.key, world.ctx.secret)
    handler = alerting.ACTION_HANDLERS.get(key.verb) or ACTION_HANDLERS[key.verb]

    def go(s):  # type: ignore[no-untyped-def]
        member = s.get(Member, member_id)
        return handler(s, member, key, world.ctx, f"test:{label}")

    return world.tx(go)


# ---------------------------------------------------------------- 3. stalled A-tier leads


def test_stalled_a_leads_give_the_manager_one_non_blaming_card(world: World) -> None:
    monday = sh(2026, 3, 9, 10, 0)
    a1 = world.accepted_lead(monday, tier="A", owner="lina", company="恒锐精密")
    a2 = world.accepted_lead(monday + timedelta(minutes=30), tier="A", owner="lina", company="海川传感")
    world.accepted_lead(monday, tier="B", owner="lina", company="普通客户")
    world.run(sh(2026, 3, 11, 10, 29))  # a2 is 47.98 h old: only a1 is stalled
    first = keyed(world.take(), "stalled")
    assert len(first) == 1
    world.run(sh(2026, 3, 11, 10, 45))  # past the manager's 10-minute spacing
    second = keyed(world.take(), "stalled")
    assert len(second) == 1  # a2 alone: a1 was told already
    assert all(o.member_id == "chenjing" for o in (first[0][1], second[0][1]))
    card = first[0][1].card
    assert card is not None
    assert card.text == "李娜负责的A类线索中，有1条距上次互动已超48小时，请确认是否需要支援"
    assert [a.label for a in card.actions] == ["我来跟进", "提醒李娜", "忽略", "本周不再提醒"]
    assert "超期" not in card.text + card.title
    assert [f.label for f in card.fields] == [f"#{a1.id}"]
    assert [f.label for f in second[0][1].card.fields] == [f"#{a2.id}"]  # type: ignore[union-attr]


def test_stalled_leads_crossing_together_are_aggregated_and_a_new_touch_restarts_the_clock(world: World) -> None:
    t0 = sh(2026, 3, 9, 10, 0)
    a1 = world.accepted_lead(t0, tier="A", owner="lina", company="恒锐精密")
    world.accepted_lead(t0, tier="A", owner="lina", company="海川传感")
    world.run(sh(2026, 3, 11, 10, 0))
    got = keyed(world.take(), "stalled")
    assert len(got) == 1 and got[0][1].card is not None
    assert "有2条距上次互动已超48小时" in got[0][1].card.text
    world.run(sh(2026, 3, 11, 15, 0))
    assert keyed(world.take(), "stalled") == []
    # Lina calls one customer; 48 h later (a Friday evening) it is stalled again, told Monday morning.
    world.touch(a1.id, sh(2026, 3, 11, 19, 0), member="lina")
    world.run(sh(2026, 3, 13, 19, 0))
    again = keyed(world.take(), "stalled")
    assert len(again) == 1 and again[0][0] == sh(2026, 3, 16, 9, 0)
    assert "有1条" in again[0][1].card.text  # type: ignore[union-attr]


def test_stalled_card_buttons(world: World) -> None:
    t0 = sh(2026, 3, 9, 10, 0)
    a1 = world.accepted_lead(t0, tier="A", owner="lina")
    world.run(sh(2026, 3, 11, 10, 0))
    card = keyed(world.take(), "stalled")[0][1]
    out = click(world, "chenjing", card, "提醒李娜")
    nudge = [o for o in out if o.member_id == "lina"]
    assert nudge and f"#{a1.id}" in nudge[0].text and "超期" not in nudge[0].text
    closed = [o for o in out if o.kind == "card_update"]
    assert closed and closed[0].card is not None and closed[0].card.status == "已提醒李娜"
    again = click(world, "chenjing", card, "我来跟进")
    assert again[0].kind == "text" and "处理过" in again[0].text


# ---------------------------------------------------------------- 4. signing intent


def test_signing_intent_without_opportunity_prompts_quick_creation(world: World) -> None:
    lead = world.accepted_lead(sh(2026, 3, 10, 9, 0), owner="lina", company="恒锐精密")
    world.touch(lead.id, sh(2026, 3, 10, 10, 0), text="王总说方案没问题，月底签合同", fields={"intents": ["sign_intent"]}, member="lina")
    plain = world.accepted_lead(sh(2026, 3, 10, 9, 0), owner="lina", company="海川传感")
    world.touch(plain.id, sh(2026, 3, 10, 10, 0), text="客户在比价", fields={"intents": ["price_objection"]}, member="lina")
    world.run(sh(2026, 3, 11, 9, 59))
    assert keyed(world.take(), "sign_intent") == []
    world.run(sh(2026, 3, 11, 10, 0))
    got = keyed(world.take(), "sign_intent")
    assert len(got) == 1
    out = got[0][1]
    assert out.member_id == "lina" and out.card is not None
    assert out.card.title == "检测到潜在签约线索，是否快速建档？"
    assert out.card.actions[0].label == "一键建档"
    click(world, "lina", out, "一键建档")
    opps = world.all(select(Opportunity))
    assert len(opps) == 1 and opps[0].lead_id == lead.id and opps[0].owner_id == "lina"
    # A later intent on the same lead: it has an opportunity now, so nothing.
    world.touch(lead.id, sh(2026, 3, 11, 11, 0), fields={"intents": ["sign_intent"]}, member="lina")
    world.run(sh(2026, 3, 12, 12, 0))
    assert keyed(world.take(), "sign_intent") == []


# ---------------------------------------------------------------- 6. 今日待办


def test_daily_todo_top5_with_stakes_at_the_start_of_each_working_day(world: World) -> None:
    for i in range(7):
        world.opportunity("zhangwei", sh(2026, 3, 13, 17, 0), amount_fen=(i + 1) * 10_000_000, name=f"商机{i}")
    world.run(sh(2026, 3, 13, 8, 59))  # Friday, before opening
    assert [o for _, o in world.take(everything=True) if o.dedupe_key.startswith("alert:todo:")] == []
    world.run(sh(2026, 3, 13, 9, 0))
    todos = [o for _, o in world.take(everything=True) if o.dedupe_key.startswith("alert:todo:zhangwei")]
    assert len(todos) == 1 and todos[0].card is not None
    text = todos[0].card.text
    assert todos[0].card.title.startswith("今日待办 TOP5")
    assert text.index("商机6") < text.index("商机5") and "商机1」" not in text  # the five largest, largest first
    assert "不处理影响：丢失约70万商机" in text and "另有 2 项" in text
    world.run(sh(2026, 3, 13, 11, 0))
    assert [o for _, o in world.take(everything=True) if o.dedupe_key.startswith("alert:todo:")] == []
    # Saturday and Sunday: nothing. Monday: again.
    world.run(sh(2026, 3, 14, 9, 0))
    world.run(sh(2026, 3, 15, 9, 0))
    assert [o for _, o in world.take(everything=True) if o.dedupe_key.startswith("alert:todo:")] == []
    world.run(sh(2026, 3, 16, 9, 0))
    assert [o for _, o in world.take(everything=True) if o.dedupe_key.startswith("alert:todo:zhangwei")]


def test_daily_todo_on_the_make_up_saturday_but_not_in_spring_festival(world: World) -> None:
    world.opportunity("zhangwei", sh(2026, 2, 13, 17, 0))  # due Friday, still open after
    todo_days = []
    for day in range(13, 25):
        world.run(sh(2026, 2, day, 9, 5))
        if [o for _, o in world.take(everything=True) if o.dedupe_key.startswith("alert:todo:zhangwei")]:
            todo_days.append(day)
    assert todo_days == [13, 14, 24]


# ---------------------------------------------------------------- 7. weekly report


def test_weekly_risk_report_on_the_first_working_morning_of_the_week(world: World) -> None:
    world.tx(lambda s: s.add(Ticket(owner_id="zhangwei", priority="P0", status="open", text="产线停了",
                                    created_at=sh(2026, 3, 12, 9, 0), updated_at=sh(2026, 3, 12, 9, 0))))
    world.clock.set(sh(2026, 3, 12, 10, 0))
    world.lead()  # never accepted: a black hole
    world.opportunity("lina", sh(2026, 3, 13, 12, 0), amount_fen=50_000_000)
    got = []
    for day in (16, 17, 18):
        world.run(sh(2026, 3, day, 9, 0))
        got.append([o for _, o in world.take(everything=True) if o.dedupe_key.startswith("alert:weekly:")])
    assert [len(g) for g in got] == [3, 0, 0]  # one per region manager, Monday only
    east = next(o for o in got[0] if o.member_id == "chenjing")
    fields = {f.label: f.value for f in east.card.fields}  # type: ignore[union-attr]
    assert fields["未结 P0/P1 工单"] == "1 / 0"
    assert fields["停滞商机"].startswith("1 个") and "约50万" in fields["停滞商机"]
    assert fields["线索黑洞率（8工时未触达）"] == "100%（1/1）"  # as 报表 counts it: 8 business hours untouched
    assert "超时未接受（已自动转派）" in fields


def test_weekly_report_after_spring_festival_comes_on_tuesday(world: World) -> None:
    sent = {}
    for day in (23, 24, 25):
        world.run(sh(2026, 2, day, 9, 30))
        sent[day] = [o for _, o in world.take(everything=True) if o.dedupe_key.startswith("alert:weekly:")]
    assert (len(sent[23]), len(sent[24]), len(sent[25])) == (0, 3, 0)


# ---------------------------------------------------------------- budget, quiet hours, mutes


def test_budget_rolls_extra_alerts_into_one_digest(world: World) -> None:
    world.settings = replace(world.settings, budget=Budget(daily_cap=3, min_spacing=timedelta(minutes=10)))
    world.run(sh(2026, 3, 10, 8, 0))  # nothing yet; today's 今日待办 went out earlier:
    world.run(sh(2026, 3, 10, 9, 0))
    for i in range(5):
        world.accepted_lead(sh(2026, 3, 10, 9, 0) + timedelta(minutes=i), company=f"客户{i}", budget_fen=(i + 1) * 1_000_000)
    world.run(sh(2026, 3, 10, 15, 0))
    items = world.take()
    pings = keyed(items, "first_touch")
    assert len(pings) == 1  # the rest would be a stream of pings within 10 minutes
    records = world.all(select(AlertRecord).where(AlertRecord.kind == "first_touch"))
    assert sorted(r.status for r in records) == ["digest"] * 4 + ["queued"]
    world.run(sh(2026, 3, 10, 15, 5))
    assert keyed(world.take(), "digest") == []  # spacing not passed yet
    world.run(sh(2026, 3, 10, 15, 10))
    digests = keyed(world.take(), "digest")
    assert len(digests) == 1 and digests[0][1].card is not None
    assert digests[0][1].card.title == "提醒汇总 · 4 条"
    assert all(r.status in ("queued", "digested") for r in world.all(select(AlertRecord).where(AlertRecord.kind == "first_touch")))


def test_over_the_daily_cap_waits_for_tomorrows_todo(world: World) -> None:
    world.settings = replace(world.settings, budget=Budget(daily_cap=1, min_spacing=timedelta(minutes=0)))
    world.run(sh(2026, 3, 10, 9, 0))  # today's 今日待办 is out before the alerts arise
    for i in range(3):
        world.accepted_lead(sh(2026, 3, 10, 9, 0) + timedelta(minutes=i), company=f"客户{i}")
    world.run(sh(2026, 3, 10, 15, 0))
    assert len(keyed(world.take(), "first_touch")) == 1
    world.run(sh(2026, 3, 10, 16, 0))
    assert keyed(world.take(), "digest") == []  # cap reached today
    world.run(sh(2026, 3, 11, 9, 0))
    todo = [o for _, o in world.take(everything=True) if o.dedupe_key.startswith("alert:todo:zhangwei")]
    assert len(todo) == 1 and "客户1 尚无首通记录" in todo[0].card.text  # type: ignore[union-attr]
    assert not world.all(select(AlertRecord).where(AlertRecord.status == "digest"))


def test_mute_from_the_card_silences_that_kind_until_next_monday(world: World) -> None:
    world.accepted_lead(sh(2026, 3, 10, 9, 0), company="客户甲")
    world.run(sh(2026, 3, 10, 15, 0))
    card = keyed(world.take(), "first_touch")[0][1]
    out = click(world, "zhangwei", card, "本周不再提醒")
    assert any(o.kind == "card_update" for o in out)
    mute = world.get(AlertMute, ("zhangwei", "first_touch"))
    assert mute.until == sh(2026, 3, 16, 0, 0)
    world.accepted_lead(sh(2026, 3, 11, 9, 0), company="客户乙")
    world.run(sh(2026, 3, 11, 15, 0))
    assert keyed(world.take(), "first_touch") == []
    world.accepted_lead(sh(2026, 3, 16, 9, 0), company="客户丙")
    world.run(sh(2026, 3, 16, 15, 0))
    assert len(keyed(world.take(), "first_touch")) == 1


def test_alert_cards_have_handles_for_their_buttons(world: World) -> None:
    world.accepted_lead(sh(2026, 3, 10, 9, 0))
    world.run(sh(2026, 3, 10, 15, 0))
    out = keyed(world.take(), "first_touch")[0][1]
    handle = world.get(CardHandle, out.card_id)
    assert handle is not None and handle.member_id == "zhangwei"
    assert not world.all(select(AuditEvent).where(AuditEvent.actor == "zhangwei"))


def test_spring_festival_holds_stalled_and_intent_alerts_until_the_first_working_morning(world: World) -> None:
    lead = world.accepted_lead(sh(2026, 2, 12, 9, 0), tier="A", owner="lina", company="恒锐精密")
    world.touch(lead.id, sh(2026, 2, 13, 10, 0), text="王总说节后签合同", fields={"intents": ["sign_intent"]}, member="lina")
    other = world.accepted_lead(sh(2026, 2, 12, 9, 0), owner="zhangwei", company="海川传感")
    world.touch(other.id, sh(2026, 2, 13, 17, 30), text="客户确认下单意向", fields={"intents": ["sign_intent"]})
    seen: dict[str, list[tuple[object, Outgoing]]] = {"stalled": [], "sign_intent": []}
    for day in range(13, 25):
        for hour in (9, 12, 16, 20):
            world.run(sh(2026, 2, day, hour, 0))
            items = world.take()
            for kind in seen:
                seen[kind] += keyed(items, kind)
    # The make-up Saturday is a working day: the Friday-morning intent is prompted then.
    intents = sorted(((w, o.member_id) for w, o in seen["sign_intent"]), key=lambda x: x[0])  # type: ignore[arg-type,return-value]
    assert intents == [(sh(2026, 2, 14, 12, 0), "lina"), (sh(2026, 2, 24, 9, 0), "zhangwei")]
    # 48 h after Friday 10:00 is Sunday 10:00, inside the holiday: the manager hears on 02-24.
    assert [(w, o.member_id) for w, o in seen["stalled"]] == [(sh(2026, 2, 24, 9, 0), "chenjing")]
