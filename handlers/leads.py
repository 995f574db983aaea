"""Leads: intake from web forms, assignment to a rep, and the lead card's buttons."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import bindparam, func, or_, select, union, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from cards.model import Card, CardAction, CardField, card_to_dict
from handlers.actions import ActionKey
from handlers.assignment import (
    Assignment,
    AssignmentRules,
    LeadFacts,
    OrgSnapshot,
    Rep,
    decide,
    next_rep_after_timeout,
)
from handlers.assignment import Region as EngineRegion
from handlers.assignment import RotationState as EngineRotation
from handlers.context import HandlerContext, Outgoing
from handlers.dedupe import (
    DuplicateMatch,
    LeadKeys,
    MatchKey,
    find_duplicate,
    lead_keys,
    normalize_company,
    normalize_phone,
)
from handlers.scoring import default_scoring, score_new_lead
from nlp.calendar import SHANGHAI
from nlp.provinces import canonical_province
from store.models import (
    AuditEvent,
    CardHandle,
    Customer,
    Lead,
    Member,
    Opportunity,
    Region,
    RotationState,
)

SOURCES = ("官网表单", "抖音", "展会", "微信转发", "电话", "转介绍")
INVALID_REASONS = ("空号", "同行", "重复", "无需求")
WON_STAGE = "签约"
DEDUPE_CANDIDATES = 200
MAX_TEXT = {"company": 200, "contact": 64, "industry": 32, "note": 2000, "city": 32, "phone": 32}


class LeadFormError(ValueError):
    """A web-form lead that cannot be accepted; ``errors`` maps field → Chinese reason."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


@dataclass(frozen=True)
class LeadForm:
    """A validated lead from a web form or an import row."""

    company: str
    contact: str
    phone: str
    phone_norm: str
    province: str
    city: str | None
    industry: str | None
    budget_fen: int | None
    source: str
    note: str


_BUDGET = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(万|w|W|元)?\s*$")


def parse_budget_fen(raw: Any) -> int | None:
    """Budget in yuan (number) or text such as ``60万`` / ``600000`` → integer fen."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise ValueError("budget")
    if isinstance(raw, (int, float)):
        value = Decimal(str(raw))
    else:
        m = _BUDGET.match(str(raw))
        if not m:
            raise ValueError("budget")
        value = Decimal(m.group(1)) * (10000 if m.group(2) in ("万", "w", "W") else 1)
    if value < 0 or value > Decimal("1e12"):
        raise ValueError("budget")
    return int((value * 100).to_integral_value())


def validate_form(data: Mapping[str, Any]) -> LeadForm:
    """Check a web-form lead; raises :class:`LeadFormError` with every problem at once."""
    errors: dict[str, str] = {}

    def text(key: str, required: bool) -> str:
        value = data.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                errors[key] = "必填"
            return ""
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            errors[key] = "应为文本"
            return ""
        value = str(value).strip()
        if len(value) > MAX_TEXT.get(key, 64):
            errors[key] = f"过长（最多 {MAX_TEXT.get(key, 64)} 字）"
        return value

    company = text("company", True)
    contact = text("contact", True)
    phone_raw = text("phone", True)
    province_raw = text("province", True)
    city = text("city", False) or None
    industry = text("industry", False) or None
    note = text("note", False)
    source = text("source", False) or "官网表单"

    phone_norm = normalize_phone(phone_raw) if phone_raw else None
    if phone_raw and not phone_norm:
        errors["phone"] = f"`{phone_raw}` 不是有效的手机或座机号码"
    province = canonical_province(province_raw) if province_raw else None
    if province_raw and not province:
        errors["province"] = f"`{province_raw}` 不是有效的省份名称"
    if source not in SOURCES:
        errors["source"] = f"来源应为 {' / '.join(SOURCES)} 之一"
    budget_fen = None
    try:
        budget_fen = parse_budget_fen(data.get("budget"))
    except (ValueError, InvalidOperation):
        errors["budget"] = "预算应为金额，例如 600000 或 \"60万\""
    if errors:
        raise LeadFormError(errors)
    return LeadForm(
        company=company, contact=contact, phone=phone_raw, phone_norm=phone_norm or "",
        province=province or "", city=city, industry=industry, budget_fen=budget_fen,
        source=source, note=note,
    )


@dataclass(frozen=True)
class IntakeResult:
    """What the form poster is told."""

    lead_id: int
    status: str
    owner: str | None
    outgoing: tuple[Outgoing, ...]


def _local(ts: datetime) -> str:
    return ts.astimezone(SHANGHAI).strftime("%m-%d %H:%M")


def _fmt_budget(fen: int | None) -> str:
    if fen is None:
        return "未填写"
    yuan = Decimal(fen) / 100
    if yuan >= 10000:
        return f"{(yuan / 10000).normalize():f}万"
    return f"{yuan.normalize():f}元"


def lead_card(lead: Lead, card_id: str, secret: str, explanation: str) -> Card:
    """The card a rep gets for a new lead: who, what, why it is theirs, and three buttons."""
    assert lead.id is not None
    fields = [
        CardField("公司", lead.company),
        CardField("联系人", lead.contact_name or "未填写"),
        CardField("电话", lead.phone or "未填写"),
        CardField("地区", " ".join(x for x in (lead.province, lead.city) if x) or "未知"),
        CardField("行业", lead.industry or "未填写"),
        CardField("预算", _fmt_budget(lead.budget_fen)),
        CardField("来源", lead.source),
    ]
    if lead.accept_due_at:
        fields.append(CardField("请在此前接受", _local(lead.accept_due_at)))
    arg = str(lead.id)
    return Card(
        title=f"新线索 #{lead.id} · {lead.company}",
        fields=tuple(fields),
        text=(f"备注：{lead.note}\n" if lead.note else "") + (f"分配依据：{explanation}" if explanation else ""),
        actions=(
            CardAction("接受", ActionKey("accept", card_id, arg).pack(secret), "primary"),
            CardAction("转派", ActionKey("transfer", card_id, arg).pack(secret)),
            CardAction("无效", ActionKey("invalid", card_id, arg).pack(secret), "danger"),
        ),
    )


def audit(session: Session, entity: str, entity_id: int, actor: str, action: str, detail: str, at: datetime) -> None:
    """Write an audit row: who, when, what, why."""
    session.add(AuditEvent(entity=entity, entity_id=entity_id, actor=actor, action=action, detail=detail, at=at))


ROTATION_ROW = "assignment"
PREVIOUS_OWNER = re.compile(r"^→ ([A-Za-z0-9_.\-]+)")


# Built once: every batch of intakes reads these, and building a statement costs about as
# much as running it. _RECEIVED_SINCE reads through the (assigned_at, owner_id) index.
_RECEIVED_SINCE = select(Lead.owner_id, func.count()).where(Lead.assigned_at >= bindparam("since")).group_by(Lead.owner_id)
_WON_SINCE = (
    select(Opportunity.owner_id, func.coalesce(func.sum(Opportunity.amount_fen), 0))
    .where(Opportunity.stage == WON_STAGE, Opportunity.updated_at >= bindparam("since"))
    .group_by(Opportunity.owner_id)
)
_REGIONS = select(Region).order_by(Region.name)
_MEMBERS = select(Member)


def org_snapshot(session: Session, rules: AssignmentRules, now: datetime, members: Sequence[Member]) -> OrgSnapshot:
    """The organisation as the assignment engine sees it at ``now`` (counts of today, 90-day wins)."""
    local = now.astimezone(SHANGHAI)
    start_of_day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    received = dict(session.execute(_RECEIVED_SINCE, {"since": start_of_day}).all())
    won = dict(session.execute(_WON_SINCE, {"since": now - timedelta(days=90)}).all())
    regions = tuple(
        EngineRegion(name=r.name, provinces=tuple(json.loads(r.provinces)), manager=r.manager_id)
        for r in session.execute(_REGIONS).scalars()
    )
    reps = tuple(
        Rep(
            id=m.id, name=m.name, region=m.region, active=m.active, on_leave=m.on_leave,
            daily_capacity=m.daily_capacity, received_today=int(received.get(m.id, 0)),
            won_amount_90d_fen=int(won.get(m.id, 0) or 0), joined_at=m.joined_at,
        )
        for m in sorted(members, key=lambda m: m.id)
        if m.role == "rep"
    )
    return OrgSnapshot(regions=regions, groups=rules.groups, reps=reps)


_ROTATION_ROW = select(RotationState).where(RotationState.pool == ROTATION_ROW).with_for_update()


def _lock_rotation(session: Session, now: datetime) -> RotationState:
    """The rotation row, locked for this transaction so concurrent decisions queue up.

    On SQLite the transaction already holds the write lock (BEGIN IMMEDIATE); on
    PostgreSQL ``FOR UPDATE`` makes two processes decide one after the other, each seeing
    the other's committed counts, so the last free slot is never given twice.
    """
    row = session.execute(_ROTATION_ROW).scalars().first()
    if row is None:
        try:
            with session.begin_nested():
                session.add(RotationState(pool=ROTATION_ROW, state_json="{}", updated_at=now))
                session.flush()
        except IntegrityError:
            pass
        row = session.execute(_ROTATION_ROW).scalars().one()
    return row


def previous_owners(session: Session, lead_id: int) -> frozenset[str]:
    """Reps a lead was assigned to before (from its audit trail)."""
    details = session.execute(
        select(AuditEvent.detail).where(AuditEvent.entity == "lead", AuditEvent.entity_id == lead_id, AuditEvent.action == "assigned")
    ).scalars()
    return frozenset(m.group(1) for d in details if (m := PREVIOUS_OWNER.match(d)))


def facts_of(lead: Lead, owner_id: str | None = None) -> LeadFacts:
    """What the engine needs to know about ``lead`` (a lead being created has no id yet)."""
    return LeadFacts(
        id=lead.id or "new", province=lead.province, city=lead.city, industry=lead.industry, source=lead.source,
        budget_fen=lead.budget_fen, score_tier=lead.tier, owner_id=owner_id,
    )


@dataclass
class AssignmentDesk:
    """The rotation (its row locked) and the organisation, for the decisions of one transaction.

    Several decisions in one transaction (a batch of intakes) share one snapshot: each
    decision's rotation credits and the chosen rep's count of today are carried forward
    in memory, so the second lead of a batch sees the first one's effect exactly as if
    they had been decided one transaction after the other.
    """

    row: RotationState
    rotation: EngineRotation
    org: OrgSnapshot

    @classmethod
    def open(cls, session: Session, rules: AssignmentRules, now: datetime) -> AssignmentDesk:
        """Lock the rotation row and read the organisation as of ``now``."""
        row = _lock_rotation(session, now)
        members = session.execute(_MEMBERS).scalars().all()
        # Held for the transaction so the identity map (weak references only) keeps them:
        # routing the cards then finds every recipient without another query.
        session.info["org_members"] = members
        return cls(row=row, rotation=EngineRotation.from_json(row.state_json), org=org_snapshot(session, rules, now, members))

    def record(self, decision: Assignment) -> None:
        """Carry ``decision`` forward to the next decision of this transaction."""
        self.rotation = decision.rotation
        if decision.assigned and decision.rep_id is not None:
            self.org = self.org.with_received(decision.rep_id)

    def save(self, session: Session, now: datetime) -> None:
        """Persist the rotation (once per transaction)."""
        self.row.state_json = self.rotation.to_json()
        self.row.updated_at = now
        session.add(self.row)


def assign(
    session: Session,
    lead: Lead,
    ctx: HandlerContext,
    now: datetime,
    actor: str,
    exclude: frozenset[str] = frozenset(),
    *,
    returning_owner: str | None = None,
    note: str = "",
) -> list[Outgoing]:
    """Decide who gets ``lead`` (rules, rotation, capacity), record why, and queue the card.

    With ``exclude`` (a transfer or a timeout) the lead moves to the next eligible rep of
    the same pool, never back to someone who already had it. When nobody can take it, the
    lead waits in the manager's unassigned pool and the manager is told.
    """
    assert lead.id is not None
    desk = AssignmentDesk.open(session, ctx.rules, now)
    if exclude:
        tried = exclude | previous_owners(session, lead.id)
        decision = next_rep_after_timeout(facts_of(lead), ctx.rules, desk.org, desk.rotation, now, excluded=tried, rule_name=lead.rule_name)
    else:
        decision = decide(facts_of(lead, returning_owner), ctx.rules, desk.org, desk.rotation, now)
    _settle(lead, decision, desk, note, now)
    desk.save(session, now)
    session.add(lead)
    return _announce(session, lead, decision, ctx, now, actor)


def _settle(lead: Lead, decision: Assignment, desk: AssignmentDesk, note: str, now: datetime) -> None:
    """Write ``decision`` onto the lead and carry it forward on the desk."""
    desk.record(decision)
    home = desk.org.region_for_province(lead.province)
    lead.region = home.name if home else None
    lead.rule_name = decision.rule_name
    lead.explanation = (f"{note} · " if note else "") + decision.explanation
    lead.updated_at = now
    if decision.assigned:
        lead.status, lead.owner_id = "assigned", decision.rep_id
        lead.assigned_at = now
        lead.accept_due_at = decision.due_at
    else:
        lead.status, lead.owner_id, lead.accept_due_at = "unassigned", None, None


def _announce(session: Session, lead: Lead, decision: Assignment, ctx: HandlerContext, now: datetime, actor: str) -> list[Outgoing]:
    """Audit the decision and tell the one who must act: the rep (a card) or the manager."""
    assert lead.id is not None
    if not decision.assigned:
        audit(session, "lead", lead.id, actor, "unassigned", f"{decision.rule_name}：{decision.reason}", now)
        if decision.manager_id is None:
            return []
        return [
            Outgoing(
                decision.manager_id, "text", f"lead:{lead.id}:unassigned:{int(now.timestamp())}",
                text=f"线索 #{lead.id}（{lead.company}）暂无可派销售：{decision.reason}。请回复「把线索 {lead.id} 转给 姓名」手动分配。",
            )
        ]
    assert decision.rep_id is not None
    audit(session, "lead", lead.id, actor, "assigned", f"→ {decision.rep_id}（规则：{decision.rule_name}；{lead.explanation}）", now)
    return [send_lead_card(session, lead, decision.rep_id, ctx, now)]


def send_lead_card(session: Session, lead: Lead, rep_id: str, ctx: HandlerContext, now: datetime) -> Outgoing:
    """A fresh lead card for ``rep_id``, with the handle that lets its buttons be checked."""
    card_id = new_card_id()
    card = lead_card(lead, card_id, ctx.secret, lead.explanation)
    session.add(
        CardHandle(
            card_id=card_id, platform="", member_id=rep_id, subject=f"lead:{lead.id}",
            card_json=json.dumps(card_to_dict(card), ensure_ascii=False), created_at=now, updated_at=now,
        )
    )
    return Outgoing(rep_id, "card", f"card:{card_id}", card=card, card_id=card_id)


_CANDIDATE_COLUMNS = (Lead.id, Lead.customer_id, Lead.phone_norm, Lead.company, Lead.contact_name, Lead.owner_id, Lead.status, Customer.name_norm)
# One indexed lookup per key, not an OR across the join (that scans every lead). Built once:
# constructing and cache-keying this statement per intake cost more than running it.
_by_company = select(*_CANDIDATE_COLUMNS).join(Customer, Lead.customer_id == Customer.id).where(Customer.name_norm == bindparam("company"))
_by_phone = select(*_CANDIDATE_COLUMNS).join(Customer, Lead.customer_id == Customer.id, isouter=True).where(Lead.phone_norm == bindparam("phone"))
_SAME_COMPANY = select(_by_company.subquery()).order_by("id").limit(DEDUPE_CANDIDATES)
_SAME_COMPANY_OR_PHONE = select(union(_by_company, _by_phone).subquery()).order_by("id").limit(DEDUPE_CANDIDATES)


def _find_duplicate(session: Session, form: LeadForm) -> tuple[DuplicateMatch | None, Customer | None, str | None]:
    """An earlier lead of the same customer (phone, contact + company, company), its customer and owner."""
    company_norm = normalize_company(form.company)
    if form.phone_norm:
        rows = session.execute(_SAME_COMPANY_OR_PHONE, {"company": company_norm, "phone": form.phone_norm}).all()
    else:
        rows = session.execute(_SAME_COMPANY, {"company": company_norm}).all()
    keys = {
        row.id: LeadKeys(id=row.id, customer_id=row.customer_id, phone_norm=row.phone_norm,
                         company_norm=row.name_norm or normalize_company(row.company), contact_name=row.contact_name)
        for row in rows
    }
    new = lead_keys("new", phone=form.phone, company=form.company, contact_name=form.contact)
    match = find_duplicate(new, keys.values())
    if match is not None and match.key is MatchKey.PHONE and match.existing.company_norm != new.company_norm:
        # Same number, another company: a switchboard or an agent, not the same customer.
        match = find_duplicate(replace(new, phone_norm=None), keys.values())
    if match is not None and match.key is MatchKey.COMPANY and _name_was_split(session, company_norm):
        # A manager has split a lead of this name off before: the name alone cannot tell
        # these companies apart, so only a phone or a contact of the company may merge.
        match = find_duplicate(new, keys.values(), min_company_len=COMPANY_KEY_OFF)
    if match is None:
        return None, None, None
    matched = next(row for row in rows if row.id == match.existing.id)
    customer = session.get(Customer, matched.customer_id) if matched.customer_id else None
    owner = (customer.owner_id if customer and customer.owner_id else None) or (matched.owner_id if matched.status in ("assigned", "accepted") else None)
    return match, customer, owner


COMPANY_KEY_OFF = 10**6  # longer than any name: the company-alone key never matches


def _name_was_split(session: Session, company_norm: str) -> bool:
    split = (
        select(AuditEvent.id)
        .join(Customer, Customer.id == AuditEvent.entity_id)
        .where(AuditEvent.entity == "customer", AuditEvent.action == "lead_split", Customer.name_norm == company_norm)
        .limit(1)
    )
    return session.execute(split).first() is not None


def _new_customer(session: Session, form: LeadForm, now: datetime, owner: str | None) -> Customer:
    customer = Customer(
        name=form.company, name_norm=normalize_company(form.company), province=form.province, city=form.city,
        industry=form.industry, budget_fen=form.budget_fen, owner_id=owner, created_at=now, updated_at=now,
    )
    session.add(customer)
    session.flush()
    return customer


def new_card_id() -> str:
    """A fresh card id (also the platforms' dedupe/track id)."""
    return uuid.uuid4().hex[:16]


def intake(session: Session, form: LeadForm, ctx: HandlerContext) -> IntakeResult:
    """Store a new lead, de-duplicate it, assign it and make its card, in the caller's transaction.

    A duplicate joins the existing customer (history kept, audit row says which key
    matched) and goes back to that customer's owner when they can take it.
    """
    return intake_many(session, [form], ctx)[0]


def intake_many(session: Session, forms: Sequence[LeadForm], ctx: HandlerContext) -> list[IntakeResult]:
    """:func:`intake` for several leads in one transaction (group commit), in arrival order.

    One rotation lock, one organisation read and one commit serve them all; each lead is
    decided as if alone, after the ones before it (see :class:`AssignmentDesk`).
    """
    now = ctx.clock.now()
    desk = AssignmentDesk.open(session, ctx.rules, now)
    results = [_take_in(session, form, ctx, desk, now) for form in forms]
    desk.save(session, now)
    return results


def _take_in(session: Session, form: LeadForm, ctx: HandlerContext, desk: AssignmentDesk, now: datetime) -> IntakeResult:
    # Decided before it is written, so the lead's row and its customer's are inserted once, complete.
    match, customer, owner = _find_duplicate(session, form)
    lead = Lead(
        company=form.company, contact_name=form.contact, phone=form.phone,
        phone_norm=form.phone_norm, province=form.province, city=form.city, industry=form.industry,
        budget_fen=form.budget_fen, source=form.source, note=form.note, created_at=now, updated_at=now,
    )
    # The activity score decides the tier that score_tier rules route on (nurture vs sales).
    score_new_lead(lead, ctx.sales_rules.current.scoring if ctx.sales_rules is not None else default_scoring(), now)
    decision = decide(facts_of(lead, owner), ctx.rules, desk.org, desk.rotation, now)
    _settle(lead, decision, desk, match.message if match is not None else "", now)
    if customer is None:
        customer = _new_customer(session, form, now, owner=lead.owner_id)
    elif customer.owner_id is None and lead.owner_id:
        customer.owner_id = lead.owner_id
        session.add(customer)
    lead.customer_id = customer.id
    session.add(lead)
    session.flush()
    assert lead.id is not None
    audit(session, "lead", lead.id, f"source:{form.source}", "created", "", now)
    if match is not None:
        audit(session, "lead", lead.id, "dedupe", "merged", f"{match.message}（线索 #{match.existing.id}）", now)
    out = _announce(session, lead, decision, ctx, now, "engine")
    return IntakeResult(lead_id=lead.id, status=lead.status, owner=lead.owner_id, outgoing=tuple(out))


def lead_view(session: Session, lead_id: int) -> dict[str, Any] | None:
    """The lead as ``GET /api/leads/{id}`` shows it: status, owner, rule, audit trail."""
    lead = session.get(Lead, lead_id)
    if lead is None:
        return None
    trail = session.execute(
        select(AuditEvent).where(AuditEvent.entity == "lead", AuditEvent.entity_id == lead_id).order_by(AuditEvent.id)
    ).scalars()
    owner = session.get(Member, lead.owner_id) if lead.owner_id else None
    return {
        "lead_id": lead.id,
        "status": lead.status,
        "owner": lead.owner_id,
        "owner_name": owner.name if owner else None,
        "company": lead.company,
        "contact": lead.contact_name,
        "phone": lead.phone,
        "province": lead.province,
        "city": lead.city,
        "industry": lead.industry,
        "budget_fen": lead.budget_fen,
        "source": lead.source,
        "region": lead.region,
        "rule": lead.rule_name,
        "explanation": lead.explanation,
        "invalid_reason": lead.invalid_reason,
        "created_at": lead.created_at.isoformat(),
        "accept_due_at": lead.accept_due_at.isoformat() if lead.accept_due_at else None,
        "accepted_at": lead.accepted_at.isoformat() if lead.accepted_at else None,
        "audit": [
            {"at": a.at.isoformat(), "actor": a.actor, "action": a.action, "detail": a.detail} for a in trail
        ],
    }


def close_card(session: Session, handle: CardHandle, status: str, now: datetime, dedupe: str) -> Outgoing:
    """Mark a card acted-on and queue its update (buttons removed, status shown)."""
    from cards.model import card_from_dict

    card = card_from_dict(json.loads(handle.card_json)).with_status(status)
    handle.card_json = json.dumps(card_to_dict(card), ensure_ascii=False)
    handle.state = "closed"
    handle.updated_at = now
    session.add(handle)
    return Outgoing(handle.member_id, "card_update", dedupe, card=card, card_id=handle.card_id)


def on_lead_action(session: Session, member: Member, key: ActionKey, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    """A rep pressed 接受 / 转派 / 无效 (or an invalid reason) on a lead card."""
    now = ctx.clock.now()
    handle = session.get(CardHandle, key.card_id)
    if handle is None or handle.subject != f"lead:{key.arg}":
        return [Outgoing(member.id, "text", f"{cause}:reply", text="这张卡片已失效。")]
    lead = session.get(Lead, int(key.arg))
    if lead is None:
        return [Outgoing(member.id, "text", f"{cause}:reply", text="这张卡片已失效。")]
    assert lead.id is not None
    if handle.member_id != member.id:
        owner = session.get(Member, handle.member_id)
        return [Outgoing(member.id, "text", f"{cause}:reply", text=f"这条线索分配给了{owner.name if owner else '其他同事'}，您无需操作。")]
    if handle.state != "open" or lead.status != "assigned" or lead.owner_id != member.id:
        return [Outgoing(member.id, "text", f"{cause}:reply", text=_already_handled(session, lead))]

    if key.verb == "accept":
        # The conditional update is the arbiter when two clicks race: exactly one row changes.
        won = session.execute(
            update(Lead)
            .where(Lead.id == lead.id, Lead.status == "assigned", Lead.owner_id == member.id)
            .values(status="accepted", accepted_at=now, updated_at=now, last_interaction_at=now)
        ).rowcount
        if not won:
            return [Outgoing(member.id, "text", f"{cause}:reply", text=_already_handled(session, lead))]
        audit(session, "lead", lead.id, member.id, "accepted", "", now)
        return [close_card(session, handle, f"已接受 · {member.name} · {_local(now)}", now, f"{cause}:card")]

    if key.verb == "invalid":
        # The reason buttons act on the original card, so the lead card itself gets closed.
        reasons = tuple(
            CardAction(r, ActionKey("invreason", handle.card_id, f"{lead.id}-{i}").pack(ctx.secret))
            for i, r in enumerate(INVALID_REASONS)
        )
        ask = Card(title=f"线索 #{lead.id} 为什么无效？", text=lead.company, actions=reasons)
        return [Outgoing(member.id, "card", f"{cause}:ask", card=ask, card_id=f"{handle.card_id}r")]
    if key.verb == "transfer":
        audit(session, "lead", lead.id, member.id, "transfer_requested", "退回区域池", now)
        out = [close_card(session, handle, f"已转派 · {member.name} · {_local(now)}", now, f"{cause}:card")]
        out += assign(session, lead, ctx, now, member.id, exclude=frozenset({member.id}))
        return out
    return [Outgoing(member.id, "text", f"{cause}:reply", text="无法识别的操作。")]


def on_invalid_reason(session: Session, member: Member, key: ActionKey, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    """The rep chose why a lead is invalid (空号 / 同行 / 重复 / 无需求)."""
    now = ctx.clock.now()
    lead_part, _, idx = key.arg.partition("-")
    handle = session.get(CardHandle, key.card_id)
    lead = session.get(Lead, int(lead_part)) if lead_part.isdigit() else None
    if handle is None or lead is None or not idx.isdigit() or int(idx) >= len(INVALID_REASONS):
        return [Outgoing(member.id, "text", f"{cause}:reply", text="这张卡片已失效。")]
    assert lead.id is not None
    if handle.member_id != member.id:
        return [Outgoing(member.id, "text", f"{cause}:reply", text="这条线索不是分配给您的，您无需操作。")]
    reason = INVALID_REASONS[int(idx)]
    changed = session.execute(
        update(Lead)
        .where(Lead.id == lead.id, Lead.status == "assigned", Lead.owner_id == member.id)
        .values(status="invalid", invalid_reason=reason, updated_at=now)
    ).rowcount
    if not changed:
        return [Outgoing(member.id, "text", f"{cause}:reply", text=_already_handled(session, lead))]
    audit(session, "lead", lead.id, member.id, "invalid", reason, now)
    answered = Card(title=f"线索 #{lead.id} 为什么无效？", text=lead.company, status=f"已选择：{reason}")
    return [
        close_card(session, handle, f"已标记无效（{reason}）· {member.name} · {_local(now)}", now, f"{cause}:card"),
        Outgoing(member.id, "card_update", f"{cause}:ask", card=answered, card_id=f"{handle.card_id}r"),
    ]


def _already_handled(session: Session, lead: Lead) -> str:
    owner = session.get(Member, lead.owner_id) if lead.owner_id else None
    if lead.status == "accepted":
        when = _local(lead.accepted_at) if lead.accepted_at else ""
        return f"这条线索已由{owner.name if owner else '同事'}在 {when} 接受，无需重复操作。"
    if lead.status == "invalid":
        return f"这条线索已被标记为无效（{lead.invalid_reason or '未注明'}）。"
    return "这张卡片已处理过了。"


def active_leads(session: Session, member_id: str, limit: int = 20) -> list[Lead]:
    """The rep's open leads, most recent first (for linking follow-ups)."""
    return list(
        session.execute(
            select(Lead)
            .where(Lead.owner_id == member_id, Lead.status.in_(("assigned", "accepted")))
            .order_by(Lead.updated_at.desc(), Lead.id.desc())
            .limit(limit)
        ).scalars()
    )


# ----------------------------------------------------------------------------- managers in chat
REASSIGN = re.compile(r"^\s*把?\s*线索\s*#?\s*(?P<lead>\d{1,12})\s*(?:转给|转派给|分给|派给|交给)\s*(?P<who>[^\s，。,.]{1,32})\s*[。.!！]?\s*$")
POOL_WORDS = ("线索池", "线索池看板", "待分配线索")


def is_manager_command(text: str) -> bool:
    """A manager's lead command: "把线索 1024 转给王五" or "线索池"."""
    t = text.strip()
    return bool(REASSIGN.match(t)) or t in POOL_WORDS


def on_manager_command(session: Session, member: Member, text: str, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    """Re-assign a lead by hand, or show the lead pool; managers see their region, admins all."""
    if member.role not in ("manager", "admin"):
        return [Outgoing(member.id, "text", f"{cause}:reply", text="这个命令只对经理开放。需要转派线索，请在线索卡片上点「转派」。")]
    now = ctx.clock.now()
    t = text.strip()
    if t in POOL_WORDS:
        return [Outgoing(member.id, "card", f"{cause}:pool", card=pool_card(session, member, now), card_id=f"pool{cause.rsplit(':', 1)[-1]}")]
    m = REASSIGN.match(t)
    assert m is not None
    lead = session.get(Lead, int(m.group("lead")))
    if lead is None or (member.role == "manager" and lead.region != member.region):
        return [Outgoing(member.id, "text", f"{cause}:reply", text=f"没有找到您区域内的线索 #{m.group('lead')}。")]
    assert lead.id is not None
    who = m.group("who")
    target = session.execute(
        select(Member).where(or_(Member.id == who, Member.name == who), Member.role == "rep", Member.active.is_(True))
    ).scalars().first()
    if target is None:
        return [Outgoing(member.id, "text", f"{cause}:reply", text=f"没有找到在职的销售「{who}」。")]
    if lead.status in ("accepted", "invalid") and lead.owner_id == target.id:
        return [Outgoing(member.id, "text", f"{cause}:reply", text=f"线索 #{lead.id} 已经在{target.name}名下。")]
    out: list[Outgoing] = []
    for handle in session.execute(select(CardHandle).where(CardHandle.subject == f"lead:{lead.id}", CardHandle.state == "open")).scalars():
        out.append(close_card(session, handle, f"已由{member.name}转派给{target.name} · {_local(now)}", now, f"{cause}:close:{handle.card_id}"))
    lead.status, lead.owner_id, lead.assigned_at, lead.updated_at = "assigned", target.id, now, now
    lead.accept_due_at = ctx.business_hours.add(now, ctx.accept_within_hours)
    lead.rule_name, lead.explanation = "manager", f"{member.name}手动分配"
    session.add(lead)
    audit(session, "lead", lead.id, member.id, "assigned", f"→ {target.id}（规则：manager；{member.name}手动分配）", now)
    out.append(send_lead_card(session, lead, target.id, ctx, now))
    out.append(Outgoing(member.id, "text", f"{cause}:reply", text=f"已将线索 #{lead.id}（{lead.company}）转给{target.name}。"))
    return out


def pool_card(session: Session, member: Member, now: datetime) -> Card:
    """Unassigned, unaccepted and overdue leads per region."""
    regions = [member.region] if member.role == "manager" and member.region else [r.name for r in session.execute(select(Region).order_by(Region.name)).scalars()]
    fields = []
    for region in regions:
        def count(*conds: Any) -> int:
            return int(session.execute(select(func.count()).select_from(Lead).where(Lead.region == region, *conds)).scalar_one())

        unassigned = count(Lead.status == "unassigned")
        waiting = count(Lead.status == "assigned")
        overdue = count(Lead.status == "assigned", Lead.accept_due_at < now)
        fields.append(CardField(f"{region}", f"待分配 {unassigned} · 待接受 {waiting} · 已超时 {overdue}"))
    return Card(title="线索池", fields=tuple(fields), text="回复「把线索 编号 转给 姓名」可手动分配；「合并记录」查看并入老客户的线索。")
