"""Leads: intake from web forms, assignment to a rep, and the lead card's buttons."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from sqlalchemy import func, select, update
from sqlmodel import Session

from cards.model import Card, CardAction, CardField, card_to_dict
from handlers.actions import ActionKey
from handlers.context import HandlerContext, Outgoing
from handlers.dedupe import normalize_company, normalize_phone
from nlp.calendar import SHANGHAI
from nlp.provinces import canonical_province
from store.models import AuditEvent, CardHandle, Customer, Lead, Member, Region, RotationState

SOURCES = ("官网表单", "抖音", "展会", "微信转发", "电话", "转介绍")
INVALID_REASONS = ("空号", "同行", "重复", "无需求")
MAX_TEXT = {"company": 200, "contact": 64, "industry": 32, "note": 2000, "city": 32}


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


def _received_today(session: Session, member_id: str, now: datetime) -> int:
    local = now.astimezone(SHANGHAI)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return int(
        session.execute(
            select(func.count()).select_from(Lead).where(Lead.owner_id == member_id, Lead.assigned_at >= start)
        ).scalar_one()
    )


def choose_rep(session: Session, region: str, now: datetime, exclude: frozenset[str] = frozenset()) -> tuple[Member | None, str]:
    """Round-robin inside ``region`` over active reps with free capacity today.

    The rotation cursor lives in the database, so it survives restarts.
    """
    reps = list(
        session.execute(
            select(Member).where(Member.region == region, Member.role == "rep", Member.active.is_(True), Member.on_leave.is_(False)).order_by(Member.id)
        ).scalars()
    )
    pool = f"region:{region}"
    state_row = session.get(RotationState, pool)
    last = json.loads(state_row.state_json).get("last") if state_row else None
    ids = [r.id for r in reps]
    start = (ids.index(last) + 1) if last in ids else 0
    for i in range(len(reps)):
        rep = reps[(start + i) % len(reps)]
        if rep.id in exclude:
            continue
        free = rep.daily_capacity - _received_today(session, rep.id, now)
        if free <= 0:
            continue
        if state_row is None:
            state_row = RotationState(pool=pool, updated_at=now)
        state_row.state_json = json.dumps({"last": rep.id})
        state_row.updated_at = now
        session.add(state_row)
        return rep, f"{region}池 · 轮询 · 你今日剩余额度 {free - 1}"
    return None, f"{region}池今日无可用销售（额度已满或请假）"


def _find_or_create_customer(session: Session, form: LeadForm, now: datetime) -> Customer:
    norm = normalize_company(form.company)
    found = session.execute(select(Customer).where(Customer.name_norm == norm).limit(1)).scalars().first()
    if found:
        return found
    customer = Customer(
        name=form.company, name_norm=norm, province=form.province, city=form.city,
        industry=form.industry, budget_fen=form.budget_fen, created_at=now, updated_at=now,
    )
    session.add(customer)
    session.flush()
    return customer


def new_card_id() -> str:
    """A fresh card id (also the platforms' dedupe/track id)."""
    return uuid.uuid4().hex[:16]


def assign(session: Session, lead: Lead, ctx: HandlerContext, now: datetime, actor: str, exclude: frozenset[str] = frozenset()) -> list[Outgoing]:
    """Give ``lead`` to a rep of its region and queue the card; or leave it for the manager."""
    assert lead.id is not None
    region = session.execute(select(Region).where(Region.provinces.contains(f'"{lead.province}"'))).scalars().first() if lead.province else None
    if region is None:
        lead.status, lead.owner_id, lead.explanation = "unassigned", None, "省份不属于任何区域"
        lead.updated_at = now
        session.add(lead)
        audit(session, "lead", lead.id, actor, "unassigned", lead.explanation, now)
        return []
    rep, why = choose_rep(session, region.name, now, exclude)
    lead.region = region.name
    lead.updated_at = now
    if rep is None:
        lead.status, lead.owner_id, lead.explanation = "unassigned", None, why
        session.add(lead)
        audit(session, "lead", lead.id, actor, "unassigned", why, now)
        out: list[Outgoing] = []
        if region.manager_id:
            out.append(Outgoing(region.manager_id, "text", f"lead:{lead.id}:unassigned:{now.timestamp()}", text=f"线索 #{lead.id}（{lead.company}）暂无可派销售：{why}。请在聊天中回复「把线索 {lead.id} 转给 姓名」手动分配。"))
        return out
    lead.status, lead.owner_id = "assigned", rep.id
    lead.assigned_at = now
    lead.accept_due_at = ctx.business_hours.add(now, ctx.accept_within_hours)
    lead.rule_name, lead.explanation = "region-round-robin", why
    session.add(lead)
    audit(session, "lead", lead.id, actor, "assigned", f"→ {rep.id}（{why}）", now)
    card_id = new_card_id()
    card = lead_card(lead, card_id, ctx.secret, why)
    session.add(
        CardHandle(
            card_id=card_id, platform="", member_id=rep.id, subject=f"lead:{lead.id}",
            card_json=json.dumps(card_to_dict(card), ensure_ascii=False), created_at=now, updated_at=now,
        )
    )
    return [Outgoing(rep.id, "card", f"card:{card_id}", card=card, card_id=card_id)]


def intake(session: Session, form: LeadForm, ctx: HandlerContext) -> IntakeResult:
    """Store a new lead, assign it and queue its card, in the caller's transaction."""
    now = ctx.clock.now()
    customer = _find_or_create_customer(session, form, now)
    lead = Lead(
        customer_id=customer.id, company=form.company, contact_name=form.contact, phone=form.phone,
        phone_norm=form.phone_norm, province=form.province, city=form.city, industry=form.industry,
        budget_fen=form.budget_fen, source=form.source, note=form.note, created_at=now, updated_at=now,
    )
    session.add(lead)
    session.flush()
    assert lead.id is not None
    audit(session, "lead", lead.id, f"source:{form.source}", "created", "", now)
    out = assign(session, lead, ctx, now, "rule:region-round-robin")
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
