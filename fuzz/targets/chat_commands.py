"""What the router and the handlers read out of a chat message, before any database work.

Contract of :func:`check`: for any message text, the route filters (help, report,
manager, ticket), the command patterns of opportunities, decision chains and follow-up
edits and queries, stage-gate answers (``parse_answer`` for every field kind,
``labelled_answers``), stage names (``check_transition`` with its did-you-mean), button
values (``ActionKey.unpack``: ``BadAction`` only), budgets (``parse_budget_fen``:
``ValueError`` only), the dedupe keys and the pasted-chat-record reader never raise
anything else, and all of it takes at most 1 s per message.

Input: the message text (UTF-8; undecodable bytes become lone surrogates).
"""

from __future__ import annotations

from datetime import UTC, datetime

from bot.wecom import parse_chat_record
from fuzz.framing import ContractViolation, text, within
from handlers import decision_chain, followups, leads, opportunities, reports, tickets
from handlers.actions import ActionKey, BadAction
from handlers.dedupe import normalize_company, normalize_contact, normalize_phone
from handlers.events import InboundEvent
from handlers.router import ROUTES
from handlers.stages import StageField, check_transition, default_pipeline, labelled_answers, parse_answer

NOW = datetime(2026, 5, 20, 2, 0, tzinfo=UTC)
SECRET = "fuzz-button-secret"
PIPELINE = default_pipeline()
STAGE_FIELDS = tuple(StageField(f"字段{kind}", kind) for kind in ("text", "number", "amount", "date"))  # type: ignore[arg-type]
ANSWER_FIELDS = ("预算", "决策人", "下次联系时间", "金额", "输单原因")
# Date answers go through nlp extraction, whose lexicons load on first use (seconds):
# keep that out of the first input's budget.
parse_answer(StageField("日期", "date"), "下周三", NOW)
PATTERNS = (
    opportunities.STAGE_COMMAND, opportunities.OUTCOME_COMMAND, opportunities.CREATE_COMMAND,
    opportunities.CARD_COMMAND, opportunities.SCORE_COMMAND, decision_chain.COMMAND,
    followups.EDIT, followups.QUERY, followups.QUERY_HINT, leads.REASSIGN,
)


def _check(data: bytes) -> None:
    message = text(data)
    stripped = message.strip()
    for kind in ("text", "voice", "card_action"):
        event = InboundEvent(platform="wecom", platform_user="fuzz", kind=kind, received_at=NOW,  # type: ignore[arg-type]
                             text=message, action=message)
        for route in ROUTES:
            route.matches(event)
    reports._tokens(stripped)
    tickets.classify(message, key_customer=True)
    followups._looks_like_query(message)
    followups._query_subject(message)
    for pattern in PATTERNS:
        pattern.match(stripped)
        pattern.search(message)
    statement = decision_chain.parse_statement(message)
    for weight in statement.weights.values():
        if not 0 <= weight <= 100:
            raise ContractViolation(f"decision weight {weight} outside 0..100")
    for stage_field in STAGE_FIELDS:
        value, hint = parse_answer(stage_field, message, NOW)
        if (value is None) == (not hint):
            raise ContractViolation(f"parse_answer gave value {value!r:.40} with hint {hint!r:.40}")
    labelled_answers(ANSWER_FIELDS, message)
    check_transition(PIPELINE, PIPELINE.first.name, stripped[:16])
    try:
        ActionKey.unpack(message, SECRET)
    except BadAction:
        pass
    try:
        leads.parse_budget_fen(message)
    except ValueError:
        pass
    normalize_phone(message)
    normalize_phone(message, default_area="0512")
    normalize_company(message)
    normalize_contact(message)
    parse_chat_record(message)


def check(data: bytes) -> None:
    """The contract in the module docstring, for one input."""
    with within(1.0, "chat command parsing"):
        _check(data)
