"""Opportunities and their stages in chat: create, move (with the conversational gate),
notify by template, show as a card; plus the rules in force and their reload.

Chat commands (Chinese, one line):

* ``恒锐 进入 需求诊断`` / ``恒锐 推进到报价`` — move the deal; when the stage needs
  fields that are missing, the bot asks for exactly those, and moves the stage when the
  answers arrive (``预算：50万`` or just ``50万`` for the field asked). ``取消`` stops.
* ``恒锐 签约`` / ``恒锐 输单 原因：价格太高`` — close the deal.
* ``恒锐 强制进入 报价 原因：客户口头确认`` — a manager's override (audited).
* ``建商机 恒锐 金额 50万`` — create an opportunity by command.
* ``商机 恒锐`` — the stage card (with 推进 / 输单 buttons); ``恒锐 健康分`` — the score card.
* ``重新加载规则`` (admin) — re-read leadbot.toml's rules; the last good rules stay on error.

Every change writes an audit row (``handlers.leads.audit``); deadlines come from
:func:`handlers.stages.deadline` in business hours and land in ``Opportunity.stage_due_at``
where the scheduler's ``stage_due`` scan finds them.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlmodel import Session

from cards.model import Card, CardAction, CardField
from handlers import webhooks
from handlers.actions import ActionKey
from handlers.context import HandlerContext, Outgoing
from handlers.dedupe import normalize_company
from handlers.events import InboundEvent
from handlers.leads import audit, new_card_id
from handlers.scoring import (
    ScoringRules,
    default_scoring,
    health_card,
    recompute_customer,
)
from handlers.stages import (
    BUILTIN_VARIABLES,
    Pipeline,
    Stage,
    check_transition,
    deadline,
    default_pipeline,
    format_fen,
    format_local,
    labelled_answers,
    missing_fields,
    parse_answer,
    render,
)
from nlp.calendar import SHANGHAI
from store.models import (
    AuditEvent,
    CardHandle,
    Customer,
    Lead,
    Member,
    Opportunity,
    Region,
)
from store.models_sales import OpportunityState, StageGate

GATE_WINDOW = timedelta(hours=2)  # an open gate steers the rep's next messages this long
CANCEL_WORDS = ("取消", "算了", "不用了", "先不改")
STAGE_VERBS = r"(?:强制进入|强制推进到|进入|推进到|推进至|转到|转入)"
STAGE_COMMAND = re.compile(
    rf"^(?P<who>[^\s，,]{{1,30}}?)\s*(?P<verb>{STAGE_VERBS})\s*(?P<stage>[^\s，,。:：]{{1,16}})"
    r"\s*(?:[，,。;；]?\s*(?:原因|理由)\s*(?:是|为)?\s*[:：]?\s*(?P<reason>.+))?$"
)
OUTCOME_COMMAND = re.compile(
    r"^(?P<who>[^\s，,]{1,30}?)\s*(?P<word>签约|赢单|成交|输单|丢单)了?"
    r"\s*(?:[，,。;；]?\s*(?:原因|理由)?\s*(?:是|为)?\s*[:：]?\s*(?P<reason>.+))?$"
)
CREATE_COMMAND = re.compile(r"^(?:建商机|新建商机|新商机)\s*(?P<who>[^\s，,]{1,30}?)(?:\s*[，,]?\s*(?:金额|报价)?\s*[:：]?\s*(?P<amount>[0-9０-９.一二三四五六七八九十百千万亿]+\s*[万元wW]?))?\s*$")
CARD_COMMAND = re.compile(r"^(?:(?:商机|阶段)\s*(?P<a>[^\s，,]{1,30})|(?P<b>[^\s，,]{1,30}?)\s*(?:的)?(?:商机|阶段))\s*[?？]?$")
SCORE_COMMAND = re.compile(r"^(?:(?:健康分|评分)\s*(?P<a>[^\s，,]{1,30})|(?P<b>[^\s，,]{1,30}?)\s*(?:的)?(?:健康分|评分))\s*[?？]?$")
RELOAD_WORDS = ("重新加载规则", "重载规则", "reload rules")


# ----------------------------------------------------------------------------- rules in force
@dataclass(frozen=True)
class SalesRules:
    """Scoring formulas and the stage pipeline, validated together."""

    scoring: ScoringRules
    pipeline: Pipeline


class RulesBook:
    """The rules in force, swapped whole on reload; a bad reload keeps the last good rules.

    ``loader`` re-reads and validates the config (bot.app passes one built on
    ``bot.config.load``); it raises with a bilingual, line-numbered message on error.
    """

    def __init__(self, rules: SalesRules, loader: Callable[[], SalesRules] | None = None) -> None:
        self._rules = rules
        self._loader = loader
        self._lock = threading.Lock()
        self.last_error: str | None = None

    @property
    def current(self) -> SalesRules:
        """The rules to use now (read once per unit of work)."""
        return self._rules

    def swap(self, rules: SalesRules) -> SalesRules:
        """Put ``rules`` in force; returns the previous rules."""
        with self._lock:
            previous, self._rules = self._rules, rules
            self.last_error = None
            return previous

    def reload(self) -> tuple[bool, str, SalesRules]:
        """Re-validate the config and swap: (ok, text for the admin, the previous rules)."""
        if self._loader is None:
            return False, "这个实例没有配置文件可重新加载。", self._rules
        try:
            fresh = self._loader()
        except Exception as exc:  # noqa: BLE001 - any config error keeps the last good rules
            self.last_error = str(exc)
            return False, f"规则有误，仍在使用上一版有效规则。\n{exc}", self._rules
        previous = self.swap(fresh)
        changed = []
        if previous.scoring.health_digest != fresh.scoring.health_digest:
            changed.append("健康分公式")
        if previous.scoring.lead_digest != fresh.scoring.lead_digest:
            changed.append("线索活跃度公式")
        if previous.pipeline != fresh.pipeline:
            changed.append("销售阶段")
        summary = f"规则已更新（{'、'.join(changed)}）。" if changed else "规则已重新加载，内容没有变化。"
        return True, summary, previous


_DEFAULT_BOOK: RulesBook | None = None
_DEFAULT_LOCK = threading.Lock()


def book_of(ctx: HandlerContext) -> RulesBook:
    """The rules book attached to ``ctx`` (``ctx.sales_rules``), else the built-in defaults."""
    book = ctx.sales_rules
    if isinstance(book, RulesBook):
        return book
    global _DEFAULT_BOOK
    with _DEFAULT_LOCK:
        if _DEFAULT_BOOK is None:
            _DEFAULT_BOOK = RulesBook(SalesRules(default_scoring(), default_pipeline()))
        return _DEFAULT_BOOK


def attach(ctx: HandlerContext, book: RulesBook) -> None:
    """Give handlers running with ``ctx`` this rules book."""
    ctx.sales_rules = book


# ----------------------------------------------------------------------------- state
def _answers(session: Session, opp: Opportunity) -> dict[str, Any]:
    state = session.get(OpportunityState, opp.id)
    return json.loads(state.fields_json) if state else {}


def _state(session: Session, opp: Opportunity, now: datetime) -> OpportunityState:
    assert opp.id is not None
    state = session.get(OpportunityState, opp.id)
    if state is None:
        state = OpportunityState(opportunity_id=opp.id, fields_json="{}", stage_entered_at=opp.created_at or now, updated_at=now)
        session.add(state)
    return state


def create_opportunity(
    session: Session,
    ctx: HandlerContext,
    *,
    owner_id: str,
    name: str,
    actor: str,
    why: str,
    customer_id: int | None = None,
    lead_id: int | None = None,
    amount_fen: int | None = None,
    expected_close_on: date | None = None,
    stage: str | None = None,
    entered_at: datetime | None = None,
) -> Opportunity:
    """A new opportunity in ``stage`` (default: the first stage) with its deadline set.

    ``entered_at`` is when the clock of that stage started (a lead's acceptance for
    首通电话); audited as ``created``.
    """
    now = ctx.clock.now()
    pipeline = book_of(ctx).current.pipeline
    target = pipeline.stage(stage) if stage else pipeline.first
    if target is None:
        target = pipeline.first
    start = entered_at or now
    answers: dict[str, Any] = {}
    if amount_fen is not None:
        answers["预算"] = amount_fen
    opp = Opportunity(customer_id=customer_id, lead_id=lead_id, owner_id=owner_id, name=name[:200], amount_fen=amount_fen,
                      stage=target.name, expected_close_on=expected_close_on, created_at=now, updated_at=now,
                      stage_due_at=deadline(target, start, answers, ctx.business_hours))
    session.add(opp)
    session.flush()
    assert opp.id is not None
    session.add(OpportunityState(opportunity_id=opp.id, fields_json=json.dumps(answers), stage_entered_at=start, updated_at=now))
    audit(session, "opportunity", opp.id, actor, "created", f"{why}；阶段「{target.name}」", now)
    if customer_id is not None:
        recompute_customer(session, customer_id, book_of(ctx).current.scoring, now)
    return opp


def opportunity_view(session: Session, opp_id: int, pipeline: Pipeline) -> dict[str, Any] | None:
    """``GET /api/opportunities/{id}``: the deal, its stage clock and answers, its audit trail."""
    opp = session.get(Opportunity, opp_id)
    if opp is None:
        return None
    state = session.get(OpportunityState, opp_id)
    customer = session.get(Customer, opp.customer_id) if opp.customer_id else None
    owner = session.get(Member, opp.owner_id) if opp.owner_id else None
    trail = session.execute(select(AuditEvent).where(AuditEvent.entity == "opportunity", AuditEvent.entity_id == opp_id)
                            .order_by(AuditEvent.id)).scalars()
    return {
        "opportunity_id": opp.id, "name": opp.name, "customer_id": opp.customer_id,
        "customer": customer.name if customer else None, "lead_id": opp.lead_id,
        "owner": opp.owner_id, "owner_name": owner.name if owner else None,
        "stage": opp.stage, "stages": list(pipeline.names),
        "amount_fen": opp.amount_fen,
        "expected_close_on": opp.expected_close_on.isoformat() if opp.expected_close_on else None,
        "stage_entered_at": state.stage_entered_at.isoformat() if state else None,
        "stage_due_at": opp.stage_due_at.isoformat() if opp.stage_due_at else None,
        "fields": json.loads(state.fields_json) if state else {},
        "created_at": opp.created_at.isoformat(), "updated_at": opp.updated_at.isoformat(),
        "audit": [{"at": a.at.isoformat(), "actor": a.actor, "action": a.action, "detail": a.detail} for a in trail],
    }


# ----------------------------------------------------------------------------- moving
@dataclass
class Move:
    """The outcome of a stage request: moved, gated (asking), or refused."""

    status: str  # "moved" | "asking" | "refused"
    text: str
    outgoing: list[Outgoing] = field(default_factory=list)


def _variables(session: Session, opp: Opportunity, answers: dict[str, Any], previous: str, actor: Member, reason: str) -> dict[str, str]:
    customer = session.get(Customer, opp.customer_id) if opp.customer_id else None
    owner = session.get(Member, opp.owner_id) if opp.owner_id else None
    values = {
        "客户名称": customer.name if customer else opp.name, "商机": opp.name, "阶段": opp.stage, "原阶段": previous,
        "金额": format_fen(opp.amount_fen), "截止日期": format_local(opp.stage_due_at),
        "负责人": owner.name if owner else "未分配", "操作人": actor.name, "原因": reason,
        "预计签约": f"{opp.expected_close_on:%Y-%m-%d}" if opp.expected_close_on else "未填写",
    }
    for name, value in answers.items():
        if name in BUILTIN_VARIABLES:
            continue
        values[name] = format_fen(value) if isinstance(value, int) and not isinstance(value, bool) else str(value)
    return values


def _recipients(session: Session, stage: Stage, opp: Opportunity) -> list[str]:
    owner = session.get(Member, opp.owner_id) if opp.owner_id else None
    out: list[str] = []
    for who in stage.notify:
        target: str | None
        if who == "owner":
            target = opp.owner_id
        elif who == "manager":
            target = owner.manager_id if owner else None
        elif who == "region_manager":
            region = session.get(Region, owner.region) if owner and owner.region else None
            target = region.manager_id if region else None
        else:
            target = who
        if target and target not in out:
            out.append(target)
    return out


def _apply(session: Session, opp: Opportunity, stage: Stage, answers: dict[str, Any], actor: Member, ctx: HandlerContext,
           cause: str, *, override: str | None = None) -> Move:
    """Enter ``stage`` now: stage, clock, amounts, audit, notifications, score."""
    assert opp.id is not None
    now = ctx.clock.now()
    previous = opp.stage
    state = _state(session, opp, now)
    state.fields_json = json.dumps(answers, ensure_ascii=False, sort_keys=True)
    state.stage_entered_at = now
    state.updated_at = now
    session.add(state)
    opp.stage = stage.name
    opp.stage_due_at = deadline(stage, now, answers, ctx.business_hours)
    for money in ("合同金额", "报价金额"):
        if isinstance(answers.get(money), int) and stage.name and money in [f.name for f in stage.required]:
            opp.amount_fen = answers[money]
            break
    else:
        if opp.amount_fen is None and isinstance(answers.get("预算"), int):
            opp.amount_fen = answers["预算"]
    next_contact = answers.get("下次联系日期")
    customer = session.get(Customer, opp.customer_id) if opp.customer_id else None
    if stage.due_from_field == "下次联系日期" and isinstance(next_contact, str) and customer is not None:
        customer.next_contact_on = date.fromisoformat(next_contact)
        session.add(customer)
    opp.updated_at = now
    session.add(opp)
    detail = f"{previous} → {stage.name}"
    if override:
        detail += f"（经理强制：{override}）"
    audit(session, "opportunity", opp.id, actor.id, "stage_override" if override else "stage_changed", detail, now)
    session.flush()
    if opp.customer_id is not None:
        recompute_customer(session, opp.customer_id, book_of(ctx).current.scoring, now)
    variables = _variables(session, opp, answers, previous, actor, override or answers.get("输单原因", "") or "")
    message = render(stage.template, variables)
    out = [Outgoing(member_id, "text", f"{cause}:notify:{member_id}", text=f"【商机阶段变更】{message}")
           for member_id in _recipients(session, stage, opp) if member_id != actor.id]
    due = f"，请在 {format_local(opp.stage_due_at)} 前推进" if opp.stage_due_at and stage.is_open else ""
    text = f"好的，「{opp.name}」已进入「{stage.name}」{due}。"
    if stage.outcome == "won":
        text = f"恭喜！「{opp.name}」已签约，金额 {format_fen(opp.amount_fen)}。"
    elif stage.outcome == "lost":
        text = f"已记录「{opp.name}」输单（{answers.get('输单原因', '未注明')}）。辛苦了，经验我们一起复盘。"
    # ERP/MES webhooks go into the outbox in this same transaction (stage_changed, contract_signed).
    out += webhooks.stage_events(session, opp, stage, previous, answers, actor, book_of(ctx).current.pipeline,
                                 ctx.webhooks, now, cause)
    return Move("moved", text, out)


def _ask(gate: StageGate, stage: Stage, missing: tuple[Any, ...], opp: Opportunity, first: bool) -> str:
    lead_in = f"好的，进入「{stage.name}」前还需要 {len(missing)} 项信息" if first else f"收到。还差 {len(missing)} 项"
    listing = "、".join(f.name for f in missing)
    return (f"{lead_in}（{listing}）。\n{missing[0].prompt}\n"
            f"可直接回复，也可一次写多项，如「{missing[0].name}：…」；回复「取消」则不变更阶段。")


def request_stage(session: Session, opp: Opportunity, target: str, actor: Member, ctx: HandlerContext, cause: str, *,
                  override: str | None = None, given: dict[str, str] | None = None) -> Move:
    """A person asks to move ``opp`` to ``target``: refuse, ask for what is missing, or move.

    ``override`` (a manager's reason) lifts the no-skip and missing-field rules. ``given``
    are answers already in the request (``输单 原因：价格`` fills 输单原因).
    """
    assert opp.id is not None
    now = ctx.clock.now()
    pipeline = book_of(ctx).current.pipeline
    if override is not None and actor.role not in ("manager", "admin"):
        return Move("refused", "「强制进入」需要经理或管理员操作。如确有需要，请联系您的经理。")
    verdict = check_transition(pipeline, opp.stage, target, override=override is not None)
    if not verdict.allowed:
        return Move("refused", verdict.zh)
    stage = pipeline.stage(target)
    assert stage is not None
    answers = _answers(session, opp)
    for name, raw in (given or {}).items():
        stage_field = next((f for f in stage.required if f.name == name), None)
        if stage_field is not None:
            value, _hint = parse_answer(stage_field, raw, now)
            if value is not None:
                answers[name] = value
    # Close any older gate of this deal: the latest request is the one being answered.
    session.execute(update(StageGate).where(StageGate.opportunity_id == opp.id, StageGate.status == "open")
                    .values(status="superseded", updated_at=now))
    missing = missing_fields(stage, answers)
    if missing and override is None:
        gate = StageGate(opportunity_id=opp.id, member_id=actor.id, target_stage=stage.name, status="open", created_at=now, updated_at=now)
        session.add(gate)
        state = _state(session, opp, now)
        state.fields_json = json.dumps(answers, ensure_ascii=False, sort_keys=True)
        state.updated_at = now
        session.add(state)
        session.flush()
        audit(session, "opportunity", opp.id, actor.id, "stage_requested", f"{opp.stage} → {stage.name}；待补充：{'、'.join(f.name for f in missing)}", now)
        return Move("asking", _ask(gate, stage, missing, opp, True))
    return _apply(session, opp, stage, answers, actor, ctx, cause, override=override)


def open_gate(session: Session, member: Member, now: datetime) -> StageGate | None:
    """The member's open stage gate, if recent enough to steer their next message."""
    return session.execute(
        select(StageGate).where(StageGate.member_id == member.id, StageGate.status == "open",
                                StageGate.updated_at >= now - GATE_WINDOW)
        .order_by(StageGate.id.desc()).limit(1)
    ).scalars().first()


def answer_gate(session: Session, gate: StageGate, member: Member, text: str, ctx: HandlerContext, cause: str) -> Move:
    """The rep's reply to the bot's question: store what it answers, ask the rest, or move."""
    now = ctx.clock.now()
    opp = session.get(Opportunity, gate.opportunity_id)
    pipeline = book_of(ctx).current.pipeline
    stage = pipeline.stage(gate.target_stage)
    if opp is None or stage is None:
        gate.status = "cancelled"
        session.add(gate)
        return Move("refused", "这个阶段已不在流程中，变更已取消。")
    if text.strip() in CANCEL_WORDS:
        gate.status, gate.updated_at = "cancelled", now
        session.add(gate)
        assert opp.id is not None
        audit(session, "opportunity", opp.id, member.id, "stage_request_cancelled", f"→ {stage.name}", now)
        return Move("refused", f"好的，已取消，「{opp.name}」仍在「{opp.stage}」阶段。")
    answers = _answers(session, opp)
    missing = missing_fields(stage, answers)
    labelled = labelled_answers([f.name for f in stage.required], text)
    hints: list[str] = []
    if labelled:
        for name, raw in labelled.items():
            stage_field = next(f for f in stage.required if f.name == name)
            value, hint = parse_answer(stage_field, raw, now)
            if value is None:
                hints.append(hint)
            else:
                answers[name] = value
    elif missing:
        value, hint = parse_answer(missing[0], text, now)
        if value is None:
            hints.append(hint)
        else:
            answers[missing[0].name] = value
    state = _state(session, opp, now)
    state.fields_json = json.dumps(answers, ensure_ascii=False, sort_keys=True)
    state.updated_at = now
    session.add(state)
    gate.updated_at = now
    session.add(gate)
    still = missing_fields(stage, answers)
    if hints:
        return Move("asking", hints[0])
    if still:
        return Move("asking", _ask(gate, stage, still, opp, False))
    verdict = check_transition(pipeline, opp.stage, stage.name)
    if not verdict.allowed:
        gate.status = "cancelled"
        return Move("refused", verdict.zh)
    gate.status = "done"
    return _apply(session, opp, stage, answers, member, ctx, cause)


# ----------------------------------------------------------------------------- finding deals
def _visible(member: Member) -> Callable[[Any], Any]:
    def scope(query: Any) -> Any:
        if member.role == "rep":
            return query.where(Opportunity.owner_id == member.id)
        if member.role == "manager":
            return query.where(Opportunity.owner_id.in_(select(Member.id).where(
                (Member.region == member.region) | (Member.manager_id == member.id) | (Member.id == member.id))))
        return query
    return scope


def _overlap(core: str, folded: str) -> int:
    """Longest head of ``core`` found in ``folded`` (reps say 恒锐 for 苏州恒锐精密机械)."""
    for k in range(len(core), 1, -1):
        if core[:k] in folded:
            return k
    return 0


def find_opportunity(session: Session, member: Member, who: str) -> Opportunity | None:
    """The open deal of ``who`` (a short company name) that ``member`` may act on."""
    folded = normalize_company(who)
    if len(folded) < 2:
        return None
    query = _visible(member)(select(Opportunity).order_by(Opportunity.updated_at.desc(), Opportunity.id.desc()).limit(500))
    best: tuple[int, Opportunity] | None = None
    for opp in session.execute(query).scalars():
        customer = session.get(Customer, opp.customer_id) if opp.customer_id else None
        score = max(_overlap(normalize_company(opp.name), folded), _overlap(normalize_company(customer.name), folded) if customer else 0)
        if score >= 2 and (best is None or score > best[0]):
            best = (score, opp)
    return best[1] if best else None


def find_lead(session: Session, member: Member, who: str) -> Lead | None:
    """The member's accepted lead for ``who`` (to open a deal on it)."""
    folded = normalize_company(who)
    if len(folded) < 2:
        return None
    query = select(Lead).where(Lead.status == "accepted").order_by(Lead.id.desc()).limit(500)
    if member.role == "rep":
        query = query.where(Lead.owner_id == member.id)
    best: tuple[int, Lead] | None = None
    for lead in session.execute(query).scalars():
        score = _overlap(normalize_company(lead.company), folded)
        if score >= 2 and (best is None or score > best[0]):
            best = (score, lead)
    return best[1] if best else None


def deal_for(session: Session, member: Member, who: str, ctx: HandlerContext) -> Opportunity | None:
    """An existing deal, or one opened now on the member's accepted lead (clock from acceptance)."""
    opp = find_opportunity(session, member, who)
    if opp is not None:
        return opp
    lead = find_lead(session, member, who)
    if lead is None or lead.owner_id is None:
        return None
    return create_opportunity(session, ctx, owner_id=lead.owner_id, name=f"{lead.company} 商机", actor=member.id,
                              why="阶段指令自动建档", customer_id=lead.customer_id, lead_id=lead.id,
                              amount_fen=lead.budget_fen, entered_at=lead.accepted_at)


# ----------------------------------------------------------------------------- cards
def stage_card(session: Session, opp: Opportunity, pipeline: Pipeline, card_id: str, secret: str) -> Card:
    """The deal as a card: progress line, amount, deadline, answers, and the next moves."""
    assert opp.id is not None
    answers = _answers(session, opp)
    here = pipeline.stage(opp.stage)
    done = True
    steps: list[str] = []
    for s in pipeline.open_stages:
        if s.name == opp.stage:
            steps.append(f"【{s.name}】")
            done = False
        else:
            steps.append(f"{s.name}✓" if done and here is not None and here.is_open else s.name)
    outcome = f"  结果：{opp.stage}" if here is not None and not here.is_open else ""
    fields = [CardField("阶段", opp.stage), CardField("金额", format_fen(opp.amount_fen)),
              CardField("阶段截止", format_local(opp.stage_due_at))]
    for name, value in answers.items():
        fields.append(CardField(name, format_fen(value) if isinstance(value, int) and not isinstance(value, bool) else str(value)))
    actions: list[CardAction] = []
    if here is not None and here.is_open:
        nxt = pipeline.next_open(here.name) or next((s for s in pipeline.stages if s.outcome == "won"), None)
        for target, style in ((nxt, "primary"), (next((s for s in pipeline.stages if s.outcome == "lost"), None), "danger")):
            if target is not None:
                index = pipeline.names.index(target.name)
                actions.append(CardAction(f"推进到{target.name}" if style == "primary" else target.name,
                                          ActionKey("stgo", card_id, f"{opp.id}-{index}").pack(secret), style))  # type: ignore[arg-type]
    return Card(title=f"商机 #{opp.id} · {opp.name}"[:60], fields=tuple(fields[:12]), text=" → ".join(steps) + outcome,
                actions=tuple(actions))


def _store_card(session: Session, member: Member, card: Card, card_id: str, subject: str, now: datetime) -> None:
    from cards.model import card_to_dict

    handle = session.get(CardHandle, card_id) or CardHandle(card_id=card_id, platform="", member_id=member.id, subject=subject,
                                                           card_json="{}", created_at=now, updated_at=now)
    handle.card_json = json.dumps(card_to_dict(card), ensure_ascii=False)
    handle.updated_at = now
    handle.state = "open" if card.actions else "closed"
    session.add(handle)


# ----------------------------------------------------------------------------- chat entry points
def _reply(member: Member, cause: str, text: str, platform: str | None = None) -> Outgoing:
    return Outgoing(member.id, "text", f"{cause}:reply", text=text, platform=platform)


def _move_reply(member: Member, move: Move, cause: str, platform: str | None) -> list[Outgoing]:
    return [_reply(member, cause, move.text, platform), *move.outgoing]


def on_text(session: Session, member: Member, event: InboundEvent, ctx: HandlerContext, cause: str) -> list[Outgoing] | None:
    """Stage commands and gate answers; None when the text is not for us (a follow-up note)."""
    text = event.text.strip()
    if not text or "\n" in text and len(text) > 200:
        return None
    now = ctx.clock.now()
    book = book_of(ctx)
    pipeline = book.current.pipeline
    if text.lower() in RELOAD_WORDS:
        if member.role != "admin":
            return [_reply(member, cause, "重新加载规则需要管理员操作。", event.platform)]
        ok, message, previous = book.reload()
        if ok and previous.scoring.health_digest != book.current.scoring.health_digest:
            from handlers.scoring import recompute_all

            results = recompute_all(lambda fn: fn(session), book.current.scoring, now, only=("health",))
            message += f"\n已按新公式重算 {results['health'].records} 个客户的健康分（{results['health'].changed} 个有变化）。"
        if ok and previous.scoring.lead_digest != book.current.scoring.lead_digest:
            from handlers.scoring import recompute_all

            results = recompute_all(lambda fn: fn(session), book.current.scoring, now, only=("lead",))
            message += f"\n已重算 {results['lead'].records} 条线索的活跃度。"
        return [_reply(member, cause, message, event.platform)]
    m = CREATE_COMMAND.match(text)
    if m:
        return _create_command(session, member, m.group("who"), m.group("amount"), ctx, cause, event.platform)
    m = SCORE_COMMAND.match(text)
    if m:
        who = m.group("a") or m.group("b")
        opp = find_opportunity(session, member, who)
        lead = None if opp else find_lead(session, member, who)
        customer_id = opp.customer_id if opp else (lead.customer_id if lead else None)
        customer = session.get(Customer, customer_id) if customer_id else None
        if customer is None:
            return None
        card = health_card(session, customer, book.current.scoring, now)
        return [Outgoing(member.id, "card", f"{cause}:score", card=card, card_id=f"h{cause.rsplit(':', 1)[-1]}"[:64], platform=event.platform)]
    m = CARD_COMMAND.match(text)
    if m:
        opp = deal_for(session, member, m.group("a") or m.group("b"), ctx)
        if opp is None:
            return None
        card_id = new_card_id()
        card = stage_card(session, opp, pipeline, card_id, ctx.secret)
        _store_card(session, member, card, card_id, f"opportunity:{opp.id}", now)
        return [Outgoing(member.id, "card", f"{cause}:card", card=card, card_id=card_id, platform=event.platform)]
    m = STAGE_COMMAND.match(text)
    if m:
        target = m.group("stage")
        if pipeline.stage(target) is None:
            verdict = check_transition(pipeline, pipeline.first.name, target)
            if "是否指" not in verdict.zh:
                return None  # "客户进入试产" is a note, not a command
            return [_reply(member, cause, verdict.zh, event.platform)]
        opp = deal_for(session, member, m.group("who"), ctx)
        if opp is None:
            return [_reply(member, cause, f"没有找到「{m.group('who')}」的商机或已接受的线索。可以发「建商机 公司简称」新建。", event.platform)]
        forced = m.group("verb").startswith("强制")
        reason = (m.group("reason") or "").strip()
        if forced and not reason:
            return [_reply(member, cause, "强制变更阶段需要写明原因，例如「恒锐 强制进入 报价 原因：客户口头确认需求」。", event.platform)]
        move = request_stage(session, opp, target, member, ctx, cause, override=reason if forced else None,
                             given=_reason_answers(pipeline.stage(target), reason) if not forced else None)
        return _move_reply(member, move, cause, event.platform)
    m = OUTCOME_COMMAND.match(text)
    if m:
        want = "won" if m.group("word") in ("签约", "赢单", "成交") else "lost"
        stage = next((s for s in pipeline.stages if s.outcome == want), None)
        opp = find_opportunity(session, member, m.group("who")) if stage else None
        if stage is None or opp is None:
            return None  # "王总说下周签约" is a note
        move = request_stage(session, opp, stage.name, member, ctx, cause,
                             given=_reason_answers(stage, (m.group("reason") or "").strip()))
        return _move_reply(member, move, cause, event.platform)
    gate = open_gate(session, member, now)
    if gate is not None:
        return _move_reply(member, answer_gate(session, gate, member, text, ctx, cause), cause, event.platform)
    return None


def _reason_answers(stage: Stage | None, reason: str) -> dict[str, str]:
    """A reason written in the command fills the stage's first text field (输单原因)."""
    if stage is None or not reason:
        return {}
    labelled = labelled_answers([f.name for f in stage.required], reason)
    if labelled:
        return labelled
    first_text = next((f for f in stage.required if f.kind == "text"), None)
    return {first_text.name: reason} if first_text else {}


def _create_command(session: Session, member: Member, who: str, amount: str | None, ctx: HandlerContext, cause: str,
                    platform: str | None) -> list[Outgoing]:
    existing = find_opportunity(session, member, who)
    if existing is not None:
        return [_reply(member, cause, f"「{existing.name}」已有商机 #{existing.id}（{existing.stage}），无需重复建档。", platform)]
    lead = find_lead(session, member, who)
    amount_fen = None
    if amount:
        from handlers.stages import StageField

        value, _ = parse_answer(StageField("金额", "amount"), amount, ctx.clock.now())
        amount_fen = value if isinstance(value, int) else None
    if lead is None:
        return [_reply(member, cause, f"没有在您已接受的线索中找到「{who}」。请先接受线索，或发来与客户的沟通记录。", platform)]
    opp = create_opportunity(session, ctx, owner_id=lead.owner_id or member.id, name=f"{lead.company} 商机", actor=member.id,
                             why="聊天指令建档", customer_id=lead.customer_id, lead_id=lead.id,
                             amount_fen=amount_fen if amount_fen is not None else lead.budget_fen, entered_at=lead.accepted_at)
    return [_reply(member, cause, f"已建商机 #{opp.id}：{opp.name}，阶段「{opp.stage}」，截止 {format_local(opp.stage_due_at)}。", platform)]


def on_stage_action(session: Session, member: Member, key: ActionKey, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    """A stage card button (推进到… / 输单): the same gate as the chat command."""
    opp_part, _, index = key.arg.partition("-")
    handle = session.get(CardHandle, key.card_id)
    opp = session.get(Opportunity, int(opp_part)) if opp_part.isdigit() else None
    pipeline = book_of(ctx).current.pipeline
    if handle is None or opp is None or handle.subject != f"opportunity:{opp.id}" or not index.isdigit() or int(index) >= len(pipeline.names):
        return [_reply(member, cause, "这张卡片已失效。")]
    if handle.member_id != member.id:
        return [_reply(member, cause, "这张卡片不是发给您的，您无需操作。")]
    move = request_stage(session, opp, pipeline.names[int(index)], member, ctx, cause)
    out = _move_reply(member, move, cause, None)
    if move.status == "moved":
        now = ctx.clock.now()
        card = stage_card(session, opp, pipeline, key.card_id, ctx.secret).with_status(f"已进入「{opp.stage}」· {member.name} · {now.astimezone(SHANGHAI):%m-%d %H:%M}")
        _store_card(session, member, card, key.card_id, handle.subject, now)
        out.append(Outgoing(member.id, "card_update", f"{cause}:card", card=card, card_id=key.card_id))
    return out
