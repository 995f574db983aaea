"""Follow-ups written from chat: a rep's note about a customer becomes a record."""

from __future__ import annotations

import json

from sqlmodel import Session

from cards.model import Card, CardAction
from handlers.actions import ActionKey
from handlers.context import HandlerContext, Outgoing
from handlers.dedupe import normalize_company
from handlers.leads import active_leads, audit, new_card_id
from store.models import CardHandle, FollowUp, Lead, Member

MAX_CANDIDATES = 5


def _company_overlap(core: str, folded_text: str) -> int:
    """Length of the longest leading part of a company's core name found in the text.

    Reps say the short name ("恒锐", "恒锐精密"), which is the head of the core name once
    region prefixes and legal suffixes are gone.
    """
    for k in range(len(core), 1, -1):
        if core[:k] in folded_text:
            return k
    return 0


def match_lead(text: str, leads: list[Lead]) -> Lead | None:
    """The lead a note is about: its company's short name or its contact's name is in the text.

    Ambiguity (two leads matching equally well) gives None, so the rep is asked.
    """
    folded = normalize_company(text)
    scored: list[tuple[int, Lead]] = []
    for lead in leads:
        score = _company_overlap(normalize_company(lead.company), folded) * 2
        if lead.contact_name and len(lead.contact_name) >= 2 and lead.contact_name in text:
            score += len(lead.contact_name)
        if score >= 4:
            scored.append((score, lead))
    scored.sort(key=lambda pair: pair[0], reverse=True)
    if not scored or (len(scored) > 1 and scored[0][0] == scored[1][0]):
        return None
    return scored[0][1]


def record_followup(session: Session, member: Member, lead: Lead | None, text: str, ctx: HandlerContext) -> FollowUp:
    """Store the note, linked to ``lead`` when known, and touch the lead's interaction time."""
    now = ctx.clock.now()
    follow = FollowUp(
        lead_id=lead.id if lead else None,
        customer_id=lead.customer_id if lead else None,
        member_id=member.id,
        text=text,
        status="confirmed",
        created_at=now,
        confirmed_at=now,
    )
    session.add(follow)
    if lead is not None:
        assert lead.id is not None
        lead.last_interaction_at = now
        lead.updated_at = now
        session.add(lead)
        audit(session, "lead", lead.id, member.id, "followup", text[:80], now)
    session.flush()
    return follow


def on_note(session: Session, member: Member, text: str, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    """A rep typed a note: link it to the lead it mentions, or ask which lead it is about."""
    leads = active_leads(session, member.id)
    lead = match_lead(text, leads)
    if lead is not None or not leads:
        follow = record_followup(session, member, lead, text, ctx)
        if lead is None:
            reply = "已记录这条跟进（您名下暂无进行中的线索，未关联客户）。"
        else:
            reply = f"已记录跟进 · 线索 #{lead.id} {lead.company}。"
        return [Outgoing(member.id, "text", f"{cause}:reply", text=reply, platform=None)] if follow.id else []
    # Not obvious which customer: keep the note as a draft and ask with one tap per lead.
    now = ctx.clock.now()
    draft = FollowUp(member_id=member.id, text=text, status="draft", created_at=now)
    session.add(draft)
    session.flush()
    card_id = new_card_id()
    actions = tuple(
        CardAction(f"#{l.id} {l.company}"[:20], ActionKey("link", card_id, f"{draft.id}-{l.id}").pack(ctx.secret))
        for l in leads[:MAX_CANDIDATES]
    ) + (CardAction("不关联", ActionKey("link", card_id, f"{draft.id}-0").pack(ctx.secret)),)
    card = Card(title="这条跟进是关于哪个客户的？", text=text[:200], actions=actions)
    session.add(
        CardHandle(card_id=card_id, platform="", member_id=member.id, subject=f"followup:{draft.id}",
                   card_json=json.dumps({"title": card.title, "text": card.text}, ensure_ascii=False), created_at=now, updated_at=now)
    )
    return [Outgoing(member.id, "card", f"{cause}:ask", card=card, card_id=card_id)]


def on_link(session: Session, member: Member, key: ActionKey, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    """The rep picked the lead a draft note belongs to."""
    now = ctx.clock.now()
    draft_part, _, lead_part = key.arg.partition("-")
    handle = session.get(CardHandle, key.card_id)
    draft = session.get(FollowUp, int(draft_part)) if draft_part.isdigit() else None
    if handle is None or draft is None or handle.member_id != member.id or draft.member_id != member.id:
        return [Outgoing(member.id, "text", f"{cause}:reply", text="这张卡片已失效。")]
    if draft.status != "draft":
        return [Outgoing(member.id, "text", f"{cause}:reply", text="这条跟进已记录过了。")]
    lead = session.get(Lead, int(lead_part)) if lead_part.isdigit() and lead_part != "0" else None
    if lead is not None and lead.owner_id != member.id:
        return [Outgoing(member.id, "text", f"{cause}:reply", text="这条线索不在您名下。")]
    draft.status = "confirmed"
    draft.confirmed_at = now
    if lead is not None:
        assert lead.id is not None
        draft.lead_id, draft.customer_id = lead.id, lead.customer_id
        lead.last_interaction_at = now
        lead.updated_at = now
        session.add(lead)
        audit(session, "lead", lead.id, member.id, "followup", draft.text[:80], now)
    session.add(draft)
    handle.state = "closed"
    handle.updated_at = now
    session.add(handle)
    status = f"已记录 · 线索 #{lead.id} {lead.company}" if lead else "已记录（未关联客户）"
    card = Card(title="这条跟进是关于哪个客户的？", text=draft.text[:200], status=status)
    return [Outgoing(member.id, "card_update", f"{cause}:card", card=card, card_id=handle.card_id)]
