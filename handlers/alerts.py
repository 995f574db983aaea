"""Alerts: from "something needs a person's attention" to an Outgoing, politely.

Every alert has a unique key. :func:`emit` decides, in the caller's transaction, what
happens to it and writes that decision to the alert ledger under the key:

* muted by the person (「本周不再提醒」) → recorded, nothing sent;
* quiet hours (night, weekend, holiday) → queued for the next working morning, unless P0;
* over the person's notification budget (daily cap, minimum spacing) → rolled into the
  next digest instead of another ping;
* otherwise queued now.

A key that was decided before is skipped, so a replayed scan or a second server never
sends the same alert twice. The caller queues the returned Outgoing with the delivery
time :func:`delivery_plan` gives, in the same transaction.

The buttons on alert cards (mute, the stalled-lead choices, 一键建档) are handled here too.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlmodel import Session, col

from cards.model import Card, CardAction, card_from_dict, card_to_dict
from handlers.actions import ActionKey
from handlers.context import HandlerContext, Outgoing
from handlers.leads import audit
from nlp.calendar import SHANGHAI
from store import alerts as ledger
from store.models import CardHandle, Lead, Member, Opportunity
from store.models_schedule import AlertRecord

ALERT_PREFIX = "alert:"


@dataclass(frozen=True)
class Budget:
    """How much a person may be pinged: at most ``daily_cap`` alerts a day, ``min_spacing`` apart.

    ``exempt`` kinds (the digests themselves, service-ticket notices) neither count against
    the budget nor roll into a digest.
    """

    daily_cap: int = 8
    min_spacing: timedelta = timedelta(minutes=10)
    exempt: frozenset[str] = frozenset({"todo", "weekly", "digest", "ticket", "ticket_new"})


@dataclass(frozen=True)
class Alert:
    """Something one person should hear about, under a unique ``key``.

    ``summary`` is the one line shown when the alert is rolled into a digest; ``stake_fen``
    is what is at stake (ranks digest items).
    """

    member_id: str
    kind: str
    key: str
    summary: str
    card: Card | None = None
    text: str = ""
    priority: str = "P2"
    subject: str = ""
    stake_fen: int | None = None
    mutable: bool = True


def alert_card_id(key: str) -> str:
    """A card id derived from the alert key, so a replay addresses the same card."""
    return "al" + hashlib.sha1(key.encode()).hexdigest()[:14]


def mute_action(card_id: str, kind: str, secret: str) -> CardAction:
    """The 「本周不再提醒」 button for alerts of ``kind``."""
    return CardAction("本周不再提醒", ActionKey("mute", card_id, kind).pack(secret))


def end_of_week(now: datetime) -> datetime:
    """Next Monday 00:00 in Shanghai: when a「本周不再提醒」mute ends."""
    local = now.astimezone(SHANGHAI)
    monday = local.date() + timedelta(days=7 - local.weekday())
    return datetime.combine(monday, time(0, 0), SHANGHAI)


def _day_bounds(at: datetime) -> tuple[datetime, datetime]:
    day = at.astimezone(SHANGHAI).date()
    start = datetime.combine(day, time(0, 0), SHANGHAI)
    return start, start + timedelta(days=1)


class _BudgetState:
    """One person's budget for one delivery day, loaded once per :func:`emit` and kept current."""

    def __init__(self, session: Session, member_id: str, deliver_at: datetime, budget: Budget) -> None:
        start, end = _day_bounds(deliver_at)
        self.budget = budget
        self.count = ledger.queued_between(session, member_id, start, end, budget.exempt)
        self.last = ledger.last_delivery_before(session, member_id, deliver_at, budget.exempt)

    def allows(self, deliver_at: datetime) -> bool:
        if self.count >= self.budget.daily_cap:
            return False
        return self.last is None or deliver_at - self.last >= self.budget.min_spacing

    def spend(self, deliver_at: datetime) -> None:
        self.count += 1
        self.last = deliver_at if self.last is None else max(self.last, deliver_at)


def emit(session: Session, ctx: HandlerContext, alerts: list[Alert], now: datetime, budget: Budget = Budget()) -> list[Outgoing]:
    """Decide each alert (muted, deferred, digested or queued), record it, return what to send."""
    out: list[Outgoing] = []
    if not alerts:
        return out
    seen = ledger.existing_keys(session, {a.key for a in alerts})
    states: dict[tuple[str, datetime], _BudgetState] = {}
    mutes: dict[tuple[str, str], bool] = {}
    for alert in alerts:
        if alert.key in seen:
            continue
        seen.add(alert.key)
        p0 = alert.priority == "P0"
        deliver_at = now if p0 else ctx.business_hours.next_open(now)
        mute_key = (alert.member_id, alert.kind)
        if alert.mutable and not p0 and mute_key not in mutes:
            mutes[mute_key] = ledger.is_muted(session, alert.member_id, alert.kind, now)
        counted = not p0 and alert.kind not in budget.exempt
        state = None
        if counted:
            state = states.get((alert.member_id, deliver_at))
            if state is None:
                state = states[(alert.member_id, deliver_at)] = _BudgetState(session, alert.member_id, deliver_at, budget)
        if alert.mutable and not p0 and mutes[mute_key]:
            status = "muted"
        elif state is not None and not state.allows(deliver_at):
            status = "digest"
        else:
            status = "queued"
        row = AlertRecord(
            key=alert.key, kind=alert.kind, member_id=alert.member_id, priority=alert.priority,
            subject=alert.subject[:64], summary=alert.summary[:300], stake_fen=alert.stake_fen,
            status=status, deliver_at=deliver_at, created_at=now,
        )
        if not ledger.insert_new(session, row) or status != "queued":
            continue
        if state is not None:
            state.spend(deliver_at)
        dedupe = ALERT_PREFIX + alert.key
        if alert.card is None:
            out.append(Outgoing(alert.member_id, "text", dedupe, text=alert.text))
            continue
        card_id = alert_card_id(alert.key)
        card = alert.card
        if alert.mutable and not p0:
            card = Card(card.title, card.fields, card.text, card.actions + (mute_action(card_id, alert.kind, ctx.secret),), card.status)
        session.add(
            CardHandle(
                card_id=card_id, platform="", member_id=alert.member_id, subject=(alert.subject or f"alert:{alert.kind}")[:64],
                card_json=json.dumps(card_to_dict(card), ensure_ascii=False), created_at=now, updated_at=now,
            )
        )
        out.append(Outgoing(alert.member_id, "card", dedupe, card=card, card_id=card_id))
    return out


def delivery_plan(session: Session, ctx: HandlerContext, outgoing: list[Outgoing], now: datetime) -> list[tuple[datetime, list[Outgoing]]]:
    """Group scan output by when it may be delivered, earliest first.

    Alerts go at the time :func:`emit` recorded; card updates (a silent edit of a card the
    person already has) go now; anything else produced by a scan waits for working hours.
    """
    groups: dict[datetime, list[Outgoing]] = defaultdict(list)
    keys = [o.dedupe_key[len(ALERT_PREFIX):] for o in outgoing if o.dedupe_key.startswith(ALERT_PREFIX)]
    when_by_key: dict[str, datetime] = {}
    if keys:
        from sqlalchemy import select

        for i in range(0, len(keys), 500):
            rows = session.execute(
                select(col(AlertRecord.key), col(AlertRecord.deliver_at)).where(col(AlertRecord.key).in_(keys[i : i + 500]))
            ).all()
            when_by_key.update({k: at for k, at in rows})
    for o in outgoing:
        key = o.dedupe_key[len(ALERT_PREFIX):] if o.dedupe_key.startswith(ALERT_PREFIX) else None
        if key is not None and key in when_by_key:
            when = max(now, when_by_key[key])
        elif o.kind == "card_update":
            when = now
        else:
            when = ctx.business_hours.next_open(now)
        groups[when].append(o)
    return sorted(groups.items(), key=lambda kv: kv[0])


# ---------------------------------------------------------------- card buttons


def _reply(member: Member, cause: str, text: str) -> Outgoing:
    return Outgoing(member.id, "text", f"{cause}:reply", text=text)


def _close(session: Session, handle: CardHandle, status: str, now: datetime, cause: str) -> Outgoing:
    card = card_from_dict(json.loads(handle.card_json)).with_status(status)
    handle.card_json = json.dumps(card_to_dict(card), ensure_ascii=False)
    handle.state = "closed"
    handle.updated_at = now
    session.add(handle)
    return Outgoing(handle.member_id, "card_update", f"{cause}:card", card=card, card_id=handle.card_id)


def _own_open_handle(session: Session, member: Member, key: ActionKey) -> CardHandle | None:
    handle = session.get(CardHandle, key.card_id)
    if handle is None or handle.member_id != member.id:
        return None
    return handle


def on_mute(session: Session, member: Member, key: ActionKey, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    """「本周不再提醒」: mute this kind of alert for the member until next Monday."""
    now = ctx.clock.now()
    handle = _own_open_handle(session, member, key)
    if handle is None:
        return [_reply(member, cause, "这张卡片已失效。")]
    ledger.mute(session, member.id, key.arg, end_of_week(now), now)
    return [
        _close(session, handle, "本周不再提醒此类消息", now, cause),
        _reply(member, cause, "好的，本周不再推送这类提醒，下周一恢复。"),
    ]


def _stalled_leads(handle: CardHandle) -> list[int]:
    # The card lists the leads it is about as "#<id>" fields (the first few, when many).
    card = card_from_dict(json.loads(handle.card_json))
    return [int(f.label[1:]) for f in card.fields if f.label.startswith("#") and f.label[1:].isdigit()]


def on_stalled_choice(session: Session, member: Member, key: ActionKey, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    """A manager's answer on a stalled-leads card: 我来跟进 / 提醒<rep> / 忽略."""
    now = ctx.clock.now()
    handle = _own_open_handle(session, member, key)
    if handle is None or handle.state != "open":
        return [_reply(member, cause, "这张卡片已处理过了。")]
    # subject "stalled:<owner id>" names the rep whose leads the card is about.
    owner_id = handle.subject.partition(":")[2] if handle.subject.startswith("stalled:") else ""
    owner = session.get(Member, owner_id) if owner_id else None
    lead_ids = _stalled_leads(handle)
    out: list[Outgoing] = []
    if key.verb == "stall_take":
        for lead_id in lead_ids:
            audit(session, "lead", lead_id, member.id, "support", "经理表示亲自跟进", now)
        out.append(_close(session, handle, f"您将亲自跟进 · {now.astimezone(SHANGHAI):%m-%d %H:%M}", now, cause))
        if owner is not None:
            out.append(Outgoing(owner.id, "text", f"{cause}:owner", text=f"{member.name}会一起跟进您名下的 {len(lead_ids)} 条A类线索，有需要可以直接沟通。"))
    elif key.verb == "stall_nudge":
        names = []
        for lead_id in lead_ids:
            lead = session.get(Lead, lead_id)
            if lead is not None:
                names.append(f"#{lead.id} {lead.company}")
        out.append(_close(session, handle, f"已提醒{owner.name if owner else '负责人'}", now, cause))
        if owner is not None:
            out.append(
                Outgoing(owner.id, "text", f"{cause}:nudge",
                         text="这几条A类线索有一阵没有新进展了，方便时联系一下客户，有困难随时说：\n" + "\n".join(names))
            )
    else:
        out.append(_close(session, handle, "已忽略", now, cause))
    return out


def on_quick_opportunity(session: Session, member: Member, key: ActionKey, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    """「一键建档」: create the opportunity for a lead that showed signing intent."""
    now = ctx.clock.now()
    handle = _own_open_handle(session, member, key)
    lead = session.get(Lead, int(key.arg)) if key.arg.isdigit() else None
    if handle is None or lead is None or handle.state != "open":
        return [_reply(member, cause, "这张卡片已失效。")]
    assert lead.id is not None
    from sqlalchemy import select

    existing = session.execute(select(Opportunity).where(col(Opportunity.lead_id) == lead.id)).scalars().first()
    if existing is None:
        existing = Opportunity(
            customer_id=lead.customer_id, lead_id=lead.id, owner_id=member.id, name=lead.company,
            amount_fen=lead.budget_fen, created_at=now, updated_at=now,
        )
        session.add(existing)
        session.flush()
        assert existing.id is not None
        audit(session, "opportunity", existing.id, member.id, "created", f"一键建档（线索 #{lead.id}）", now)
    return [_close(session, handle, f"已建档 · 商机 #{existing.id}", now, cause)]


ACTION_HANDLERS = {
    "mute": on_mute,
    "stall_take": on_stalled_choice,
    "stall_nudge": on_stalled_choice,
    "stall_ignore": on_stalled_choice,
    "quick_opp": on_quick_opportunity,
}
"""Verbs of alert-card buttons, to merge into :data:`handlers.router.ACTION_HANDLERS`."""
