"""Undoing a wrong de-duplication merge: split a lead off the customer it was joined to.

Intake (:func:`handlers.leads.intake_many`) joins a new lead to an existing customer when
a key matches (phone, contact + company, company) and, when ``returning_to_owner`` is on,
routes it to that customer's owner. Keys can be wrong: two factories share a name prefix,
an agent gives the same phone for several clients. A manager of the lead's region (or an
admin, or the management API) then says "拆分线索 N", and in one transaction:

* the lead gets a customer of its own, built from the lead's data;
* follow-ups and opportunities recorded on the lead (``lead_id = N``) move with it; the old
  customer keeps everything else (tickets and contacts carry no lead, so they stay);
* the lead's "老客户再次咨询" explanation is corrected and both customers are re-scored;
* audit rows on the lead and on both customers say who, when, why and which customer it left;
* a lead that went to the old owner only because of the merge (rule
  :data:`handlers.assignment.OWNER_RULE_NAME`) and was not accepted yet is assigned again as a
  fresh lead; the rep who loses it is told. An accepted lead stays with its rep, who has
  already talked to the customer: the manager can still move it with "把线索 N 转给 X".

A second split of the same lead changes nothing and says so (the lead's ``unmerged`` audit
row is the marker; the lead row is locked first, so two concurrent splits queue up).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import func, select, update
from sqlmodel import Session, col

from handlers.assignment import OWNER_RULE_NAME
from handlers.context import HandlerContext, Outgoing
from handlers.dedupe import MERGE_NOTE, normalize_company, without_merge_note
from handlers.leads import assign, audit, close_card, send_lead_card
from handlers.opportunities import book_of
from handlers.scoring import recompute_customer
from nlp.calendar import SHANGHAI
from store.models import (
    AuditEvent,
    CardHandle,
    Customer,
    FollowUp,
    Lead,
    Member,
    Opportunity,
    Ticket,
)

MAX_REASON = 200
DEFAULT_REASON = "经理核实不是同一家客户"
API_ACTOR = "api"
MERGE_LIST_DAYS = 30
MERGE_LIST_LIMIT = 10

_N = r"#?\s*(?P<lead>\d{1,12})"
_TAIL = r"(?:\s*[，,：:；;。.！!\s]\s*(?P<reason>.*?))?\s*[。.！!]?\s*$"
SPLIT_COMMANDS = (
    re.compile(rf"^\s*把?\s*(?:拆分|拆开)\s*线索\s*{_N}{_TAIL}"),
    re.compile(rf"^\s*把?\s*线索\s*{_N}\s*(?:拆分|拆开)(?:出来|出去)?{_TAIL}"),
    # "线索 12 不是同一家（公司）…": the sentence itself is the reason.
    re.compile(rf"^\s*线索\s*{_N}\s*(?P<reason>不是同一(?:家|个客户|个公司).*?)\s*[。.！!]?\s*$"),
)
MERGE_LIST_WORDS = ("合并记录", "最近合并", "合并线索")


# Full-width digits and '＃' from phone keyboards; the reason keeps its own punctuation.
_HALF = str.maketrans("０１２３４５６７８９＃", "0123456789#")


def _fold(text: str) -> str:
    return text.translate(_HALF).strip()


def parse_split(text: str) -> tuple[int, str] | None:
    """``(lead id, reason)`` of "拆分线索 N [原因]", "拆开线索 N", "线索 N 不是同一家…"; else None."""
    t = _fold(text)
    for pattern in SPLIT_COMMANDS:
        m = pattern.match(t)
        if m:
            reason = (m.group("reason") or "").strip(" ，,：:；;。.")
            return int(m.group("lead")), reason[:MAX_REASON] or DEFAULT_REASON
    return None


def is_split_command(text: str) -> bool:
    """A manager's un-merge command (see :func:`parse_split`) or the list of recent merges."""
    return parse_split(text) is not None or _fold(text) in MERGE_LIST_WORDS


class SplitRefused(Exception):
    """The split was refused; ``reason`` is the Chinese sentence shown to the asker."""

    def __init__(self, code: Literal["not_found", "forbidden", "not_merged", "first_lead"], reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"{code}: {reason}")


@dataclass(frozen=True)
class SplitResult:
    """What a split did (or, with ``status == "already_split"``, what an earlier one did)."""

    status: Literal["split", "already_split"]
    lead_id: int
    customer_id: int | None
    from_customer_id: int | None
    owner: str | None
    message: str
    reassigned: bool = False
    moved_followups: int = 0
    moved_opportunities: int = 0
    outgoing: tuple[Outgoing, ...] = field(default=())


def _local(ts: datetime) -> str:
    return ts.astimezone(SHANGHAI).strftime("%m-%d %H:%M")


def _name(session: Session, member_id: str | None) -> str:
    if member_id is None:
        return "无人"
    if member_id == API_ACTOR:
        return "管理员"  # the management API holds the admin's credential
    member = session.get(Member, member_id)
    return member.name if member else member_id


def _check_allowed(lead: Lead, asker: Member | None) -> None:
    """Managers of the lead's region and admins may split; the management API (None) too."""
    if asker is None or asker.role == "admin":
        return
    if asker.role != "manager":
        raise SplitRefused("forbidden", f"拆分线索只对经理和管理员开放。如果您认为线索 #{lead.id} 不是老客户，请告诉您的经理。")
    if lead.region is None or asker.region != lead.region:
        where = f"{lead.region}区域" if lead.region else "未划分区域"
        raise SplitRefused("forbidden", f"线索 #{lead.id} 属于{where}，只有该区域的经理或管理员可以拆分。")


_FROM = re.compile(r"从客户 #(\d+)")


def _earlier_split(session: Session, lead: Lead, row: AuditEvent) -> SplitResult:
    m = _FROM.search(row.detail)
    old = int(m.group(1)) if m else None
    assert lead.id is not None
    text = (f"线索 #{lead.id} 已于 {_local(row.at)} 由{_name(session, row.actor)}从客户 #{old} 拆出"
            f"（现为客户 #{lead.customer_id}），无需重复操作。")
    return SplitResult("already_split", lead.id, lead.customer_id, old, lead.owner_id, text)


def split_lead(
    session: Session, lead_id: int, asker: Member | None, reason: str, ctx: HandlerContext, cause: str,
) -> SplitResult:
    """Split lead ``lead_id`` off the customer de-duplication joined it to, in the caller's
    transaction; raises :class:`SplitRefused` with a Chinese reason.

    ``asker`` is the member who asked (None: the management API, which holds an admin
    credential). ``cause`` makes the dedupe keys of the messages it queues.
    """
    now = ctx.clock.now()
    # Locked (and re-read) first: a concurrent split of the same lead waits here and then
    # sees this one's audit row, so the second is a no-op on PostgreSQL as on SQLite.
    lead = session.execute(
        select(Lead).where(col(Lead.id) == lead_id).with_for_update().execution_options(populate_existing=True)
    ).scalars().first()
    if lead is None:
        raise SplitRefused("not_found", f"没有找到线索 #{lead_id}。")
    _check_allowed(lead, asker)
    trail = list(session.execute(
        select(AuditEvent)
        .where(col(AuditEvent.entity) == "lead", col(AuditEvent.entity_id) == lead_id, col(AuditEvent.action).in_(("merged", "unmerged")))
        .order_by(col(AuditEvent.id))
    ).scalars())
    done = next((a for a in trail if a.action == "unmerged"), None)
    if done is not None:
        return _earlier_split(session, lead, done)
    old = session.get(Customer, lead.customer_id) if lead.customer_id is not None else None
    first_two = list(session.execute(select(col(Lead.id)).where(col(Lead.customer_id) == old.id).order_by(col(Lead.id)).limit(2)).scalars()) if old else []
    # The customer's first lead before "never merged": a manager who picked the wrong one of
    # a merged pair learns which one to split.
    if old is not None and len(first_two) == 2 and first_two[0] == lead_id:
        raise SplitRefused(
            "first_lead",
            f"线索 #{lead_id} 是客户 #{old.id}（{old.name}）的第一条线索，客户由它建档，不能拆出。"
            "请拆分后来并入的那条线索（回复「合并记录」查看）。",
        )
    if old is None or not any(a.action == "merged" for a in trail):
        raise SplitRefused("not_merged", f"线索 #{lead_id} 建档时没有与已有客户合并，无需拆分。")
    if len(first_two) < 2:
        raise SplitRefused("first_lead", f"线索 #{lead_id} 是客户 #{old.id}（{old.name}）唯一的线索，没有可以拆开的合并。")
    assert old.id is not None
    return _split(session, lead, old, asker, reason, ctx, cause, now)


def _split(
    session: Session, lead: Lead, old: Customer, asker: Member | None, reason: str,
    ctx: HandlerContext, cause: str, now: datetime,
) -> SplitResult:
    assert lead.id is not None and old.id is not None
    actor = asker.id if asker is not None else API_ACTOR
    who = _name(session, actor)
    new = Customer(
        name=lead.company, name_norm=normalize_company(lead.company), province=lead.province, city=lead.city,
        industry=lead.industry, budget_fen=lead.budget_fen, created_at=now, updated_at=now,
    )
    session.add(new)
    session.flush()
    assert new.id is not None
    lead.customer_id = new.id
    split_note = f"已从客户 #{old.id} 拆分为独立客户 #{new.id}"

    moved_followups = list(session.execute(
        select(FollowUp).where(col(FollowUp.lead_id) == lead.id, col(FollowUp.customer_id) == old.id).order_by(col(FollowUp.id))
    ).scalars())
    session.execute(update(FollowUp).where(col(FollowUp.lead_id) == lead.id, col(FollowUp.customer_id) == old.id).values(customer_id=new.id))
    opp_ids = list(session.execute(
        select(col(Opportunity.id)).where(col(Opportunity.lead_id) == lead.id, col(Opportunity.customer_id) == old.id).order_by(col(Opportunity.id))
    ).scalars())
    if opp_ids:
        session.execute(update(Opportunity).where(col(Opportunity.id).in_(opp_ids)).values(customer_id=new.id, updated_at=now))
    for opp_id in opp_ids:
        audit(session, "opportunity", opp_id, actor, "customer_moved", f"客户 #{old.id} → #{new.id}（线索 #{lead.id} 拆分：{reason}）", now)
    _move_next_contact(session, old, new, moved_followups)
    # Written before any re-assignment, so the lead's trail reads split → assigned.
    moved = f"迁移跟进 {len(moved_followups)} 条、商机 {len(opp_ids)} 条"
    audit(session, "lead", lead.id, actor, "unmerged", f"从客户 #{old.id}（{old.name}）拆出 → 新客户 #{new.id}；原因：{reason}；{moved}", now)
    audit(session, "customer", old.id, actor, "lead_split", f"线索 #{lead.id} 拆出为客户 #{new.id}；原因：{reason}；{moved}", now)
    audit(session, "customer", new.id, actor, "created", f"由线索 #{lead.id} 从客户 #{old.id}（{old.name}）拆分建档；原因：{reason}", now)

    out: list[Outgoing] = []
    before, status_before = lead.owner_id, lead.status
    reassigned = lead.rule_name == OWNER_RULE_NAME and status_before == "assigned"
    open_cards = list(session.execute(
        select(CardHandle).where(col(CardHandle.subject) == f"lead:{lead.id}", col(CardHandle.state) == "open")
    ).scalars())
    if reassigned:
        # It reached this rep only because it looked like their customer, and nobody has
        # accepted it yet: decide again as for any new lead (the rep may win it again).
        lead.status, lead.owner_id, lead.accept_due_at = "unassigned", None, None
        session.add(lead)
        session.flush()  # today's counts must not charge the lead to the rep who loses it
        out += assign(session, lead, ctx, now, actor, note=split_note)
    else:
        rest = without_merge_note(lead.explanation)
        if lead.rule_name == OWNER_RULE_NAME:
            rest = f"当初因合并派给原负责人{_name(session, before)}，已{'接受' if status_before == 'accepted' else '处理'}，负责人不变"
        lead.explanation = (split_note + (f" · {rest}" if rest else ""))[:500]
        lead.updated_at = now
        session.add(lead)
    after = lead.owner_id

    for handle in open_cards:
        if after == handle.member_id and lead.status == "assigned":
            status = f"已更新：不是老客户，见下方新卡片 · {_local(now)}"
        elif after:
            status = f"已拆分为独立客户，改由{_name(session, after)}负责 · {_local(now)}"
        else:
            status = f"已拆分为独立客户，退回区域池 · {_local(now)}"
        out.append(close_card(session, handle, status, now, f"{cause}:close:{handle.card_id}"))
    if not reassigned and open_cards and after and lead.status == "assigned":
        out.append(send_lead_card(session, lead, after, ctx, now))

    new.owner_id = after if lead.status in ("assigned", "accepted") else None
    session.add(new)
    rules = book_of(ctx).current.scoring
    recompute_customer(session, old.id, rules, now)
    recompute_customer(session, new.id, rules, now)

    out += _tell_reps(session, lead, old, new, who, before, after, reassigned, bool(moved_followups or opp_ids), cause)
    message = _summary(session, lead, old, new, moved, before, after, status_before, reassigned)
    return SplitResult(
        "split", lead.id, new.id, old.id, lead.owner_id, message, reassigned=reassigned and after != before,
        moved_followups=len(moved_followups), moved_opportunities=len(opp_ids), outgoing=tuple(out),
    )


def _move_next_contact(session: Session, old: Customer, new: Customer, moved: list[FollowUp]) -> None:
    """The next-contact date follows the follow-up that set it (the daily reminder reads it)."""
    dated = [f for f in moved if f.status == "confirmed" and f.next_contact_on is not None]
    if not dated:
        return
    new.next_contact_on = dated[-1].next_contact_on
    if old.next_contact_on not in {f.next_contact_on for f in dated}:
        return
    remaining = session.execute(
        select(col(FollowUp.next_contact_on))
        .where(col(FollowUp.customer_id) == old.id, col(FollowUp.status) == "confirmed", col(FollowUp.next_contact_on).is_not(None))
        .order_by(col(FollowUp.id).desc()).limit(1)
    ).scalars().first()
    old.next_contact_on = remaining
    session.add(old)


def _tell_reps(
    session: Session, lead: Lead, old: Customer, new: Customer, who: str, before: str | None, after: str | None,
    reassigned: bool, moved: bool, cause: str,
) -> list[Outgoing]:
    """The rep who had the lead hears why it changed (and, if it left them, that it did)."""
    if before is None or lead.status == "invalid":
        return []
    head = f"线索 #{lead.id}（{lead.company}）经{who}核实，与客户「{old.name}」不是同一家，已拆分为独立客户 #{new.id}。"
    if after == before:
        tail = "重新分配后仍由您负责，请在新卡片上接受。" if reassigned else "线索仍由您负责。"
        if moved:
            tail += "这条线索上的跟进和商机已随它转到新客户。"
    elif after is None:
        tail = "它已退回区域池，由经理重新分配，您无需再处理。感谢您的配合！"
    else:
        tail = f"它已按新线索重新分配，现由{_name(session, after)}负责，您无需再处理。感谢您的配合！"
    return [Outgoing(before, "text", f"{cause}:rep:{before}", text=head + tail)]


def _summary(
    session: Session, lead: Lead, old: Customer, new: Customer, moved: str, before: str | None, after: str | None,
    status_before: str, reassigned: bool,
) -> str:
    """The asker's answer: what moved, who has the lead now, what is left to check."""
    assert lead.id is not None and old.id is not None
    lines = [f"已拆分线索 #{lead.id}（{lead.company}）：新建客户 #{new.id}，{moved}；原客户 #{old.id}（{old.name}）保留其余记录。"]
    if reassigned:
        if after == before:
            lines.append(f"它当初因合并派给了原负责人{_name(session, before)}；按新线索重新分配后仍由{_name(session, after)}负责。")
        elif after is None:
            lines.append(f"它当初因合并派给了原负责人{_name(session, before)}；按新线索重新分配时暂无可派销售，已进入待分配池。")
        else:
            lines.append(f"它当初因合并派给了原负责人{_name(session, before)}；已按新线索重新分配给{_name(session, after)}，并已告知{_name(session, before)}。")
    elif lead.rule_name == OWNER_RULE_NAME and status_before == "accepted":
        lines.append(f"{_name(session, after)}已接受这条线索，负责人不变；如需改派，回复「把线索 {lead.id} 转给 姓名」。")
    elif lead.status == "unassigned":
        lines.append("线索仍在待分配池。")
    elif after is not None:
        lines.append(f"负责人不变（{_name(session, after)}）。")
    tickets = int(session.execute(select(func.count()).select_from(Ticket).where(col(Ticket.customer_id) == old.id)).scalar_one())
    if tickets:
        lines.append(f"客户 #{old.id} 名下的 {tickets} 张工单没有记录来自哪条线索，仍留在原客户。")
    # Later enquiries may have been joined through this very lead: point at them.
    via = list(session.execute(
        select(col(Lead.id))
        .join(AuditEvent, (col(AuditEvent.entity) == "lead") & (col(AuditEvent.entity_id) == col(Lead.id)))
        .where(col(Lead.customer_id) == old.id, col(AuditEvent.action) == "merged", col(AuditEvent.detail).like(f"%（线索 #{lead.id}）"))
        .order_by(col(Lead.id))
    ).scalars())
    if via:
        nums = "、".join(f"#{i}" for i in via)
        lines.append(f"线索 {nums} 当初是因与本线索相同而并入客户 #{old.id} 的，如也不是同一家，请一并拆分。")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- chat


def on_command(session: Session, member: Member, text: str, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    """"拆分线索 N [原因]" and friends, or "合并记录" (recent merges of the member's region)."""
    if _fold(text) in MERGE_LIST_WORDS:
        return [Outgoing(member.id, "text", f"{cause}:reply", text=merge_list(session, member, ctx.clock.now()))]
    parsed = parse_split(text)
    assert parsed is not None
    lead_id, reason = parsed
    try:
        result = split_lead(session, lead_id, member, reason, ctx, cause)
    except SplitRefused as refused:
        return [Outgoing(member.id, "text", f"{cause}:reply", text=refused.reason)]
    return [*result.outgoing, Outgoing(member.id, "text", f"{cause}:reply", text=result.message)]


def merge_list(session: Session, member: Member, now: datetime) -> str:
    """Leads of the last 30 days that de-duplication joined to an existing customer, newest
    first, with the number a manager needs to split one."""
    if member.role not in ("manager", "admin"):
        return "合并记录只对经理和管理员开放。"
    query = (
        select(Lead, AuditEvent)
        .join(AuditEvent, (col(AuditEvent.entity) == "lead") & (col(AuditEvent.entity_id) == col(Lead.id)))
        .where(col(AuditEvent.action) == "merged", col(Lead.created_at) >= now - timedelta(days=MERGE_LIST_DAYS))
        .order_by(col(Lead.id).desc())
        .limit(MERGE_LIST_LIMIT)
    )
    if member.role == "manager":
        query = query.where(col(Lead.region) == member.region)
    rows = session.execute(query).all()
    scope = member.region if member.role == "manager" else "全部区域"
    if not rows:
        return f"近 {MERGE_LIST_DAYS} 天没有合并到老客户的线索（{scope}）。"
    ids = [lead.id for lead, _ in rows]
    split = {
        a.entity_id: a for a in session.execute(
            select(AuditEvent).where(col(AuditEvent.entity) == "lead", col(AuditEvent.entity_id).in_(ids), col(AuditEvent.action) == "unmerged")
        ).scalars()
    }
    lines = [f"近 {MERGE_LIST_DAYS} 天合并到老客户的线索（{scope}，最新在前）："]
    for lead, merged in rows:
        why = merged.detail.removeprefix(f"{MERGE_NOTE}：")
        if lead.id in split:
            state = f"已拆分 → 客户 #{lead.customer_id}"
        else:
            state = _name(session, lead.owner_id) if lead.owner_id else "待分配"
        lines.append(f"· 线索 #{lead.id} {lead.company}：{why} · {state} · {_local(lead.created_at)}")
    lines.append("如果不是同一家，回复「拆分线索 编号 原因」即可拆开。")
    return "\n".join(lines)
