"""Service tickets: priority, owner, and the SLA chain with its pause while waiting for the customer."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from handlers.actions import ActionKey
from handlers.context import Outgoing
from handlers.tickets import (
    EscalationStep,
    TicketPolicy,
    classify,
    looks_like_ticket,
    on_ticket_action,
    open_ticket,
)
from store.models import Customer, Member, Ticket
from store.models_schedule import TicketSla
from tests.test_scheduler_world import World, open_world, sh


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    yield from open_world(db_url, tmp_path)

POLICY = TicketPolicy(owner="wangqiang", supervisor="chenjing", vp="admin")


@pytest.mark.parametrize(
    ("text", "key", "priority"),
    [
        ("客户反馈 XX 设备报错 E04，产线停了", False, "P0"),
        ("设备漏电，工人差点触电", False, "P0"),
        ("客户反馈压装机报错 E04，还能凑合用", False, "P1"),
        ("客户反馈压装机报错 E04，还能凑合用", True, "P0"),
        ("客户问能不能加一次操作培训", False, "P2"),
    ],
)
def test_priority_rules(text: str, key: bool, priority: str) -> None:
    assert classify(text, key_customer=key)[0] == priority


def test_looks_like_ticket_tells_service_from_sales() -> None:
    assert looks_like_ticket("客户反馈 XX 设备报错 E04，产线停了")
    assert not looks_like_ticket("今天和恒锐王总通了电话，下周去看产线")


def _open(world: World, text: str, customer: Customer | None = None, policy: TicketPolicy = POLICY) -> tuple[Ticket, list[Outgoing]]:
    def go(s):  # type: ignore[no-untyped-def]
        rep = s.get(Member, "zhangwei")
        return open_ticket(s, rep, text, world.ctx, policy, "test", customer)

    return world.tx(go)  # type: ignore[no-any-return]


def _press(world: World, member: str, card: Outgoing, label: str, policy: TicketPolicy = POLICY) -> list[Outgoing]:
    assert card.card is not None
    key = ActionKey.unpack(next(a.key for a in card.card.actions if a.label == label), world.ctx.secret)
    return world.tx(lambda s: on_ticket_action(s, s.get(Member, member), key, world.ctx, f"t:{label}", policy))  # type: ignore[no-any-return]


def _escalations(world: World) -> list[tuple[object, Outgoing]]:
    return [(w, o) for w, o in world.take() if o.dedupe_key.startswith("alert:ticket:")]


def test_p0_at_night_goes_to_owner_at_once_and_escalates_on_wall_time(world: World) -> None:
    world.settings = replace(world.settings, tickets=POLICY)
    world.clock.set(sh(2026, 3, 14, 23, 0))  # Saturday night
    ticket, out = _open(world, "客户反馈 XX 设备报错 E04，产线停了")
    assert ticket.priority == "P0" and ticket.owner_id == "wangqiang"
    assert [o.member_id for o in out] == ["wangqiang", "zhangwei"]
    assert ticket.sla_due_at == sh(2026, 3, 15, 1, 0)
    world.run(sh(2026, 3, 15, 0, 59))
    assert _escalations(world) == []
    world.run(sh(2026, 3, 15, 1, 0))
    got = _escalations(world)
    assert len(got) == 1 and got[0][1].member_id == "chenjing"
    assert got[0][0] == sh(2026, 3, 15, 1, 0)  # P0: not held for the morning
    assert "2 小时未接单" in got[0][1].text
    # 48 h later still nothing: the VP.
    world.run(sh(2026, 3, 17, 0, 59))
    assert _escalations(world) == []
    world.run(sh(2026, 3, 17, 1, 0))
    vp = _escalations(world)
    assert [o.member_id for _, o in vp] == ["admin"]
    world.run(sh(2026, 3, 20, 1, 0))
    assert _escalations(world) == []  # end of the chain


def test_p1_counts_business_hours_and_accepting_stops_the_first_step(world: World) -> None:
    world.settings = replace(world.settings, tickets=POLICY)
    world.clock.set(sh(2026, 3, 13, 17, 30))  # Friday
    ticket, out = _open(world, "客户反馈压装机报错 E04，还能用")
    assert ticket.priority == "P1" and ticket.sla_due_at == sh(2026, 3, 16, 10, 30)
    world.clock.set(sh(2026, 3, 16, 9, 15))
    _press(world, "wangqiang", out[0], "接单")
    t = world.get(Ticket, ticket.id)
    assert t.status == "accepted"
    world.run(sh(2026, 3, 16, 10, 30))
    assert _escalations(world) == []
    # 48 business hours from Mon 09:15: 8.75 h + 4 × 9 h = 44.75 h by Fri 18:00, + 3.25 h → Mon 23rd 12:15.
    assert world.get(Ticket, ticket.id).sla_due_at == sh(2026, 3, 23, 12, 15)


def test_waiting_for_the_customer_pauses_the_clock(world: World) -> None:
    world.settings = replace(world.settings, tickets=POLICY)
    world.clock.set(sh(2026, 3, 10, 10, 0))
    ticket, out = _open(world, "客户反馈设备报错 E04")
    assert ticket.sla_due_at == sh(2026, 3, 10, 12, 0)
    world.clock.set(sh(2026, 3, 10, 11, 0))
    _press(world, "wangqiang", out[0], "等待客户")
    assert world.get(Ticket, ticket.id).status == "waiting_customer"
    world.run(sh(2026, 3, 12, 15, 0))  # two days later: paused, no escalation
    assert _escalations(world) == []
    world.clock.set(sh(2026, 3, 12, 15, 0))
    _press(world, "wangqiang", out[0], "客户已回复")
    t = world.get(Ticket, ticket.id)
    assert t.status == "open" and t.sla_due_at == sh(2026, 3, 12, 16, 0)  # the hour that was left
    world.run(sh(2026, 3, 12, 16, 0))
    assert [o.member_id for _, o in _escalations(world)] == ["chenjing"]


def test_only_the_owner_moves_the_ticket_and_resolved_stops_it(world: World) -> None:
    world.settings = replace(world.settings, tickets=POLICY)
    ticket, out = _open(world, "客户反馈设备报错 E04")
    refused = _press(world, "lina", out[0], "接单")
    assert "不在您名下" in refused[0].text
    _press(world, "wangqiang", out[0], "已解决")
    assert world.get(Ticket, ticket.id).status == "resolved"
    world.run(sh(2026, 3, 20, 10, 0))
    assert _escalations(world) == []


def test_key_customer_fault_is_p0_and_steps_are_configurable(world: World) -> None:
    policy = TicketPolicy.from_mapping({"owner": "wangqiang", "supervisor": "chenjing", "vp": "admin",
                                        "steps": [{"when": "accept", "hours": 0.5, "to": "supervisor"}]})
    world.settings = replace(world.settings, tickets=policy)
    customer = world.tx(lambda s: _customer(s, world))
    ticket, _ = _open(world, "客户反馈压装机报错 E04", customer, policy)
    assert ticket.priority == "P0" and ticket.sla_due_at == sh(2026, 3, 10, 10, 30)
    sla = world.get(TicketSla, ticket.id)
    assert sla.step == 0
    with pytest.raises(ValueError):
        TicketPolicy.from_mapping({"steps": [{"when": "lunch", "hours": 1, "to": "vp"}]})
    assert policy.steps == (EscalationStep("accept", 0.5, "supervisor"),)


def _customer(s, world: World) -> Customer:  # type: ignore[no-untyped-def]
    c = Customer(name="宁德重点客户", name_norm="宁德重点客户", tier="KA", created_at=world.clock.now(), updated_at=world.clock.now())
    s.add(c)
    s.flush()
    return c


def test_p2_at_night_is_announced_to_the_owner_next_working_morning(world: World) -> None:
    world.settings = replace(world.settings, tickets=POLICY)
    world.clock.set(sh(2026, 2, 14, 20, 0))  # the make-up Saturday's evening, Spring Festival ahead
    ticket, out = _open(world, "客户问能不能加一次操作培训")
    assert ticket.priority == "P2"
    assert [o.member_id for o in out] == ["zhangwei"] and "上班后" in out[0].text
    world.run(sh(2026, 2, 14, 20, 1))
    got = [(w, o) for w, o in world.take() if o.dedupe_key == f"alert:ticket_new:{ticket.id}"]
    assert len(got) == 1 and got[0][1].member_id == "wangqiang"
    assert got[0][0] == sh(2026, 2, 24, 9, 0)  # after the holiday
    assert got[0][1].card is not None and "接单" in [a.label for a in got[0][1].card.actions]
    world.run(sh(2026, 2, 24, 9, 0))
    assert not [o for _, o in world.take() if "ticket_new" in o.dedupe_key]
    # Its SLA clock started in business time too: 2 business hours after the opening.
    assert world.get(Ticket, ticket.id).sla_due_at == sh(2026, 2, 24, 11, 0)


def test_chat_report_becomes_a_ticket_for_the_named_customer(world: World) -> None:
    from handlers.tickets import on_ticket_text

    lead = world.lead()
    world.clock.set(sh(2026, 3, 10, 11, 0))
    text = "苏州恒锐精密反馈设备报错 E04，产线停了"
    out = world.tx(lambda s: on_ticket_text(s, s.get(Member, lead.owner_id), text, world.ctx, "chat:1", POLICY))
    ticket = world.all(select(Ticket))[0]
    assert ticket.priority == "P0" and ticket.customer_id == lead.customer_id
    assert out[0].member_id == "wangqiang" and out[0].dedupe_key == f"alert:ticket_new:{ticket.id}"


def test_router_table_binds_the_policy(world: World) -> None:
    from handlers.tickets import TICKET_VERBS, action_handlers

    table = action_handlers(POLICY)
    assert set(table) == set(TICKET_VERBS)
    ticket, out = _open(world, "客户反馈设备报错 E04")
    key = ActionKey.unpack(next(a.key for a in out[0].card.actions if a.label == "接单"), world.ctx.secret)  # type: ignore[union-attr]
    reply = world.tx(lambda s: table[key.verb](s, s.get(Member, "wangqiang"), key, world.ctx, "r"))
    assert "已接单" in reply[0].text and world.get(Ticket, ticket.id).status == "accepted"
