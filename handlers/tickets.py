"""Service tickets: priority from rules and keywords, an owner, and an SLA escalation chain.

A rep writes「客户反馈 XX 设备报错 E04，产线停了」: the ticket gets P0/P1/P2 (P0 = production
stopped, safety, or a key customer's fault), an owner, and a chain of deadlines, each
configurable: not accepted within 2 h → the service supervisor; no progress within 48 h
→ the vice president. P0 is pushed at once, night or holiday, and its clock runs on wall
time; P1/P2 clocks count business hours. While the ticket waits for the customer the
clock is paused and what was left of the running step is kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from cards.model import Card, CardAction, CardField, card_from_dict, card_to_dict
from handlers import webhooks as webhook_events
from handlers.actions import ActionKey
from handlers.context import HandlerContext, Outgoing
from handlers.leads import audit, new_card_id
from nlp.calendar import SHANGHAI
from store.alerts import insert_new, skip_locked
from store.models import CardHandle, Customer, Member, Ticket
from store.models_schedule import AlertRecord, TicketSla

P0_WORDS = ("停产", "停线", "产线停", "线停了", "生产停", "停机", "停工", "安全", "起火", "着火", "冒烟", "漏电", "触电", "爆炸", "受伤", "伤人", "人身")
# "不能" alone would catch「能不能加一次培训」: only the phrases that mean a broken machine.
FAULT_WORDS = ("报错", "故障", "报警", "异常", "坏了", "损坏", "无法启动", "无法开机", "不能用", "用不了", "不工作", "漏油", "漏气", "卡死", "死机", "错误")
_ERROR_CODE = re.compile(r"(?<![A-Za-z])[EF]-?\d{1,4}\b|错误码|故障码")
TICKET_HINTS = ("客户反馈", "设备", "报修", "售后", "维修", "投诉")
KEY_CUSTOMER_TIERS = ("A", "KA", "S")
OPEN_STATUSES = ("open", "accepted")


@dataclass(frozen=True)
class EscalationStep:
    """One link of the SLA chain: unless ``when`` happened within ``hours``, tell ``to``.

    ``when`` is ``accept`` (the owner accepted) or ``progress`` (the owner recorded
    progress); ``to`` is a member id.
    """

    when: str
    hours: float
    to: str


@dataclass(frozen=True)
class TicketPolicy:
    """Who owns tickets and how they escalate (``[scheduler.tickets]`` in leadbot.toml)."""

    owner: str = ""
    supervisor: str = ""
    vp: str = ""
    steps: tuple[EscalationStep, ...] = (
        EscalationStep("accept", 2.0, "supervisor"),
        EscalationStep("progress", 48.0, "vp"),
    )
    wall_clock_priorities: tuple[str, ...] = ("P0",)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> TicketPolicy:
        """From ``{owner, supervisor, vp, steps=[{when, hours, to}], wall_clock_priorities}``."""
        steps = tuple(
            EscalationStep(str(s["when"]), float(s["hours"]), str(s["to"])) for s in data.get("steps", ())
        ) or cls.steps
        for s in steps:
            if s.when not in ("accept", "progress"):
                raise ValueError(f"[scheduler.tickets] steps.when 应为 accept 或 progress，而不是 `{s.when}`")
        return cls(
            owner=str(data.get("owner", "")), supervisor=str(data.get("supervisor", "")), vp=str(data.get("vp", "")),
            steps=steps, wall_clock_priorities=tuple(data.get("wall_clock_priorities", ("P0",))),
        )

    def resolve(self, to: str) -> str:
        """A step's target: the role names ``supervisor``/``vp``/``owner`` or a member id."""
        return {"supervisor": self.supervisor, "vp": self.vp, "owner": self.owner}.get(to, to)


def classify(text: str, *, key_customer: bool = False) -> tuple[str, str]:
    """Priority and the reason for it: P0 = production stopped / safety / key customer's fault."""
    for word in P0_WORDS:
        if word in text:
            return "P0", f"含「{word}」（停产或安全）"
    fault = next((w for w in FAULT_WORDS if w in text), None)
    code = _ERROR_CODE.search(text)
    if key_customer and (fault or code):
        return "P0", "重点客户设备故障"
    if fault or code:
        return "P1", f"设备故障（{fault or (code.group(0) if code else '')}）"
    return "P2", "一般咨询"


def looks_like_ticket(text: str) -> bool:
    """Whether a rep's message reports a customer's problem rather than a sales follow-up."""
    if any(w in text for w in P0_WORDS):
        return any(h in text for h in TICKET_HINTS) or bool(_ERROR_CODE.search(text))
    return any(h in text for h in TICKET_HINTS) and (any(w in text for w in FAULT_WORDS) or bool(_ERROR_CODE.search(text)))


class _Clock:
    """Deadline arithmetic of one ticket: wall time for P0, business hours otherwise."""

    def __init__(self, ctx: HandlerContext, policy: TicketPolicy, priority: str) -> None:
        self.ctx, self.wall = ctx, priority in policy.wall_clock_priorities

    def add(self, start: datetime, seconds: float) -> datetime:
        if self.wall:
            return start + timedelta(seconds=seconds)
        return self.ctx.business_hours.add(start, seconds / 3600)

    def left(self, now: datetime, due: datetime) -> float:
        if self.wall:
            return max(0.0, (due - now).total_seconds())
        return self.ctx.business_hours.between(now, due).total_seconds()


def _local(ts: datetime) -> str:
    return ts.astimezone(SHANGHAI).strftime("%m-%d %H:%M")


def ticket_card(ticket: Ticket, card_id: str, secret: str, customer: str, why: str) -> Card:
    """The owner's card: what happened, how urgent, and the buttons that move the SLA clock."""
    assert ticket.id is not None
    arg = str(ticket.id)
    fields = [CardField("优先级", f"{ticket.priority}（{why}）"), CardField("客户", customer or "未关联")]
    if ticket.sla_due_at:
        fields.append(CardField("请在此前接单", _local(ticket.sla_due_at)))
    return Card(
        title=f"服务工单 #{ticket.id} · {ticket.priority}",
        fields=tuple(fields),
        text=ticket.text[:500],
        actions=(
            CardAction("接单", ActionKey("t_accept", card_id, arg).pack(secret), "primary"),
            CardAction("更新进展", ActionKey("t_progress", card_id, arg).pack(secret)),
            CardAction("等待客户", ActionKey("t_wait", card_id, arg).pack(secret)),
            CardAction("客户已回复", ActionKey("t_resume", card_id, arg).pack(secret)),
            CardAction("已解决", ActionKey("t_done", card_id, arg).pack(secret)),
        ),
    )


def open_ticket(
    session: Session, reporter: Member, text: str, ctx: HandlerContext, policy: TicketPolicy,
    cause: str, customer: Customer | None = None,
) -> tuple[Ticket, list[Outgoing]]:
    """Create a ticket from a rep's report, start its SLA chain and notify its owner.

    The owner's card is an Outgoing with ``dedupe_key`` ``ticket:<id>:new``; a P0 ticket's card
    should be queued for immediate delivery (the scheduler's delivery plan does this for
    P0 alerts; from a chat handler it is queued at once anyway).
    """
    now = ctx.clock.now()
    key_customer = bool(customer and customer.tier in KEY_CUSTOMER_TIERS)
    priority, why = classify(text, key_customer=key_customer)
    owner = policy.owner or reporter.manager_id or reporter.id
    clock = _Clock(ctx, policy, priority)
    first = policy.steps[0] if policy.steps else None
    ticket = Ticket(
        customer_id=customer.id if customer else None, owner_id=owner, priority=priority, status="open",
        text=text, created_at=now, updated_at=now,
        sla_due_at=clock.add(now, first.hours * 3600) if first else None,
    )
    session.add(ticket)
    session.flush()
    assert ticket.id is not None
    session.add(TicketSla(ticket_id=ticket.id, step=0, escalated_to="[]", updated_at=now))
    audit(session, "ticket", ticket.id, reporter.id, "created", f"{priority}：{why} → {owner}", now)
    card_id = new_card_id()
    card = ticket_card(ticket, card_id, ctx.secret, customer.name if customer else "", why)
    session.add(CardHandle(card_id=card_id, platform="", member_id=owner, subject=f"ticket:{ticket.id}",
                           card_json=json.dumps(card_to_dict(card), ensure_ascii=False), created_at=now, updated_at=now))
    out: list[Outgoing] = []
    # P0 goes out at once, night or holiday; the rest waits for working hours (the
    # scheduler's ticket_new scan announces it then).
    if priority in policy.wall_clock_priorities or ctx.business_hours.is_open(now):
        announced = announce(session, ticket, now, now)
        out += [announced] if announced else []
    if owner != reporter.id:
        when = "负责人已收到" if out else "负责人将在上班后收到"
        out.append(Outgoing(reporter.id, "text", f"{cause}:reply", text=f"已建服务工单 #{ticket.id}（{priority}），{when}。"))
    return ticket, out


def announce(session: Session, ticket: Ticket, now: datetime, deliver_at: datetime) -> Outgoing | None:
    """The owner's card for a new ticket, once (its alert key is ``ticket_new:<id>``).

    Records the key in the alert ledger with ``deliver_at`` so the scheduler's delivery plan
    holds a card announced at night until the morning; None when it was announced before.
    """
    assert ticket.id is not None
    handle = session.execute(
        select(CardHandle).where(col(CardHandle.subject) == f"ticket:{ticket.id}").order_by(col(CardHandle.created_at))
    ).scalars().first()
    if handle is None or not ticket.owner_id:
        return None
    key = f"ticket_new:{ticket.id}"
    inserted = insert_new(session, AlertRecord(
        key=key, kind="ticket_new", member_id=ticket.owner_id, priority=ticket.priority, subject=f"ticket:{ticket.id}",
        summary=f"新服务工单 #{ticket.id}（{ticket.priority}）", status="queued", deliver_at=deliver_at, created_at=now,
    ))
    if not inserted:
        return None
    card = card_from_dict(json.loads(handle.card_json))
    return Outgoing(ticket.owner_id, "card", f"alert:{key}", card=card, card_id=handle.card_id)


def _advance_to(sla: TicketSla, ticket: Ticket, policy: TicketPolicy, clock: _Clock, now: datetime, kind: str) -> None:
    """Satisfy the running step if it waits for ``kind`` and start the next matching one."""
    steps = policy.steps
    while sla.step < len(steps) and steps[sla.step].when == "accept" and kind in ("accept", "progress"):
        sla.step += 1
    if sla.step < len(steps):
        ticket.sla_due_at = clock.add(now, steps[sla.step].hours * 3600)
    else:
        ticket.sla_due_at = None


def on_ticket_action(session: Session, member: Member, key: ActionKey, ctx: HandlerContext, cause: str,
                     policy: TicketPolicy | None = None) -> list[Outgoing]:
    """Owner's buttons: 接单 / 更新进展 / 等待客户 (pause) / 客户已回复 (resume) / 已解决."""
    policy = policy or TicketPolicy()
    now = ctx.clock.now()
    ticket = session.get(Ticket, int(key.arg)) if key.arg.isdigit() else None
    sla = session.get(TicketSla, ticket.id) if ticket and ticket.id else None
    if ticket is None or sla is None:
        return [Outgoing(member.id, "text", f"{cause}:reply", text="这张卡片已失效。")]
    assert ticket.id is not None
    if ticket.owner_id != member.id:
        return [Outgoing(member.id, "text", f"{cause}:reply", text="这张工单不在您名下，您无需操作。")]
    if ticket.status in ("resolved", "closed"):
        return [Outgoing(member.id, "text", f"{cause}:reply", text="这张工单已解决。")]
    clock = _Clock(ctx, policy, ticket.priority)
    reply = ""
    if key.verb == "t_wait":
        if ticket.status != "waiting_customer":
            sla.remaining_seconds = clock.left(now, ticket.sla_due_at) if ticket.sla_due_at else None
            sla.paused_at, ticket.sla_due_at, ticket.status = now, None, "waiting_customer"
        reply = f"工单 #{ticket.id} 已标记为等待客户，SLA 计时暂停。"
    elif key.verb == "t_resume":
        if ticket.status == "waiting_customer":
            ticket.status = "accepted" if sla.accepted_at else "open"
            if sla.remaining_seconds is not None:
                ticket.sla_due_at = clock.add(now, sla.remaining_seconds)
            sla.paused_at, sla.remaining_seconds = None, None
        reply = f"工单 #{ticket.id} 恢复计时。"
    elif key.verb == "t_accept":
        if sla.accepted_at is None:
            sla.accepted_at, ticket.status = now, "accepted"
            _advance_to(sla, ticket, policy, clock, now, "accept")
        reply = f"已接单：工单 #{ticket.id}。"
    elif key.verb == "t_progress":
        sla.last_progress_at = now
        if sla.accepted_at is None:
            sla.accepted_at, ticket.status = now, "accepted"
        _advance_to(sla, ticket, policy, clock, now, "progress")
        reply = f"已记录工单 #{ticket.id} 的进展。"
    elif key.verb == "t_done":
        ticket.status, ticket.sla_due_at = "resolved", None
        reply = f"工单 #{ticket.id} 已解决，辛苦了。"
    else:
        return [Outgoing(member.id, "text", f"{cause}:reply", text="无法识别的操作。")]
    ticket.updated_at = sla.updated_at = now
    session.add(ticket)
    session.add(sla)
    audit(session, "ticket", ticket.id, member.id, key.verb, "", now)
    return [Outgoing(member.id, "text", f"{cause}:reply", text=reply)]


@dataclass(frozen=True)
class Escalation:
    """One escalation to send: who, about which ticket, at which step."""

    member_id: str
    ticket_id: int
    step: int
    priority: str
    text: str
    key: str = field(default="")


def escalate_due(session: Session, ctx: HandlerContext, now: datetime, policy: TicketPolicy,
                 batch: int = 500, hooks: list[Outgoing] | None = None) -> tuple[list[Escalation], bool]:
    """Up to ``batch`` tickets whose SLA step ran out, each moved one step up its chain.

    Returns the escalations and whether more tickets may be due (call again in a new
    transaction). Rows are claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL; the step
    index moves in the same transaction as the escalation is recorded, so it happens once.
    ``hooks`` (when given) receives the ``ticket_escalated`` webhook messages to queue with it.
    """
    result: list[Escalation] = []
    stmt = (
        select(Ticket)
        .where(col(Ticket.sla_due_at) <= now, col(Ticket.status).in_(OPEN_STATUSES))
        .order_by(col(Ticket.sla_due_at), col(Ticket.id))
        .limit(batch)
    )
    if skip_locked(session):
        stmt = stmt.with_for_update(skip_locked=True)
    rows = list(session.execute(stmt).scalars())
    for ticket in rows:
        assert ticket.id is not None
        sla = session.get(TicketSla, ticket.id)
        if sla is None:
            sla = TicketSla(ticket_id=ticket.id, step=0, escalated_to="[]", updated_at=now)
        clock = _Clock(ctx, policy, ticket.priority)
        if sla.step >= len(policy.steps):
            ticket.sla_due_at = None
        else:
            step = policy.steps[sla.step]
            target = policy.resolve(step.to)
            owner = session.get(Member, ticket.owner_id) if ticket.owner_id else None
            what = "未接单" if step.when == "accept" else "无进展"
            hours = f"{step.hours:g} 小时" if clock.wall else f"{step.hours:g} 个工作小时"
            text = (
                f"服务工单 #{ticket.id}（{ticket.priority}）已 {hours}{what}，负责人：{owner.name if owner else '未指定'}。"
                f"\n{ticket.text[:200]}\n请协助确认处理进度。"
            )
            if target:
                result.append(Escalation(target, ticket.id, sla.step, ticket.priority, text, f"ticket:{ticket.id}:step{sla.step}"))
                sent = json.loads(sla.escalated_to or "[]")
                sla.escalated_to = json.dumps(sent + [target])
            audit(session, "ticket", ticket.id, "rule:ticket-sla", "escalated", f"步骤 {sla.step + 1}：{what} → {target or '未配置'}", now)
            if hooks is not None:
                hooks += webhook_events.escalation_events(session, ticket, sla.step, target, what, ctx.webhooks, now)
            sla.step += 1
            # The next link's clock starts now: nobody hears twice about the same silence.
            ticket.sla_due_at = clock.add(now, policy.steps[sla.step].hours * 3600) if sla.step < len(policy.steps) else None
        ticket.updated_at = sla.updated_at = now
        session.add(ticket)
        session.add(sla)
    return result, len(rows) == batch


def on_ticket_text(session: Session, member: Member, text: str, ctx: HandlerContext, cause: str,
                   policy: TicketPolicy | None = None) -> list[Outgoing]:
    """A rep reported a customer's problem in chat (see :func:`looks_like_ticket`): open a ticket.

    The customer is the one of the rep's open leads the text names, when it names one.
    """
    from handlers.followups import match_lead
    from handlers.leads import active_leads

    lead = match_lead(text, active_leads(session, member.id))
    customer = session.get(Customer, lead.customer_id) if lead is not None and lead.customer_id else None
    _, out = open_ticket(session, member, text, ctx, policy or TicketPolicy(), cause, customer)
    return out


TICKET_VERBS = ("t_accept", "t_progress", "t_wait", "t_resume", "t_done")


def action_handlers(policy: TicketPolicy) -> dict[str, Callable[[Session, Member, ActionKey, HandlerContext, str], list[Outgoing]]]:
    """The ticket card's button verbs bound to ``policy``, to merge into the router's table."""

    def handler(session: Session, member: Member, key: ActionKey, ctx: HandlerContext, cause: str) -> list[Outgoing]:
        return on_ticket_action(session, member, key, ctx, cause, policy)

    return dict.fromkeys(TICKET_VERBS, handler)
