"""The periodic scans: what happens because time passed.

Each scan is ``scan_xxx(session, ctx, now, settings) -> list[Outgoing]`` and runs in one
transaction; :func:`run_all` queues what it returns (with :func:`handlers.alerts.delivery_plan`
deciding when each message may go out) and commits, so an alert key is recorded exactly
when its message is queued.

How a scan reads only what is due:

* state-changing scans (unaccepted leads, ticket SLAs) select ``due_at <= now`` rows in
  batches with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL; handling a row moves it out of
  the due set;
* watermark scans (first touch, stage deadlines, stalled leads, signing intent) keep a
  ``(due, id)`` cursor in :class:`store.models_schedule.ScanState` and read only rows
  past it; the state row is locked ``SKIP LOCKED`` so a second server skips the scan;
* once-a-day scans (follow-up dates, 今日待办, the weekly report) keep the last day they
  ran and fire at the first scan inside working hours.

Alert keys make all of it idempotent: a replay or a second server cannot send twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute
from sqlmodel import Session, col

from cards.model import Card, CardAction, CardField
from handlers import alerts as alerting
from handlers import metrics
from handlers.actions import ActionKey
from handlers.alerts import Alert, alert_card_id
from handlers.context import HandlerContext, Outgoing
from handlers.digests import (
    RiskFigures,
    TodoItem,
    digest_card,
    fmt_money,
    rank_todo,
    todo_card,
    weekly_card,
)
from handlers.leads import assign, audit, close_card
from handlers.tickets import announce, escalate_due
from nlp.calendar import SHANGHAI
from scheduler.config import ScanSettings
from store import alerts as ledger
from store.db import Database
from store.models import (
    AuditEvent,
    CardHandle,
    Customer,
    FollowUp,
    Lead,
    Member,
    Opportunity,
    Region,
    Ticket,
)
from store.models_schedule import AlertRecord, ScanState

log = logging.getLogger("leadbot.scheduler")

DEFAULT = ScanSettings()
Enqueue = Callable[[Session, list[Outgoing], datetime], None]
Scan = Callable[[Session, HandlerContext, datetime, ScanSettings], list[Outgoing]]
M = TypeVar("M")


class Batch(list[Outgoing]):
    """A scan's output for one transaction; ``more`` says it stopped early and wants another.

    Scans work in bounded transactions (on SQLite the write lock is held for the whole
    transaction, and the inbox must never wait long), so a backlog is worked off in several.
    """

    more: bool = False


def _batch(out: list[Outgoing], more: bool) -> Batch:
    result = Batch(out)
    result.more = more
    return result


def _local(ts: datetime) -> str:
    return ts.astimezone(SHANGHAI).strftime("%m-%d %H:%M")


def _digest(parts: Sequence[object]) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:12]


class _Names:
    """Member lookups cached for one scan."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._cache: dict[str, Member | None] = {}

    def get(self, member_id: str | None) -> Member | None:
        if not member_id:
            return None
        if member_id not in self._cache:
            self._cache[member_id] = self.session.get(Member, member_id)
        return self._cache[member_id]

    def name(self, member_id: str | None) -> str:
        m = self.get(member_id)
        return m.name if m else (member_id or "未分配")

    def manager_of(self, member_id: str | None, region: str | None = None) -> str | None:
        m = self.get(member_id)
        if m is not None and m.manager_id:
            return m.manager_id
        region = region or (m.region if m else None)
        if region:
            r = self.session.get(Region, region)
            if r is not None and r.manager_id:
                return r.manager_id
        return None


def _watermark(
    session: Session, state: ScanState, model: type[M], column: Any, upper: datetime,
    where: Sequence[Any], batch: int, floor: datetime,
) -> Iterator[M]:
    """Rows with ``(column, id)`` past the scan's cursor and ``column <= upper``, in order, in batches.

    The query is one plain index range (``cursor <= column <= upper``); the few rows that
    share the cursor's timestamp and were handled already are skipped here, because an
    ``OR`` in the range makes SQLite's planner give up the index.
    """
    ident: InstrumentedAttribute[Any] = model.id  # type: ignore[attr-defined]
    key = column.key
    at, row_id = state.cursor_at or floor, state.cursor_id if state.cursor_at else 0
    strict = False  # True once every row at ``at`` itself has been read
    while True:
        bound = column > at if strict else column >= at
        rows = list(session.execute(
            select(model).where(bound, column <= upper, *where).order_by(column, ident).limit(batch)
        ).scalars())
        yield from (r for r in rows if (getattr(r, key), r.id) > (at, row_id))
        if len(rows) < batch:
            return
        last = rows[-1]
        if getattr(last, key) != at:
            at, row_id, strict = getattr(last, key), last.id, False
            continue
        # A whole batch shares the cursor's timestamp: page through that instant by id
        # (from wherever is further: the batch's end or the stored cursor).
        row_id = max(row_id, last.id)
        while True:
            same = list(session.execute(
                select(model).where(column == at, *where, ident > row_id).order_by(ident).limit(batch)
            ).scalars())
            yield from same
            if same:
                row_id = same[-1].id
            if len(same) < batch:
                break
        strict = True


# ---------------------------------------------------------------- 1. unaccepted lead cards


def scan_unaccepted(session: Session, ctx: HandlerContext, now: datetime, settings: ScanSettings = DEFAULT) -> list[Outgoing]:
    """Lead cards not accepted by their deadline: re-assign, close the old card, tell the manager once.

    The next rep is chosen by the region's rotation, excluding everyone who already had the
    card. Each region manager receives ONE card per scan listing every lead that moved
    (per transaction of ``reassign_batch`` leads; a larger backlog's further cards fall
    under the manager's notification budget and roll into a digest).
    """
    out: list[Outgoing] = []
    names = _Names(session)
    moved: dict[str, list[tuple[Lead, str, str | None, datetime]]] = defaultdict(list)
    stmt = (
        select(Lead)
        .where(col(Lead.status) == "assigned", col(Lead.accept_due_at) <= now)
        .order_by(col(Lead.accept_due_at), col(Lead.id))
        .limit(settings.reassign_batch)
    )
    if ledger.skip_locked(session):
        stmt = stmt.with_for_update(skip_locked=True)
    rows = list(session.execute(stmt).scalars())
    for lead in rows:
        assert lead.id is not None and lead.accept_due_at is not None
        first, due = lead.owner_id or "", lead.accept_due_at
        had = set(session.execute(select(col(CardHandle.member_id)).where(col(CardHandle.subject) == f"lead:{lead.id}")).scalars())
        for handle in session.execute(
            select(CardHandle).where(col(CardHandle.subject) == f"lead:{lead.id}", col(CardHandle.state) == "open")
        ).scalars():
            out.append(close_card(session, handle, f"已转派 · 超过接受时限 · {_local(now)}", now, f"reassign:{lead.id}:{handle.card_id}"))
        audit(session, "lead", lead.id, "rule:accept-timeout", "accept_timeout", f"{first} 在 {_local(due)} 前未接受", now)
        assigned = assign(session, lead, ctx, now, "rule:accept-timeout", exclude=frozenset(had | {first}))
        # The manager hears about unassignable leads in the aggregated card instead.
        out += [o for o in assigned if ":unassigned:" not in o.dedupe_key]
        manager = names.manager_of(first, lead.region)
        if manager:
            moved[manager].append((lead, first, lead.owner_id if lead.status == "assigned" else None, due))
    batch: list[Alert] = []
    for manager, items in moved.items():
        lines = [
            f"#{lead.id} {lead.company}：{names.name(first)} → " + (names.name(new) if new else "暂无可派销售，请手动分配")
            for lead, first, new, _ in items
        ]
        key = f"reassigned:{manager}:{_digest([(lead.id, due.isoformat()) for lead, _, _, due in items])}"
        card = Card(
            title=f"线索超时转派 · {len(items)} 条",
            text="以下线索超过接受时限未被接受，已按区域轮询自动转派：\n" + "\n".join(lines[:20])
            + (f"\n……另有 {len(lines) - 20} 条" if len(lines) > 20 else ""),
        )
        batch.append(Alert(manager, "reassigned", key, f"{len(items)} 条线索超时未接受，已自动转派", card=card,
                           stake_fen=sum(lead.budget_fen or 0 for lead, *_ in items)))
    return _batch(out + alerting.emit(session, ctx, batch, now, settings.budget), len(rows) == settings.reassign_batch)


# ---------------------------------------------------------------- 2. first touch and stage deadlines


def scan_first_touch(session: Session, ctx: HandlerContext, now: datetime, settings: ScanSettings = DEFAULT) -> list[Outgoing]:
    """Accepted leads without a first contact within N business hours: a gentle nudge to the rep.

    The deadline ``BusinessHours.add(accepted_at, N)`` grows with ``accepted_at``, so the due
    leads are a prefix in ``accepted_at`` order: the scan stops at the first one not yet due.
    """
    state = ledger.claim_scan(session, "first_touch", now)
    if state is None:
        return []
    hours = settings.first_touch_business_hours
    batch: list[Alert] = []
    last: tuple[datetime, int] | None = None
    more = False
    for n, lead in enumerate(_watermark(
        session, state, Lead, col(Lead.accepted_at), now - timedelta(hours=hours), (),
        settings.batch, now - settings.lookback,
    )):
        if n >= settings.batch:
            more = True  # the rest in the next transaction
            break
        assert lead.id is not None and lead.accepted_at is not None
        if ctx.business_hours.add(lead.accepted_at, hours) > now:
            break
        last = (lead.accepted_at, lead.id)
        touched = lead.last_interaction_at is not None and lead.last_interaction_at > lead.accepted_at
        if lead.status != "accepted" or touched or not lead.owner_id:
            continue
        card = Card(
            title=f"首通提醒 · #{lead.id} {lead.company}",
            fields=(CardField("联系人", lead.contact_name or "未填写"), CardField("电话", lead.phone or "未填写"),
                    CardField("接受时间", _local(lead.accepted_at))),
            text=f"这条线索接受已超过 {hours:g} 个工作小时，还没有首通记录。联系后把情况发给我，就会记为跟进。",
        )
        batch.append(Alert(lead.owner_id, "first_touch", f"first_touch:{lead.id}:{int(lead.accepted_at.timestamp())}",
                           f"#{lead.id} {lead.company} 尚无首通记录", card=card, subject=f"lead:{lead.id}", stake_fen=lead.budget_fen))
    if last is not None:
        ledger.advance_cursor(session, state, last[0], last[1], now)
    return _batch(alerting.emit(session, ctx, batch, now, settings.budget), more)


def scan_stage_due(session: Session, ctx: HandlerContext, now: datetime, settings: ScanSettings = DEFAULT) -> list[Outgoing]:
    """Opportunities whose stage deadline (``stage_due_at``) passed: remind the owner once per stage."""
    state = ledger.claim_scan(session, "stage_due", now)
    if state is None:
        return []
    batch: list[Alert] = []
    last: tuple[datetime, int] | None = None
    more = False
    for n, opp in enumerate(_watermark(session, state, Opportunity, col(Opportunity.stage_due_at), now,
                          (), settings.batch, now - settings.lookback)):
        if n >= settings.batch:
            more = True  # the rest in the next transaction
            break
        assert opp.id is not None and opp.stage_due_at is not None
        last = (opp.stage_due_at, opp.id)
        if not opp.owner_id:
            continue
        money = fmt_money(opp.amount_fen)
        card = Card(
            title=f"商机阶段到期 · {opp.name}",
            fields=(CardField("阶段", opp.stage), CardField("阶段截止", _local(opp.stage_due_at)))
            + ((CardField("金额", money),) if money else ()),
            text="这个阶段的计划时间到了。有新进展发给我即可更新；需要延期也可以直接说明原因。",
        )
        key = f"stage_due:{opp.id}:{_digest([opp.stage])}:{int(opp.stage_due_at.timestamp())}"
        batch.append(Alert(opp.owner_id, "stage_due", key, f"商机「{opp.name}」{opp.stage}阶段已到期", card=card,
                           subject=f"opportunity:{opp.id}", stake_fen=opp.amount_fen))
    if last is not None:
        ledger.advance_cursor(session, state, last[0], last[1], now)
    return _batch(alerting.emit(session, ctx, batch, now, settings.budget), more)


# ---------------------------------------------------------------- 3. stalled A-tier leads


def scan_stalled(session: Session, ctx: HandlerContext, now: datetime, settings: ScanSettings = DEFAULT) -> list[Outgoing]:
    """A-tier leads without interaction for 48 h: one non-blaming card per rep to their manager.

    The watermark runs over ``last_interaction_at``: a new interaction moves the lead past
    the cursor, so it is judged again from its new time.
    """
    state = ledger.claim_scan(session, "stalled", now)
    if state is None:
        return []
    hours = settings.stalled_hours
    threshold = now - timedelta(hours=hours)
    names = _Names(session)
    by_owner: dict[str, list[Lead]] = defaultdict(list)
    last: tuple[datetime, int] | None = None
    more = False
    for n, lead in enumerate(_watermark(
        session, state, Lead, col(Lead.last_interaction_at), threshold,
        (col(Lead.status) == "accepted", col(Lead.tier).in_(settings.stalled_tiers)),
        settings.batch, threshold - settings.lookback,
    )):
        if n >= settings.batch:
            more = True  # the rest in the next transaction
            break
        assert lead.id is not None and lead.last_interaction_at is not None
        last = (lead.last_interaction_at, lead.id)
        if lead.owner_id:
            by_owner[lead.owner_id].append(lead)
    if last is not None:
        ledger.advance_cursor(session, state, last[0], last[1], now)
    batch: list[Alert] = []
    for owner, leads in by_owner.items():
        manager = names.manager_of(owner)
        if not manager or manager == owner:
            continue
        who = names.name(owner)
        tiers = "/".join(settings.stalled_tiers)
        key = f"stalled:{manager}:{owner}:{_digest([(l.id, l.last_interaction_at) for l in leads])}"
        card_id = alert_card_id(key)
        arg = f"{hours:g}"
        card = Card(
            title=f"{tiers}类线索关注 · {who}",
            text=f"{who}负责的{tiers}类线索中，有{len(leads)}条距上次互动已超{hours:g}小时，请确认是否需要支援",
            fields=tuple(CardField(f"#{l.id}", l.company) for l in leads[:5]),
            actions=(
                CardAction("我来跟进", ActionKey("stall_take", card_id, arg).pack(ctx.secret), "primary"),
                CardAction(f"提醒{who}", ActionKey("stall_nudge", card_id, arg).pack(ctx.secret)),
                CardAction("忽略", ActionKey("stall_ignore", card_id, arg).pack(ctx.secret)),
            ),
        )
        batch.append(Alert(manager, "stalled", key, f"{who}有{len(leads)}条{tiers}类线索超{hours:g}小时未互动",
                           card=card, subject=f"stalled:{owner}", stake_fen=sum(l.budget_fen or 0 for l in leads)))
    return _batch(alerting.emit(session, ctx, batch, now, settings.budget), more)


# ---------------------------------------------------------------- 4. signing intent without an opportunity


def _intents(fields_json: str) -> list[str]:
    try:
        data = json.loads(fields_json or "{}")
    except ValueError:
        return []
    intents = data.get("intents") if isinstance(data, dict) else None
    return [str(i) for i in intents] if isinstance(intents, list) else []


def scan_sign_intent(session: Session, ctx: HandlerContext, now: datetime, settings: ScanSettings = DEFAULT) -> list[Outgoing]:
    """A follow-up showed signing intent 24 h ago and there is still no opportunity: offer 一键建档."""
    state = ledger.claim_scan(session, "sign_intent", now)
    if state is None:
        return []
    batch: list[Alert] = []
    last: tuple[datetime, int] | None = None
    upper = now - timedelta(hours=settings.intent_hours)
    more = False
    for n, follow in enumerate(_watermark(session, state, FollowUp, col(FollowUp.created_at), upper,
                             (col(FollowUp.fields_json).contains("sign_intent"),), settings.batch, upper - settings.lookback)):
        if n >= settings.batch:
            more = True  # the rest in the next transaction
            break
        assert follow.id is not None
        last = (follow.created_at, follow.id)
        if "sign_intent" not in _intents(follow.fields_json) or follow.lead_id is None:
            continue
        lead = session.get(Lead, follow.lead_id)
        if lead is None or lead.status == "invalid":
            continue
        has_opp = session.execute(
            select(col(Opportunity.id)).where(or_(col(Opportunity.lead_id) == lead.id,
                                             and_(col(Opportunity.customer_id).is_not(None), col(Opportunity.customer_id) == lead.customer_id)))
        ).first()
        if has_opp:
            continue
        key = f"sign_intent:{lead.id}"
        card_id = alert_card_id(key)
        card = Card(
            title="检测到潜在签约线索，是否快速建档？",
            fields=(CardField("客户", lead.company), CardField("跟进时间", _local(follow.created_at)))
            + ((CardField("预算", fmt_money(lead.budget_fen)),) if lead.budget_fen else ()),
            text=f"跟进记录：{follow.text[:120]}",
            actions=(CardAction("一键建档", ActionKey("quick_opp", card_id, str(lead.id)).pack(ctx.secret), "primary"),),
        )
        batch.append(Alert(follow.member_id, "sign_intent", key, f"{lead.company} 有签约意向，尚未建商机", card=card,
                           subject=f"lead:{lead.id}", stake_fen=lead.budget_fen))
    if last is not None:
        ledger.advance_cursor(session, state, last[0], last[1], now)
    return _batch(alerting.emit(session, ctx, batch, now, settings.budget), more)


# ---------------------------------------------------------------- 5. agreed follow-up dates


def _today_if_open(ctx: HandlerContext, now: datetime) -> date | None:
    """Today's date when ``now`` is inside working hours (once-a-day scans fire then)."""
    return now.astimezone(SHANGHAI).date() if ctx.business_hours.is_open(now) else None


def _contacts_due(session: Session, after: date, today: date) -> dict[str, dict[str, date]]:
    """Per rep: company → agreed date, for dates in ``(after, today]``."""
    due: dict[str, dict[str, date]] = defaultdict(dict)
    for follow in session.execute(
        select(FollowUp).where(col(FollowUp.next_contact_on) > after, col(FollowUp.next_contact_on) <= today, col(FollowUp.status) == "confirmed")
    ).scalars():
        assert follow.next_contact_on is not None
        lead = session.get(Lead, follow.lead_id) if follow.lead_id else None
        customer = session.get(Customer, follow.customer_id) if follow.customer_id else None
        name = (customer.name if customer else None) or (lead.company if lead else None) or follow.text[:20]
        due[follow.member_id][name] = follow.next_contact_on
    for customer in session.execute(
        select(Customer).where(col(Customer.next_contact_on) > after, col(Customer.next_contact_on) <= today, col(Customer.owner_id).is_not(None))
    ).scalars():
        assert customer.owner_id is not None and customer.next_contact_on is not None
        due[customer.owner_id].setdefault(customer.name, customer.next_contact_on)
    return due


def scan_next_contact(session: Session, ctx: HandlerContext, now: datetime, settings: ScanSettings = DEFAULT) -> list[Outgoing]:
    """「下次联系 2月20日」: remind the rep on that working morning (or the next one after a holiday)."""
    today = _today_if_open(ctx, now)
    if today is None:
        return []
    state = ledger.claim_scan(session, "next_contact", now)
    if state is None or (state.cursor_day is not None and state.cursor_day >= today):
        return []
    after = state.cursor_day or (today - timedelta(days=1))
    ledger.advance_day(session, state, today, now)
    batch: list[Alert] = []
    for rep, companies in _contacts_due(session, after, today).items():
        lines = [
            f"· {name}（约定 {d.month}月{d.day}日）" + ("" if d == today else "，遇节假日顺延")
            for name, d in sorted(companies.items(), key=lambda kv: kv[1])
        ]
        card = Card(title=f"今天约好联系的客户 · {len(companies)} 位", text="\n".join(lines))
        batch.append(Alert(rep, "next_contact", f"next_contact:{rep}:{today.isoformat()}",
                           f"今天约好联系 {len(companies)} 位客户", card=card))
    return alerting.emit(session, ctx, batch, now, settings.budget)


# ---------------------------------------------------------------- 6. 今日待办 TOP5


def _todo_items(session: Session, rep: Member, now: datetime, today: date, settings: ScanSettings,
                contacts: dict[str, date]) -> tuple[list[TodoItem], int, list[AlertRecord]]:
    """The candidates for a rep's TOP list (the largest stakes of each kind), how many there
    are in all, and the rolled-over alerts folded in."""
    items: list[TodoItem] = []
    total = 0
    top = settings.todo_size
    end_of_day = datetime.combine(today + timedelta(days=1), time(0, 0), SHANGHAI)
    stalled_before = now - timedelta(hours=settings.stalled_hours)
    waiting = (col(Lead.owner_id) == rep.id, col(Lead.status) == "assigned")
    stalled = (col(Lead.owner_id) == rep.id, col(Lead.status) == "accepted", col(Lead.last_interaction_at) <= stalled_before)
    due_opps = (col(Opportunity.owner_id) == rep.id, col(Opportunity.stage_due_at) <= end_of_day)
    for where in (waiting, stalled):
        total += session.execute(select(func.count()).select_from(Lead).where(*where)).scalar_one()
        for lead in session.execute(
            select(Lead).where(*where).order_by(col(Lead.budget_fen).desc().nulls_last(), col(Lead.id)).limit(top)
        ).scalars():
            money = fmt_money(lead.budget_fen)
            if where is waiting:
                items.append(TodoItem(f"接受或转派新线索 #{lead.id} {lead.company}",
                                      f"线索将被转派{('，可能错过' + money + '预算') if money else ''}", lead.budget_fen or 0, 2))
                continue
            never = lead.accepted_at is not None and lead.last_interaction_at is not None and lead.last_interaction_at <= lead.accepted_at
            items.append(TodoItem(("首次联系" if never else "回访") + f" #{lead.id} {lead.company}",
                                  f"客户可能转向同行{('，约' + money[1:] + '预算') if money else ''}", lead.budget_fen or 0, 1))
    total += session.execute(select(func.count()).select_from(Opportunity).where(*due_opps)).scalar_one()
    for opp in session.execute(
        select(Opportunity).where(*due_opps).order_by(col(Opportunity.amount_fen).desc().nulls_last(), col(Opportunity.id)).limit(top)
    ).scalars():
        money = fmt_money(opp.amount_fen)
        items.append(TodoItem(f"推进商机「{opp.name}」（{opp.stage}）",
                              f"丢失{money}商机" if money else "商机推进延后", opp.amount_fen or 0, 3))
    for name in contacts:
        items.append(TodoItem(f"联系 {name}（约定今天）", "错过与客户约好的时间", 0, 2))
    total += len(contacts)
    rolled = ledger.waiting_digest(session, rep.id)
    for rec in rolled:
        money = fmt_money(rec.stake_fen)
        items.append(TodoItem(rec.summary, f"涉及{money}" if money else "延后处理", rec.stake_fen or 0, 0))
    return items, total + len(rolled), rolled


def scan_daily_todo(session: Session, ctx: HandlerContext, now: datetime, settings: ScanSettings = DEFAULT) -> list[Outgoing]:
    """At the first scan of a working day: each rep's TOP5 with what is at stake.

    Also the daily digest: alerts rolled over the budget since the last one are folded in.
    """
    today = _today_if_open(ctx, now)
    if today is None:
        return []
    state = ledger.claim_scan(session, "daily_todo", now)
    if state is None or (state.cursor_day is not None and state.cursor_day >= today):
        return []
    # Reps are done a chunk per transaction; (cursor_at = today's midnight, cursor_id =
    # position) remembers how far today's round got, so a crash resumes, not repeats.
    midnight = datetime.combine(today, time(0, 0), SHANGHAI)
    start = state.cursor_id if state.cursor_at == midnight else 0
    reps = list(session.execute(
        select(Member).where(col(Member.role) == "rep", col(Member.active).is_(True)).order_by(col(Member.id))
    ).scalars())
    chunk = reps[start : start + settings.todo_batch]
    more = start + len(chunk) < len(reps)
    if more:
        ledger.advance_cursor(session, state, midnight, start + len(chunk), now)
    else:
        ledger.advance_cursor(session, state, None, 0, now)
        ledger.advance_day(session, state, today, now)
    batch: list[Alert] = []
    contacts = _contacts_due(session, today - timedelta(days=1), today)
    for rep in chunk:
        items, total, rolled = _todo_items(session, rep, now, today, settings, contacts.get(rep.id, {}))
        if not items:
            continue
        top = rank_todo(items, settings.todo_size)
        ledger.mark_digested(session, [r.id for r in rolled if r.id is not None])
        batch.append(Alert(rep.id, "todo", f"todo:{rep.id}:{today.isoformat()}", f"今日待办 {total} 项",
                           card=todo_card(today, top, total)))
    return _batch(alerting.emit(session, ctx, batch, now, settings.budget), more)


# ---------------------------------------------------------------- 7. weekly risk report


def _region_figures(session: Session, ctx: HandlerContext, region: Region, now: datetime, settings: ScanSettings) -> RiskFigures:
    since = now - timedelta(days=7)
    reps = list(session.execute(select(col(Member.id)).where(col(Member.region) == region.name)).scalars())
    # The black-hole rate as 报表 computes it, under the [metrics] threshold in force.
    definitions = metrics.settings_of(ctx, settings.metrics)
    period = metrics.Period(since, now, "近7天")
    facts = metrics.load_facts(session, period, metrics.Scope(region=region.name), definitions)
    clock = metrics.business_clock(ctx.business_hours, period, now)
    flags = metrics.black_hole_flags(facts, now, clock, definitions.black_hole_business_hours)
    created, black = len(facts), sum(flags.values())
    timeouts = session.execute(
        select(func.count()).select_from(AuditEvent).join(Lead, and_(col(AuditEvent.entity) == "lead", col(AuditEvent.entity_id) == col(Lead.id)))
        .where(col(AuditEvent.action) == "accept_timeout", col(AuditEvent.at) >= since, col(Lead.region) == region.name)
    ).scalar_one()
    first_touch = session.execute(
        select(func.count()).select_from(AlertRecord)
        .where(col(AlertRecord.kind) == "first_touch", col(AlertRecord.created_at) >= since, col(AlertRecord.member_id).in_(reps))
    ).scalar_one() if reps else 0
    stalled_count, stalled_amount = session.execute(
        select(func.count(), func.coalesce(func.sum(col(Opportunity.amount_fen)), 0))
        .where(col(Opportunity.stage_due_at) < now, col(Opportunity.owner_id).in_(reps))
    ).one() if reps else (0, 0)
    tickets = dict(
        session.execute(
            select(col(Ticket.priority), func.count()).where(col(Ticket.status).not_in(("resolved", "closed")), col(Ticket.owner_id).in_(reps))
            .group_by(col(Ticket.priority))
        ).all()
    ) if reps else {}
    return RiskFigures(region.name, created, black, int(timeouts), int(first_touch), int(stalled_count),
                       int(stalled_amount or 0), int(tickets.get("P0", 0)), int(tickets.get("P1", 0)),
                       black_hole_base=len(flags), black_hole_hours=definitions.black_hole_business_hours)


def scan_weekly_risk(session: Session, ctx: HandlerContext, now: datetime, settings: ScanSettings = DEFAULT) -> list[Outgoing]:
    """The first working morning of each week: a risk report per region for its manager."""
    today = _today_if_open(ctx, now)
    if today is None:
        return []
    monday = today - timedelta(days=today.weekday())
    state = ledger.claim_scan(session, "weekly_risk", now)
    if state is None or (state.cursor_day is not None and state.cursor_day >= monday):
        return []
    ledger.advance_day(session, state, monday, now)
    iso = monday.isocalendar()
    label = f"{iso.year}年第{iso.week}周"
    batch: list[Alert] = []
    for region in session.execute(select(Region).order_by(col(Region.name))).scalars():
        if not region.manager_id:
            continue
        figures = _region_figures(session, ctx, region, now, settings)
        batch.append(Alert(region.manager_id, "weekly", f"weekly:{region.manager_id}:{region.name}:{monday.isoformat()}",
                           f"{region.name}每周风险报告", card=weekly_card(label, figures)))
    return alerting.emit(session, ctx, batch, now, settings.budget)


# ---------------------------------------------------------------- tickets and digests


def scan_tickets(session: Session, ctx: HandlerContext, now: datetime, settings: ScanSettings = DEFAULT) -> list[Outgoing]:
    """Service tickets whose SLA step ran out: escalate one step up the configured chain."""
    hooks: list[Outgoing] = []  # ticket_escalated webhooks, queued in this transaction
    # The context's chain is the one a rules reload swapped in; the settings' is start-up's.
    policy = ctx.ticket_policy or settings.tickets
    escalations, more = escalate_due(session, ctx, now, policy, settings.batch, hooks)
    batch = [
        Alert(e.member_id, "ticket", e.key, f"工单 #{e.ticket_id} 升级提醒", text=e.text,
              priority="P0" if e.priority == "P0" else "P1", subject=f"ticket:{e.ticket_id}", mutable=False)
        for e in escalations
    ]
    return _batch(alerting.emit(session, ctx, batch, now, settings.budget) + hooks, more)


def scan_ticket_new(session: Session, ctx: HandlerContext, now: datetime, settings: ScanSettings = DEFAULT) -> list[Outgoing]:
    """Announce tickets opened outside working hours (non-P0) to their owner, at the next opening."""
    state = ledger.claim_scan(session, "ticket_new", now)
    if state is None:
        return []
    out: list[Outgoing] = []
    last: tuple[datetime, int] | None = None
    more = False
    for n, ticket in enumerate(_watermark(session, state, Ticket, col(Ticket.created_at), now, (), settings.batch, now - settings.lookback)):
        if n >= settings.batch:
            more = True  # the rest in the next transaction
            break
        assert ticket.id is not None
        last = (ticket.created_at, ticket.id)
        if ticket.status in ("resolved", "closed"):
            continue
        p0 = ticket.priority in (ctx.ticket_policy or settings.tickets).wall_clock_priorities
        announced = announce(session, ticket, now, now if p0 else ctx.business_hours.next_open(now))
        if announced is not None:
            out.append(announced)
    if last is not None:
        ledger.advance_cursor(session, state, last[0], last[1], now)
    return _batch(out, more)


def scan_digests(session: Session, ctx: HandlerContext, now: datetime, settings: ScanSettings = DEFAULT) -> list[Outgoing]:
    """Send what rolled over a person's budget as ONE digest once their spacing allows it.

    When the day's cap is reached the items wait for tomorrow's 今日待办 instead.
    """
    if not ctx.business_hours.is_open(now):
        return []
    budget = settings.budget
    per_member: dict[str, list[AlertRecord]] = defaultdict(list)
    for rec in ledger.waiting_digest(session, limit=10_000):
        per_member[rec.member_id].append(rec)
    batch: list[Alert] = []
    for member_id, recs in per_member.items():
        day_start = datetime.combine(now.astimezone(SHANGHAI).date(), time(0, 0), SHANGHAI)
        if ledger.queued_between(session, member_id, day_start, day_start + timedelta(days=1), budget.exempt) >= budget.daily_cap:
            continue
        last = ledger.last_delivery_before(session, member_id, now, budget.exempt)
        if last is not None and now - last < budget.min_spacing:
            continue
        recs.sort(key=lambda r: -(r.stake_fen or 0))
        ids = [r.id for r in recs if r.id is not None]
        ledger.mark_digested(session, ids)
        batch.append(Alert(member_id, "digest", f"digest:{member_id}:{min(ids)}-{max(ids)}-{len(ids)}",
                           f"提醒汇总 {len(ids)} 条", card=digest_card([r.summary for r in recs]), mutable=False))
    return alerting.emit(session, ctx, batch, now, settings.budget)


SCANS: tuple[tuple[str, Scan], ...] = (
    ("unaccepted", scan_unaccepted),
    ("first_touch", scan_first_touch),
    ("stage_due", scan_stage_due),
    ("next_contact", scan_next_contact),
    ("stalled", scan_stalled),
    ("sign_intent", scan_sign_intent),
    ("ticket_new", scan_ticket_new),
    ("tickets", scan_tickets),
    ("daily_todo", scan_daily_todo),
    ("weekly_risk", scan_weekly_risk),
    ("digests", scan_digests),
)
"""Every scan, in the order one tick runs them (the digests last, so they fold in the rest)."""


SCAN_TITLES: dict[str, str] = {
    "unaccepted": "超时未接受的线索（转派）",
    "first_touch": "接受后未首通",
    "stage_due": "商机阶段到期",
    "next_contact": "约定的联系日期",
    "stalled": "A类线索停滞",
    "sign_intent": "签约意向未建商机",
    "ticket_new": "非工作时间新建的工单",
    "tickets": "工单 SLA 升级",
    "daily_todo": "今日待办",
    "weekly_risk": "每周风险报告",
    "digests": "提醒汇总",
    "housekeeping": "清理过期的运行记录（每天一次）",
}


HOUSEKEEPING = "housekeeping"
"""The name :func:`run_all` reports the daily pruning under (rows deleted, not messages)."""


def parse_now(text: str) -> datetime:
    """``--now`` for ``leadbot scan``: ISO 8601; without an offset it is Shanghai local time."""
    value = datetime.fromisoformat(text.strip())
    return value if value.tzinfo is not None else value.replace(tzinfo=SHANGHAI)


def describe(counts: dict[str, int], now: datetime) -> str:
    """What ``leadbot scan`` prints: one line per scan, messages queued (or 失败)."""
    lines = [f"扫描时间 {now.astimezone(SHANGHAI):%Y-%m-%d %H:%M}（上海）"]
    for name, count in counts.items():
        unit = "行已删除" if name == HOUSEKEEPING else "条消息"
        shown = "失败，详见日志" if count < 0 else f"{count} {unit}"
        lines.append(f"  {name:<13} {SCAN_TITLES.get(name, name)}：{shown}")
    return "\n".join(lines)


def run_scan(db: Database, name: str, scan: Scan, ctx: HandlerContext, now: datetime, enqueue: Enqueue,
             settings: ScanSettings = DEFAULT) -> int:
    """One scan, in as many bounded transactions as it asks for (see :class:`Batch`).

    In each, its messages are queued and its alert keys committed together. Returns the
    number of messages queued.
    """
    total = 0
    for _ in range(settings.max_rounds):
        with db.session() as session:
            out = scan(session, ctx, now, settings)
            for when, group in alerting.delivery_plan(session, ctx, out, now):
                enqueue(session, group, when)
            session.commit()
        total += len(out)
        if not getattr(out, "more", False):
            break
    else:
        log.warning("scan %s still has work after %d transactions; the next tick continues", name, settings.max_rounds)
    return total


def run_all(db: Database, ctx: HandlerContext, now: datetime, enqueue: Enqueue, settings: ScanSettings = DEFAULT) -> dict[str, int]:
    """Run every scan once as of ``now`` (``leadbot scan --now ISO``); messages queued per scan.

    Then the daily housekeeping (:mod:`scheduler.housekeeping`), counted under
    :data:`HOUSEKEEPING` as rows deleted. A scan that fails is logged and counted as -1;
    the others still run (each is its own transaction, so a failure leaves nothing half-done).
    """
    counts: dict[str, int] = {}
    for name, scan in SCANS:
        try:
            counts[name] = run_scan(db, name, scan, ctx, now, enqueue, settings)
        except Exception:
            log.exception("scan %s failed", name)
            counts[name] = -1
    from scheduler.housekeeping import run_housekeeping

    try:
        counts[HOUSEKEEPING] = run_housekeeping(db, now, settings)
    except Exception:
        log.exception("housekeeping failed")
        counts[HOUSEKEEPING] = -1
    return counts
