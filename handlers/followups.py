"""Follow-ups written from chat: a rep's note becomes a confirmed, structured record.

A forwarded chat or a voice-to-text note is run through the extractor, matched to the
rep's customer or lead, and shown back as a card (客户, 联系人, 事件与日期, 金额, 意向,
下一步) with 确认 / 修改 / 不是客户沟通. Nothing is written to the customer until the
rep confirms. The conversation state (a draft waiting for confirmation, an edit in
progress, a missing next step) lives on the FollowUp row's ``status``, so it survives
restarts and never needs a session table.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from cards.model import Card, CardAction, CardField, card_to_dict
from handlers.actions import ActionKey
from handlers.context import HandlerContext, Outgoing
from handlers.dedupe import normalize_company, normalize_phone
from handlers.leads import active_leads, audit, new_card_id
from handlers.scoring import default_scoring, recompute_customer
from nlp.calendar import SHANGHAI
from nlp.extract import extract
from store.models import (
    CardHandle,
    Contact,
    Customer,
    FollowUp,
    Lead,
    Member,
    Opportunity,
    Ticket,
)

MAX_CANDIDATES = 3
# A draft waiting for an answer steers the rep's next message only for this long.
PENDING_FOR = timedelta(minutes=30)
INTENT_LABELS = {
    "sign_intent": "签约意向", "price_agreed": "价格已谈妥", "upgrade_need": "升级/替换/扩容需求",
    "complaint": "投诉/质量问题", "visit_planned": "约见/拜访", "sample_request": "索要样品/试用",
    "quote_request": "询价", "churn_risk": "流失风险",
}
SENTIMENT_LABELS = {"positive": "积极", "neutral": "中性", "negative": "不满"}
WEEKDAYS = "一二三四五六日"
QUERY = re.compile(r"^(?:查一?下|查查|看看|问一?下)?\s*(?P<who>.{1,20}?)\s*(?:最近)?(?:怎么样了?|情况如何|什么情况|的情况|近况|进展如何|进展)?[?？。!！]*$")
QUERY_HINT = re.compile(r"查一?下|查查|最近怎么样|怎么样了|情况如何|什么情况|的情况|近况|进展")
EDIT = re.compile(r"^(?P<field>日期|时间|金额|预算|联系人|下一步|客户|意向)\s*(?:改成|改为|应该是|是|换成|=|：|:)\s*(?P<value>.+)$")


# ----------------------------------------------------------------------------- matching
def _company_overlap(core: str, folded_text: str) -> int:
    """Length of the longest leading part of a company's core name found in the text.

    Reps say the short name ("恒锐", "恒锐精密"), which is the head of the core name once
    region prefixes and legal suffixes are gone.
    """
    for k in range(len(core), 1, -1):
        if core[:k] in folded_text:
            return k
    return 0


@dataclass(frozen=True)
class Candidate:
    """A lead (and its customer) a note may be about, with how well it matched."""

    lead: Lead
    score: int


def rank_leads(text: str, fields: dict[str, Any], leads: list[Lead], contacts: dict[int, list[Contact]]) -> list[Candidate]:
    """The rep's leads ordered by how well the note matches them (phones, company, contact)."""
    folded = normalize_company(text)
    phones = {normalize_phone(p) or p for p in fields.get("phones", [])}
    companies = [normalize_company(c) for c in fields.get("companies", [])]
    surnames = {c["name"][:1] for c in fields.get("contacts", []) if c.get("name")}
    out: list[Candidate] = []
    for lead in leads:
        core = normalize_company(lead.company)
        score = _company_overlap(core, folded) * 2
        if any(c and (c in core or core in c) for c in companies):
            score += 6
        people = contacts.get(lead.customer_id or -1, [])
        lead_phones = {lead.phone_norm} | {c.phone_norm for c in people}
        if phones & {p for p in lead_phones if p}:
            score += 10
        names = [lead.contact_name] + [c.name for c in people]
        if any(n and len(n) >= 2 and n in text for n in names):
            score += 4
        elif any(n and n[:1] in surnames for n in names):
            score += 1
        if score >= 4:
            out.append(Candidate(lead, score))
    out.sort(key=lambda c: (-c.score, -(c.lead.id or 0)))
    return out


def match_lead(text: str, leads: list[Lead], fields: dict[str, Any] | None = None, contacts: dict[int, list[Contact]] | None = None) -> Lead | None:
    """The lead a note is clearly about, or None when nothing or several match equally."""
    ranked = rank_leads(text, fields or {}, leads, contacts or {})
    if not ranked or (len(ranked) > 1 and ranked[0].score == ranked[1].score):
        return None
    return ranked[0].lead


def _contacts_of(session: Session, leads: list[Lead]) -> dict[int, list[Contact]]:
    ids = [l.customer_id for l in leads if l.customer_id]
    out: dict[int, list[Contact]] = {}
    if ids:
        for c in session.execute(select(Contact).where(Contact.customer_id.in_(ids))).scalars():
            out.setdefault(c.customer_id, []).append(c)
    return out


# ----------------------------------------------------------------------------- the card
def _fmt_yuan(value: float | int) -> str:
    if value >= 10000:
        wan = value / 10000
        return f"{wan:g}万"
    return f"{value:g}元"


def _fmt_date(iso: str) -> str:
    d = date.fromisoformat(iso)
    return f"{d.month}月{d.day}日（周{WEEKDAYS[d.weekday()]}）"


def describe(fields: dict[str, Any]) -> list[CardField]:
    """The understood fields as card lines, in the order reps read them."""
    contacts = "、".join(f"{c['name']}{c['title'] or ''}" for c in fields.get("contacts", [])) or "未识别"
    dates = "；".join(f"{d['text']} → {_fmt_date(d['date'])}" for d in fields.get("dates", [])) or "无"
    amounts = "；".join(
        _fmt_yuan(a["yuan_min"]) if a["yuan_min"] == a["yuan_max"] else f"{_fmt_yuan(a['yuan_min'])}～{_fmt_yuan(a['yuan_max'])}"
        for a in fields.get("amounts", [])
    ) or "无"
    intents = "、".join(INTENT_LABELS.get(i, i) for i in fields.get("intents", [])) or "无"
    mood = SENTIMENT_LABELS.get(fields.get("sentiment", "neutral"), "中性")
    lines = [CardField("联系人", contacts), CardField("事件与日期", dates), CardField("金额", amounts), CardField("意向", f"{intents}（态度：{mood}）"), CardField("下一步", fields.get("next_action") or "未提及")]
    if fields.get("phones"):
        lines.insert(1, CardField("电话", "、".join(fields["phones"])))
    return lines


def _customer_label(session: Session, draft: FollowUp, fields: dict[str, Any]) -> str:
    if draft.lead_id:
        lead = session.get(Lead, draft.lead_id)
        if lead is not None:
            return f"{lead.company}（线索 #{lead.id}）"
    return (fields.get("companies") or ["未识别"])[0]


def confirmation_card(session: Session, draft: FollowUp, card_id: str, secret: str, candidates: list[Lead]) -> Card:
    """The card asking the rep to confirm what was understood."""
    assert draft.id is not None
    fields = json.loads(draft.fields_json)
    arg = str(draft.id)
    actions: list[CardAction] = []
    if draft.lead_id or not candidates:
        actions.append(CardAction("确认", ActionKey("fuok", card_id, arg).pack(secret), "primary"))
    else:
        for lead in candidates[:MAX_CANDIDATES]:
            actions.append(CardAction(f"是 {lead.company}"[:16], ActionKey("fulink", card_id, f"{arg}-{lead.id}").pack(secret), "primary"))
    if not draft.lead_id:
        actions.append(CardAction("新建客户", ActionKey("funew", card_id, arg).pack(secret)))
    actions.append(CardAction("修改", ActionKey("fuedit", card_id, arg).pack(secret)))
    actions.append(CardAction("不是客户沟通", ActionKey("funot", card_id, arg).pack(secret), "danger"))
    fields_lines = [CardField("客户", _customer_label(session, draft, fields)), *describe(fields)]
    hint = "" if draft.lead_id or not candidates else "没能确定是哪位客户，请点选。"
    return Card(title="请确认跟进记录", fields=tuple(fields_lines), text=hint, actions=tuple(actions))


def _store_card(session: Session, member: Member, card: Card, card_id: str, subject: str, now: datetime) -> None:
    handle = session.get(CardHandle, card_id)
    if handle is None:
        handle = CardHandle(card_id=card_id, platform="", member_id=member.id, subject=subject, card_json="{}", created_at=now, updated_at=now)
    handle.card_json = json.dumps(card_to_dict(card), ensure_ascii=False)
    handle.updated_at = now
    handle.state = "open" if card.actions else "closed"
    session.add(handle)


def _card_id_of(session: Session, draft: FollowUp) -> str | None:
    return session.execute(select(CardHandle.card_id).where(CardHandle.subject == f"followup:{draft.id}")).scalars().first()


# ----------------------------------------------------------------------------- entry points
def pending_draft(session: Session, member: Member, now: datetime) -> FollowUp | None:
    """The member's follow-up waiting for an edit or a missing answer, if recent."""
    return session.execute(
        select(FollowUp)
        .where(FollowUp.member_id == member.id, FollowUp.status.in_(("editing", "awaiting_next")), FollowUp.created_at >= now - PENDING_FOR)
        .order_by(FollowUp.id.desc())
        .limit(1)
    ).scalars().first()


def on_note(session: Session, member: Member, text: str, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    """A rep sent a note, a forwarded chat or a voice transcript."""
    now = ctx.clock.now()
    pending = pending_draft(session, member, now)
    if pending is not None:
        return _continue(session, member, pending, text, ctx, cause)
    if _looks_like_query(text):
        who = _query_subject(text)
        answer = customer_card(session, member, who)
        if answer is not None:
            return [Outgoing(member.id, "card", f"{cause}:answer", card=answer, card_id=f"q{cause.rsplit(':', 1)[-1]}")]
        scope = "您名下" if member.role == "rep" else ("本区域" if member.role == "manager" else "系统中")
        return [Outgoing(member.id, "text", f"{cause}:reply", text=f"没有在{scope}找到「{who}」。可以发公司简称或联系人，例如「查一下恒锐」「张总最近怎么样」。")]
    fields = extract(text, now)
    leads = active_leads(session, member.id)
    ranked = rank_leads(text, fields, leads, _contacts_of(session, leads))
    clear = ranked and (len(ranked) == 1 or ranked[0].score > ranked[1].score)
    draft = FollowUp(
        lead_id=ranked[0].lead.id if clear else None,
        customer_id=ranked[0].lead.customer_id if clear else None,
        member_id=member.id, text=text, fields_json=json.dumps(fields, ensure_ascii=False),
        status="draft", created_at=now,
    )
    session.add(draft)
    session.flush()
    card_id = new_card_id()
    # Nothing matched: the rep's most recent leads are the likeliest subjects.
    candidates = [c.lead for c in ranked] or leads
    card = confirmation_card(session, draft, card_id, ctx.secret, candidates)
    _store_card(session, member, card, card_id, f"followup:{draft.id}", now)
    return [Outgoing(member.id, "card", f"{cause}:card", card=card, card_id=card_id)]


def _close(session: Session, member: Member, draft: FollowUp, status: str, now: datetime, dedupe: str, secret: str) -> list[Outgoing]:
    card_id = _card_id_of(session, draft)
    if card_id is None:
        return []
    card = confirmation_card(session, draft, card_id, secret, []).with_status(status)
    _store_card(session, member, card, card_id, f"followup:{draft.id}", now)
    return [Outgoing(member.id, "card_update", dedupe, card=card, card_id=card_id)]


def _refresh(session: Session, member: Member, draft: FollowUp, ctx: HandlerContext, dedupe: str) -> list[Outgoing]:
    """Show the draft's card again after a change (a new card at the bottom of the chat)."""
    now = ctx.clock.now()
    old = _card_id_of(session, draft)
    out: list[Outgoing] = []
    if old is not None:
        handle = session.get(CardHandle, old)
        if handle is not None:
            handle.subject = f"followup-old:{draft.id}"
            session.add(handle)
            stale = confirmation_card(session, draft, old, ctx.secret, []).with_status("已更新，见下方新卡片")
            out.append(Outgoing(member.id, "card_update", f"{dedupe}:old", card=stale, card_id=old))
    card_id = new_card_id()
    leads = active_leads(session, member.id)
    fields = json.loads(draft.fields_json)
    candidates = [c.lead for c in rank_leads(draft.text, fields, leads, _contacts_of(session, leads))] or leads
    card = confirmation_card(session, draft, card_id, ctx.secret, candidates)
    _store_card(session, member, card, card_id, f"followup:{draft.id}", now)
    out.append(Outgoing(member.id, "card", f"{dedupe}:card", card=card, card_id=card_id))
    return out


def _load_draft(session: Session, member: Member, key: ActionKey) -> FollowUp | None:
    part = key.arg.split("-", 1)[0]
    draft = session.get(FollowUp, int(part)) if part.isdigit() else None
    handle = session.get(CardHandle, key.card_id)
    if draft is None or handle is None or draft.member_id != member.id or handle.member_id != member.id:
        return None
    return draft


def on_card(session: Session, member: Member, key: ActionKey, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    """The rep pressed a button on a follow-up card."""
    now = ctx.clock.now()
    draft = _load_draft(session, member, key)
    if draft is None:
        return [Outgoing(member.id, "text", f"{cause}:reply", text="这张卡片已失效。")]
    if draft.status == "confirmed" and key.verb != "fuopp":
        return [Outgoing(member.id, "text", f"{cause}:reply", text="这条跟进已经记录过了。")]
    if draft.status == "discarded":
        return [Outgoing(member.id, "text", f"{cause}:reply", text="这条消息已忽略。")]
    if key.verb == "fulink":
        lead_part = key.arg.split("-", 1)[1] if "-" in key.arg else ""
        lead = session.get(Lead, int(lead_part)) if lead_part.isdigit() else None
        if lead is None or lead.owner_id != member.id:
            return [Outgoing(member.id, "text", f"{cause}:reply", text="这条线索不在您名下。")]
        draft.lead_id, draft.customer_id = lead.id, lead.customer_id
        return _confirm(session, member, draft, ctx, cause)
    if key.verb == "funew":
        lead = _new_lead_from_chat(session, member, draft, now)
        draft.lead_id, draft.customer_id = lead.id, lead.customer_id
        return _confirm(session, member, draft, ctx, cause)
    if key.verb == "fuok":
        return _confirm(session, member, draft, ctx, cause)
    if key.verb == "fuedit":
        draft.status = "editing"
        draft.created_at = now  # restart the pending window
        session.add(draft)
        return [Outgoing(member.id, "text", f"{cause}:reply", text="请直接回复要改的内容，例如「日期改成下周五」「金额改成35万」「下一步改成寄样品」。")]
    if key.verb == "funot":
        draft.status = "discarded"
        session.add(draft)
        return _close(session, member, draft, "已忽略：不是客户沟通", now, f"{cause}:card", ctx.secret)
    if key.verb == "fuopp":
        return _create_opportunity(session, member, draft, ctx, cause)
    return [Outgoing(member.id, "text", f"{cause}:reply", text="无法识别的操作。")]


# ----------------------------------------------------------------------------- confirming
def _next_contact(fields: dict[str, Any], today: date) -> date | None:
    future = sorted(d for d in (date.fromisoformat(x["date"]) for x in fields.get("dates", [])) if d >= today)
    return future[0] if future else None


def _confirm(session: Session, member: Member, draft: FollowUp, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    """Write the record through to the lead and customer, close the card, ask what is missing."""
    now = ctx.clock.now()
    fields = json.loads(draft.fields_json)
    draft.status = "confirmed"
    draft.confirmed_at = now
    draft.next_contact_on = _next_contact(fields, now.astimezone(SHANGHAI).date())
    lead = session.get(Lead, draft.lead_id) if draft.lead_id else None
    if lead is not None:
        assert lead.id is not None
        lead.last_interaction_at = now
        lead.updated_at = now
        session.add(lead)
        audit(session, "lead", lead.id, member.id, "followup", draft.text[:80], now)
    customer = session.get(Customer, draft.customer_id) if draft.customer_id else None
    if customer is not None:
        _update_customer(session, customer, fields, draft.next_contact_on, now)
        assert customer.id is not None
        scoring = ctx.sales_rules.current.scoring if ctx.sales_rules is not None else default_scoring()
        recompute_customer(session, customer.id, scoring, now)
    out = _close(session, member, draft, f"已记录 · {member.name} · {now.astimezone(SHANGHAI):%m-%d %H:%M}", now, f"{cause}:card", ctx.secret)
    if {"sign_intent", "price_agreed"} & set(fields.get("intents", [])):
        out.append(_offer_opportunity(session, member, draft, ctx, cause))
    if not fields.get("next_action"):
        draft.status = "awaiting_next"
        draft.created_at = now
        out.append(Outgoing(member.id, "text", f"{cause}:ask", text="已记录。还差一项：下一步打算做什么？直接回复一句即可（不需要可回复「无」）。"))
    session.add(draft)
    return out


def _offer_opportunity(session: Session, member: Member, draft: FollowUp, ctx: HandlerContext, cause: str) -> Outgoing:
    card_id = new_card_id()
    card = Card(
        title="检测到签约意向，要建商机吗？",
        text="一键建档后，报价、签约进度会跟着这条商机走。",
        actions=(CardAction("一键建商机", ActionKey("fuopp", card_id, str(draft.id)).pack(ctx.secret), "primary"),),
    )
    _store_card(session, member, card, card_id, f"followup-opp:{draft.id}", ctx.clock.now())
    return Outgoing(member.id, "card", f"{cause}:opp", card=card, card_id=card_id)


def _update_customer(session: Session, customer: Customer, fields: dict[str, Any], next_contact: date | None, now: datetime) -> None:
    """Confirmed facts flow into the customer: contacts, budget, next contact date."""
    known = {(c.name, c.title) for c in session.execute(select(Contact).where(Contact.customer_id == customer.id)).scalars()}
    phones = list(fields.get("phones", []))
    for person in fields.get("contacts", []):
        if (person["name"], person.get("title")) not in known:
            phone = phones.pop(0) if len(fields.get("contacts", [])) == 1 and phones else None
            session.add(Contact(customer_id=customer.id, name=person["name"], title=person.get("title"), phone=phone, phone_norm=normalize_phone(phone) if phone else None))
    amounts = [a["yuan_max"] for a in fields.get("amounts", [])]
    if amounts:
        customer.budget_fen = int(max(amounts) * 100)
    if next_contact is not None:
        customer.next_contact_on = next_contact
    customer.updated_at = now
    session.add(customer)


def _new_lead_from_chat(session: Session, member: Member, draft: FollowUp, now: datetime) -> Lead:
    """新建客户: the unknown customer of a forwarded chat becomes the rep's own lead."""
    fields = json.loads(draft.fields_json)
    people = fields.get("contacts", [])
    company = (fields.get("companies") or [""])[0] or (f"{people[0]['name']}{people[0].get('title') or ''}的公司" if people else "未命名客户")
    customer = Customer(name=company, name_norm=normalize_company(company), province=fields.get("province"), city=fields.get("city"), industry=fields.get("industry"), owner_id=member.id, created_at=now, updated_at=now)
    session.add(customer)
    session.flush()
    phone = (fields.get("phones") or [""])[0]
    lead = Lead(
        customer_id=customer.id, company=company, contact_name=(people[0]["name"] + (people[0].get("title") or "")) if people else "",
        phone=phone, phone_norm=normalize_phone(phone) if phone else None, province=fields.get("province"), city=fields.get("city"),
        industry=fields.get("industry"), source="微信转发", status="accepted", owner_id=member.id, region=member.region,
        rule_name="chat", explanation="销售在聊天中新建", created_at=now, assigned_at=now, accepted_at=now, updated_at=now,
    )
    session.add(lead)
    session.flush()
    assert lead.id is not None
    audit(session, "lead", lead.id, member.id, "created", "聊天中新建客户", now)
    audit(session, "lead", lead.id, member.id, "accepted", "", now)
    return lead


def _create_opportunity(session: Session, member: Member, draft: FollowUp, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    now = ctx.clock.now()
    existing = session.execute(select(Opportunity).where(Opportunity.lead_id == draft.lead_id, Opportunity.lead_id.is_not(None))).scalars().first()
    if existing is not None:
        return [Outgoing(member.id, "text", f"{cause}:reply", text=f"这个客户已有商机 #{existing.id}（{existing.stage}），无需重复建档。")]
    fields = json.loads(draft.fields_json)
    lead = session.get(Lead, draft.lead_id) if draft.lead_id else None
    amounts = [a["yuan_max"] for a in fields.get("amounts", [])]
    future = _next_contact(fields, now.astimezone(SHANGHAI).date())
    # handlers.opportunities sets the stage clock (stage_due_at in business hours) and audits.
    from handlers.opportunities import create_opportunity

    opp = create_opportunity(
        session, ctx, owner_id=member.id, name=f"{lead.company if lead else '新客户'} 商机", actor=member.id,
        why=f"由跟进 #{draft.id} 一键建档", customer_id=draft.customer_id, lead_id=draft.lead_id,
        amount_fen=int(max(amounts) * 100) if amounts else None, expected_close_on=future,
    )
    amount = f"，金额 {_fmt_yuan(max(amounts))}" if amounts else ""
    card_id = session.execute(select(CardHandle.card_id).where(CardHandle.subject == f"followup-opp:{draft.id}")).scalars().first()
    out = [Outgoing(member.id, "text", f"{cause}:reply", text=f"已建商机 #{opp.id}：{opp.name}，阶段「{opp.stage}」{amount}。")]
    if card_id:
        closed = Card(title="检测到签约意向，要建商机吗？", status=f"已建商机 #{opp.id}")
        _store_card(session, member, closed, card_id, f"followup-opp:{draft.id}", now)
        out.append(Outgoing(member.id, "card_update", f"{cause}:card", card=closed, card_id=card_id))
    return out


# ----------------------------------------------------------------------------- conversation
def _continue(session: Session, member: Member, draft: FollowUp, text: str, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    """The rep's reply to an edit request or to the missing-next-step question."""
    now = ctx.clock.now()
    fields = json.loads(draft.fields_json)
    if draft.status == "awaiting_next":
        draft.status = "confirmed"
        answer = text.strip()
        if answer not in ("无", "没有", "不用", "暂无"):
            fields["next_action"] = answer[:100]
            draft.fields_json = json.dumps(fields, ensure_ascii=False)
        session.add(draft)
        return [Outgoing(member.id, "text", f"{cause}:reply", text="好的，已补充下一步。" if fields.get("next_action") else "好的。")]
    # editing
    m = EDIT.match(text.strip())
    field, value = (m.group("field"), m.group("value")) if m else (None, text)
    update = extract(value, now)
    if field in ("日期", "时间"):
        fields["dates"] = update["dates"]
    elif field in ("金额", "预算"):
        fields["amounts"] = update["amounts"]
    elif field == "联系人":
        fields["contacts"] = update["contacts"] or [{"name": value.strip()[:8], "title": None}]
    elif field == "下一步":
        fields["next_action"] = value.strip()[:100]
    elif field == "客户":
        fields["companies"] = update["companies"] or [value.strip()[:60]]
        draft.lead_id = draft.customer_id = None
    elif field == "意向":
        fields["intents"] = update["intents"]
    else:
        # A free correction: whatever it states replaces what was understood for those fields.
        for name, val in update.items():
            if val and name not in ("sentiment",):
                fields[name] = val
    draft.fields_json = json.dumps(fields, ensure_ascii=False)
    draft.status = "draft"
    session.add(draft)
    return _refresh(session, member, draft, ctx, f"{cause}:edit")


# ----------------------------------------------------------------------------- queries
def _looks_like_query(text: str) -> bool:
    t = text.strip()
    return len(t) <= 24 and bool(QUERY_HINT.search(t)) and "\n" not in t


def _query_subject(text: str) -> str:
    m = QUERY.match(text.strip())
    return (m.group("who") if m else text).strip()


def customer_card(session: Session, member: Member, who: str) -> Card | None:
    """The customer a rep asks about: owner, stage, last follow-ups, tickets, next contact, people."""
    if not who:
        return None
    # A rep sees their own customers; a manager their region's; an admin everyone's.
    query = select(Lead).order_by(Lead.id.desc()).limit(2000)
    if member.role == "rep":
        query = query.where(Lead.owner_id == member.id)
    elif member.role == "manager":
        query = query.where(Lead.region == member.region)
    leads = list(session.execute(query).scalars())
    folded = normalize_company(who)
    best: tuple[int, Lead] | None = None
    contacts = _contacts_of(session, leads)
    for lead in leads:
        score = _company_overlap(normalize_company(lead.company), folded) * 2
        names = [lead.contact_name] + [c.name + (c.title or "") for c in contacts.get(lead.customer_id or -1, [])]
        if any(n and (n in who or who in n) for n in names if len(n) >= 2):
            score += 4
        if score >= 4 and (best is None or score > best[0]):
            best = (score, lead)
    if best is None:
        return None
    lead = best[1]
    customer = session.get(Customer, lead.customer_id) if lead.customer_id else None
    owner = session.get(Member, lead.owner_id) if lead.owner_id else None
    opp = session.execute(select(Opportunity).where(Opportunity.customer_id == lead.customer_id).order_by(Opportunity.id.desc())).scalars().first() if lead.customer_id else None
    notes = list(session.execute(select(FollowUp).where(FollowUp.customer_id == lead.customer_id, FollowUp.status == "confirmed").order_by(FollowUp.id.desc()).limit(3)).scalars()) if lead.customer_id else []
    tickets = session.execute(select(Ticket).where(Ticket.customer_id == lead.customer_id, Ticket.status != "closed")).scalars().all() if lead.customer_id else []
    people = contacts.get(lead.customer_id or -1, [])
    status = {"assigned": "待接受", "accepted": "跟进中", "invalid": "无效", "unassigned": "待分配"}.get(lead.status, lead.status)
    fields = [
        CardField("负责人", owner.name if owner else "未分配"),
        CardField("阶段", f"商机 · {opp.stage}" if opp else f"线索 · {status}"),
        CardField("健康分", str(customer.health_score) if customer and customer.health_score is not None else "未评分"),
        CardField("下次联系", f"{customer.next_contact_on:%m-%d}" if customer and customer.next_contact_on else "未约定"),
        CardField("未结工单", str(len(tickets))),
        CardField("关键人", "、".join(f"{c.name}{c.title or ''}" for c in people[:5]) or (lead.contact_name or "未知")),
    ]
    text = "\n".join(f"· {n.created_at.astimezone(SHANGHAI):%m-%d} {n.text[:40]}" for n in notes) or "暂无跟进记录"
    return Card(title=f"{lead.company}", fields=tuple(fields), text="最近跟进：\n" + text)
