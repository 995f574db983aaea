"""From an inbound event to what the CRM does: identify the member, route, reply.

Routes are tried in order; the first whose filter matches handles the event (aiogram's
rule). Filters are plain predicates over the event, so adding a command is one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session

from handlers import (
    alerts,
    decision_chain,
    followups,
    leads,
    merges,
    opportunities,
    reports,
    tickets,
)
from handlers.actions import ActionKey, BadAction
from handlers.context import HandlerContext, Outgoing
from handlers.events import InboundEvent
from store.models import Member

Handler = Callable[[Session, Member, InboundEvent, HandlerContext, str], list[Outgoing]]
Filter = Callable[[InboundEvent], bool]

HELP_TEXT = (
    "我是 leadbot，您的销售助手：\n"
    "· 直接发来与客户的沟通记录或语音转文字，我会记成跟进；\n"
    "· 新线索会以卡片推送给您，点「接受 / 转派 / 无效」即可；\n"
    "· 发送「帮助」查看本说明。"
)

PLATFORM_ID_COLUMN = {
    "sandbox": Member.id,
    "wecom": Member.wecom_userid,
    "feishu": Member.feishu_open_id,
    "dingtalk": Member.dingtalk_userid,
}


def identify(session: Session, event: InboundEvent) -> Member | None:
    """The member behind the event's platform user id."""
    column = PLATFORM_ID_COLUMN.get(event.platform)
    if column is None or not event.platform_user:
        return None
    return session.execute(select(Member).where(column == event.platform_user)).scalars().first()


def text_is(*words: str) -> Filter:
    """Matches a text message equal to one of ``words`` (full-width and spaces folded)."""
    wanted = {w.lower() for w in words}
    return lambda e: e.kind == "text" and e.text.strip().lower() in wanted


def kind_is(*kinds: str) -> Filter:
    """Matches events of these kinds."""
    return lambda e: e.kind in kinds


def _help(session: Session, member: Member, event: InboundEvent, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    return [Outgoing(member.id, "text", f"{cause}:reply", text=HELP_TEXT, platform=event.platform)]


_EMPTY_REPLY = {
    False: "没有收到文字内容。语音请先用「转文字」再发送。",
    # The platform would not give us the forwarded record (recalled, or still failing after retries).
    True: "合并转发的聊天记录暂时无法读取（可能已撤回），请把聊天内容复制成文字发给我。",
}


def _note(session: Session, member: Member, event: InboundEvent, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    text = event.text
    if event.kind == "forward" and event.chat_record:
        text = "\n".join(f"{line.speaker}: {line.text}" for line in event.chat_record)
    if not text.strip():
        return [Outgoing(member.id, "text", f"{cause}:reply", text=_EMPTY_REPLY[event.kind == "forward"], platform=event.platform)]
    return followups.on_note(session, member, text, ctx, cause)


def _sales_text(session: Session, member: Member, event: InboundEvent, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    # Stage commands, answers to a stage gate and decision-chain commands first; anything
    # else is a follow-up note.
    for handler in (opportunities.on_text, decision_chain.on_text):
        out = handler(session, member, event, ctx, cause)
        if out is not None:
            return out
    return _note(session, member, event, ctx, cause)


def _manager(session: Session, member: Member, event: InboundEvent, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    return leads.on_manager_command(session, member, event.text, ctx, cause)


def _split(session: Session, member: Member, event: InboundEvent, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    return merges.on_command(session, member, event.text, ctx, cause)


def _ticket(session: Session, member: Member, event: InboundEvent, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    return tickets.on_ticket_text(session, member, event.text, ctx, cause, ctx.ticket_policy)


def _unsupported(session: Session, member: Member, event: InboundEvent, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    return [Outgoing(member.id, "text", f"{cause}:reply", text="暂不支持这种消息，请发送文字。", platform=event.platform)]


ACTION_HANDLERS: dict[str, Callable[[Session, Member, ActionKey, HandlerContext, str], list[Outgoing]]] = {
    "accept": leads.on_lead_action,
    "transfer": leads.on_lead_action,
    "invalid": leads.on_lead_action,
    "invreason": leads.on_invalid_reason,
    **{verb: followups.on_card for verb in ("fuok", "fuedit", "funot", "fulink", "funew", "fuopp")},
    "stgo": opportunities.on_stage_action,
    **alerts.ACTION_HANDLERS,
}


def _card_action(session: Session, member: Member, event: InboundEvent, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    try:
        key = ActionKey.unpack(event.action, ctx.secret)
    except BadAction:
        return [Outgoing(member.id, "text", f"{cause}:reply", text="这个按钮无效或已过期。", platform=event.platform)]
    if event.card_id and key.card_id != event.card_id and not event.card_id.startswith(key.card_id):
        return [Outgoing(member.id, "text", f"{cause}:reply", text="这个按钮无效或已过期。", platform=event.platform)]
    handler = ACTION_HANDLERS.get(key.verb) or tickets.action_handlers(ctx.ticket_policy or tickets.TicketPolicy()).get(key.verb)
    if handler is None:
        return [Outgoing(member.id, "text", f"{cause}:reply", text="无法识别的操作。", platform=event.platform)]
    return handler(session, member, key, ctx, cause)


@dataclass(frozen=True)
class Route:
    """A filter and the handler it leads to."""

    matches: Filter
    handler: Handler


ROUTES: tuple[Route, ...] = (
    Route(kind_is("card_action"), _card_action),
    Route(text_is("帮助", "help", "?", "？", "菜单"), _help),
    Route(reports.is_report_command, reports.on_report),
    Route(lambda e: e.kind == "text" and leads.is_manager_command(e.text), _manager),
    Route(lambda e: e.kind == "text" and merges.is_split_command(e.text), _split),
    # A customer's problem ("设备报错E04，产线停了") becomes a service ticket, not a note.
    Route(lambda e: e.kind in ("text", "voice") and tickets.looks_like_ticket(e.text), _ticket),
    Route(kind_is("text"), _sales_text),
    Route(kind_is("text", "voice", "forward"), _note),
    Route(lambda e: True, _unsupported),
)


def handle(session: Session, event: InboundEvent, ctx: HandlerContext, cause: str) -> list[Outgoing]:
    """Handle one inbound event inside the caller's transaction; returns what to send."""
    member = identify(session, event)
    if member is None:
        return [
            Outgoing("", "text", f"{cause}:reply", platform=event.platform, recipient=event.platform_user,
                     text="您好，您还不是 leadbot 的成员。请联系管理员在 leadbot.toml 的 [[members]] 中添加您的账号。")
        ]
    for route in ROUTES:
        if route.matches(event):
            return route.handler(session, member, event, ctx, cause)
    return []
