"""Outbound webhooks: domain events (stage changed, contract signed, ticket escalated) for
other systems (ERP, MES), queued through the outbox in the same transaction as the change.

The handler side is pure data: :func:`parse_webhooks` validates ``[[webhooks]]``,
:func:`event_payload` builds the stable JSON of one event (Chinese field names), and
:func:`outgoing_for` turns it into one :class:`~handlers.context.Outgoing` per subscribed
webhook (``platform="webhook"``, ``recipient=<webhook name>``). ``bot/webhooks.py`` applies
the field mapping, signs and POSTs it; the gateway's retries and dead letters apply as for
any chat message.

``leadbot.toml``::

    [[webhooks]]
    name = "erp"
    url = "https://erp.example.com/leadbot"
    events = ["stage_changed", "contract_signed", "ticket_escalated"]
    mapping = { "客户名称" = "customer_name", "客户PO号" = "订单ID", "金额" = "amount_yuan" }
    secret_env = "ERP_WEBHOOK_SECRET"    # the environment variable holding the signing secret
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from difflib import get_close_matches
from typing import TYPE_CHECKING, Any

from handlers.context import Outgoing

if TYPE_CHECKING:
    from sqlmodel import Session

    from handlers.stages import Pipeline, Stage
    from store.models import Member, Opportunity, Ticket

EVENTS: tuple[str, ...] = ("stage_changed", "contract_signed", "ticket_escalated")
PLATFORM = "webhook"
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
ENV_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
ALLOWED_KEYS = ("name", "url", "events", "mapping", "secret_env", "timeout_seconds")
MIN_SECRET_LENGTH = 16
# Event ids are UUIDv5 of what caused the event, so a replayed cause gives the same id.
_EVENT_NAMESPACE = uuid.UUID("6f1d8a52-8f0e-4c36-9a2d-1b7e51c0a7d3")


class WebhookConfigError(ValueError):
    """An invalid ``[[webhooks]]`` entry: which one (``index``), which key, why (zh, en)."""

    def __init__(self, index: int | None, key: str, zh: str, en: str) -> None:
        self.index, self.key, self.zh, self.en = index, key, zh, en
        where = f"webhooks[{index}].{key}" if index is not None else "webhooks"
        super().__init__(f"{where}: {zh} ({en})")


@dataclass(frozen=True)
class Webhook:
    """One receiving system: where to POST, which events, how to rename fields, the secret."""

    name: str
    url: str
    events: tuple[str, ...]
    mapping: Mapping[str, str] = field(default_factory=dict)  # our field → their field; empty = send all
    secret: str = field(default="", repr=False)
    timeout_seconds: float = 10.0


def parse_webhooks(raw: Any, environ: Mapping[str, str]) -> tuple[Webhook, ...]:
    """Validate ``[[webhooks]]`` (``raw`` as parsed from TOML); secrets are read from ``environ``.

    Raises :class:`WebhookConfigError` naming the entry and key.
    """
    if raw is None:
        return ()
    if isinstance(raw, dict):
        # LEADBOT_WEBHOOKS__X__Y overrides turn the array into a table: say what to do instead.
        raise WebhookConfigError(None, "webhooks", "应写成 [[webhooks]] 数组；密钥请用 secret_env 指定环境变量（LEADBOT_WEBHOOKS__… 覆盖不适用于数组）",
                                 "must be an array [[webhooks]]; name the secret's environment variable with secret_env")
    if not isinstance(raw, list):
        raise WebhookConfigError(None, "webhooks", "应写成 [[webhooks]] 数组", "must be an array of tables [[webhooks]]")
    hooks: list[Webhook] = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise WebhookConfigError(i, "name", "每个 [[webhooks]] 应为表", "each webhook must be a table")
        for key in entry:
            if key not in ALLOWED_KEYS:
                hint = get_close_matches(key, ALLOWED_KEYS, n=1)
                raise WebhookConfigError(i, key, f"字段不存在{f'，是否指 `{hint[0]}`?' if hint else ''}（可用: {', '.join(ALLOWED_KEYS)}）",
                                         f"unknown key{f' (did you mean {hint[0]}?)' if hint else ''}")
        name = entry.get("name")
        if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
            raise WebhookConfigError(i, "name", "名称只能包含字母、数字、_ -（1–64 个字符）", "name must be 1-64 of [A-Za-z0-9_-]")
        if any(h.name == name for h in hooks):
            raise WebhookConfigError(i, "name", f"名称 `{name}` 重复", f"duplicate webhook name `{name}`")
        url = entry.get("url")
        if not isinstance(url, str) or re.fullmatch(r"https?://[^\s/?#]+(?:[/?#]\S*)?", url) is None:
            raise WebhookConfigError(i, "url", "地址应以 https:// 开头（内网可用 http://）", "url must be an http(s):// URL")
        events = entry.get("events")
        if not isinstance(events, list) or not events:
            raise WebhookConfigError(i, "events", f"请列出要推送的事件（可选: {', '.join(EVENTS)}）", f"list the events to send (of {', '.join(EVENTS)})")
        for ev in events:
            if ev not in EVENTS:
                hint = get_close_matches(str(ev), EVENTS, n=1)
                raise WebhookConfigError(i, "events", f"未知事件 `{ev}`{f'，是否指 `{hint[0]}`?' if hint else ''}（可选: {', '.join(EVENTS)}）",
                                         f"unknown event `{ev}` (one of {', '.join(EVENTS)})")
        mapping = entry.get("mapping", {})
        if not isinstance(mapping, dict):
            raise WebhookConfigError(i, "mapping", "字段映射应写成 { \"我方字段\" = \"对方字段\" }", "mapping must be an inline table")
        theirs: dict[str, str] = {}
        for ours, their in mapping.items():
            if not isinstance(their, str) or not their.strip():
                raise WebhookConfigError(i, "mapping", f"`{ours}` 的对方字段名应为非空字符串", f"target of `{ours}` must be a non-empty string")
            if their in theirs:
                raise WebhookConfigError(i, "mapping", f"`{theirs[their]}` 和 `{ours}` 映射到同一个字段 `{their}`", f"`{theirs[their]}` and `{ours}` both map to `{their}`")
            theirs[their] = ours
        env = entry.get("secret_env")
        if not isinstance(env, str) or ENV_PATTERN.fullmatch(env) is None:
            raise WebhookConfigError(i, "secret_env", "请用 secret_env 指定保存签名密钥的环境变量名，例如 \"ERP_WEBHOOK_SECRET\"",
                                     "secret_env must name the environment variable holding the signing secret")
        secret = environ.get(env, "")
        if not secret:
            raise WebhookConfigError(i, "secret_env", f"环境变量 {env} 未设置或为空（webhook `{name}` 的签名密钥）", f"environment variable {env} is not set")
        if len(secret) < MIN_SECRET_LENGTH:
            raise WebhookConfigError(i, "secret_env", f"环境变量 {env} 的密钥太短，至少 {MIN_SECRET_LENGTH} 个字符", f"secret in {env} is shorter than {MIN_SECRET_LENGTH} characters")
        timeout = entry.get("timeout_seconds", 10)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 60:
            raise WebhookConfigError(i, "timeout_seconds", "超时应为 0–60 秒之间的数字", "timeout_seconds must be a number in (0, 60]")
        hooks.append(Webhook(name=name, url=url, events=tuple(dict.fromkeys(events)), mapping=dict(mapping),
                             secret=secret, timeout_seconds=float(timeout)))
    return tuple(hooks)


# ----------------------------------------------------------------------------- payloads
def event_id_for(dedupe: str) -> str:
    """The event id for a cause: the same cause (a replayed inbox row) gives the same id."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, dedupe))


def _iso_utc(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def event_payload(kind: str, data: Mapping[str, Any], now: datetime, event_id: str | None = None) -> dict[str, Any]:
    """The event as receivers see it before their field mapping.

    ``{"event_id", "kind", "occurred_at" (ISO UTC), "data" {Chinese field names}}``. Without
    ``event_id`` one is derived from the content, so the same call gives the same payload.
    """
    if kind not in EVENTS:
        raise ValueError(f"unknown webhook event {kind!r}")
    occurred = _iso_utc(now)
    if event_id is None:
        event_id = event_id_for(json.dumps([kind, occurred, data], ensure_ascii=False, sort_keys=True, default=str))
    return {"event_id": event_id, "kind": kind, "occurred_at": occurred, "data": dict(data)}


def dumps(payload: Mapping[str, Any]) -> str:
    """Stable JSON text (sorted keys, no spaces, UTF-8 Chinese): what is queued and signed."""
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def apply_mapping(payload: Mapping[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    """Rename ``data`` fields for the receiver; unmapped fields are dropped when a mapping is given."""
    if not mapping:
        return dict(payload)
    data = payload.get("data") or {}
    return {**payload, "data": {their: data[ours] for ours, their in mapping.items() if ours in data}}


def outgoing_for(webhooks: Sequence[Webhook], kind: str, data: Mapping[str, Any], now: datetime, dedupe: str) -> list[Outgoing]:
    """One outbox message per webhook subscribed to ``kind``; ``dedupe`` names the cause."""
    subscribed = [w for w in webhooks if kind in w.events]
    if not subscribed:
        return []
    event_id = event_id_for(f"{dedupe}:{kind}")
    text = dumps(event_payload(kind, data, now, event_id))
    return [Outgoing(member_id="", kind="text", platform=PLATFORM, recipient=w.name, text=text,
                     dedupe_key=f"hook:{w.name}:{event_id}") for w in subscribed]


def _yuan(fen: int | None) -> int | float | None:
    """Money for machines: fen → yuan as a JSON number (whole yuan as an integer)."""
    if fen is None:
        return None
    return fen // 100 if fen % 100 == 0 else float(Decimal(fen) / 100)


def stage_events(session: Session, opp: Opportunity, stage: Stage, previous: str, answers: Mapping[str, Any],
                 actor: Member, pipeline: Pipeline, webhooks: Sequence[Webhook], now: datetime, cause: str) -> list[Outgoing]:
    """``stage_changed`` for a move into ``stage``, plus ``contract_signed`` when it is a won stage."""
    if not webhooks:
        return []
    from store.models import Customer
    from store.models import Member as MemberRow

    customer = session.get(Customer, opp.customer_id) if opp.customer_id else None
    owner = session.get(MemberRow, opp.owner_id) if opp.owner_id else None
    kinds = {f.name: f.kind for s in pipeline.stages for f in s.required}
    data: dict[str, Any] = {}
    for name, value in answers.items():
        data[name] = _yuan(value) if kinds.get(name) == "amount" and isinstance(value, int) else value
    data.update({
        "商机ID": opp.id, "商机": opp.name, "客户ID": opp.customer_id, "客户名称": customer.name if customer else opp.name,
        "线索ID": opp.lead_id, "原阶段": previous, "阶段": stage.name, "阶段结果": stage.outcome or "open",
        "金额": _yuan(opp.amount_fen), "负责人ID": opp.owner_id, "负责人": owner.name if owner else None,
        "操作人ID": actor.id, "操作人": actor.name,
        "预计签约": opp.expected_close_on.isoformat() if opp.expected_close_on else None,
        "截止时间": _iso_utc(opp.stage_due_at) if opp.stage_due_at else None,
    })
    cause_key = f"{cause}:opp{opp.id}:{stage.name}"
    out = outgoing_for(webhooks, "stage_changed", data, now, cause_key)
    if stage.outcome == "won":
        out += outgoing_for(webhooks, "contract_signed", data, now, cause_key)
    return out


def escalation_events(session: Session, ticket: Ticket, step: int, target: str | None, reason: str,
                      webhooks: Sequence[Webhook], now: datetime) -> list[Outgoing]:
    """``ticket_escalated`` for step ``step`` (0-based) of ``ticket``'s SLA chain."""
    if not webhooks:
        return []
    from store.models import Customer
    from store.models import Member as MemberRow

    customer = session.get(Customer, ticket.customer_id) if ticket.customer_id else None
    owner = session.get(MemberRow, ticket.owner_id) if ticket.owner_id else None
    to = session.get(MemberRow, target) if target else None
    data = {
        "工单ID": ticket.id, "优先级": ticket.priority, "状态": ticket.status, "问题描述": ticket.text[:500],
        "客户ID": ticket.customer_id, "客户名称": customer.name if customer else None,
        "负责人ID": ticket.owner_id, "负责人": owner.name if owner else None,
        "升级步骤": step + 1, "升级对象ID": target, "升级对象": to.name if to else None, "升级原因": reason,
    }
    return outgoing_for(webhooks, "ticket_escalated", data, now, f"ticket:{ticket.id}:step{step}")
