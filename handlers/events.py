"""The internal inbound vocabulary: who said what, where.

Platform adapters in ``bot/`` turn a verified callback into an :class:`InboundEvent`;
handlers never see platform JSON or XML. Events are persisted in the inbox (as
:meth:`InboundEvent.to_json`) before the platform gets its acknowledgement, so the
shape must stay JSON-serialisable and backward compatible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal

EventKind = Literal["text", "voice", "forward", "card_action", "file"]
Platform = Literal["sandbox", "wecom", "feishu", "dingtalk"]


@dataclass(frozen=True)
class ChatLine:
    """One line of a forwarded chat record."""

    speaker: str
    text: str
    sent_at: str | None = None  # as written in the record ("10:32", "6月12日 09:14"); parsed by nlp


@dataclass(frozen=True)
class InboundEvent:
    """Something a member did in chat.

    ``platform_user`` is the member's id on that platform (WeCom userid, Feishu open_id,
    DingTalk staff id, sandbox member id); the identity middleware maps it to a member.
    """

    platform: Platform
    platform_user: str
    kind: EventKind
    received_at: datetime
    conversation: str = ""
    text: str = ""
    chat_record: tuple[ChatLine, ...] = ()
    card_id: str = ""
    action: str = ""
    file_name: str = ""
    file_ref: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """Serialise for the inbox."""
        # A shallow copy: asdict's deep copy was a fifth of a callback's ingest CPU.
        data = {f.name: _storable(getattr(self, f.name)) for f in fields(self) if f.name not in ("received_at", "chat_record")}
        data["received_at"] = self.received_at.isoformat()
        data["chat_record"] = [{f.name: _storable(getattr(line, f.name)) for f in fields(line)} for line in self.chat_record]
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str) -> InboundEvent:
        """Inverse of :meth:`to_json`."""
        data = json.loads(raw)
        data["received_at"] = datetime.fromisoformat(data["received_at"])
        data["chat_record"] = tuple(ChatLine(**line) for line in data.get("chat_record", ()))
        return cls(**data)


def _storable(value: Any) -> Any:
    """Text as a database can keep it: NUL dropped (PostgreSQL refuses it) and lone
    surrogates (a platform's JSON can carry ``\\ud800``) replaced, so a chat message that
    holds them is still handled instead of failing in every handler that stores it."""
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable(v) for v in value]
    if not isinstance(value, str):
        return value
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value
