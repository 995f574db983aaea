"""DingTalk events after decryption: robot messages, forwarded chat records, card clicks, Stream frames.

Contract of :func:`check`: for any decrypted JSON (an outgoing-robot body, an event
subscription's plaintext, a Stream frame's ``data``), turning it into an ``InboundEvent``
raises nothing but ``Malformed`` (answered 400, or a Stream ack with code 400) and takes
at most 1 s. Anything else is answered 503 over HTTP and left unacknowledged over
Stream, so DingTalk delivers the same message again and it fails again. Besides, every
event handed to the gateway has the documented field types, keeps to the inbox's
limits (card id 64 characters) and can be stored as UTF-8 JSON, and a chat record
holds at most 50 lines.

Input: one selector byte, then the rest. ``selector % 4`` is the mode:

0. a robot message (``robot_message_event`` through ``DingTalkAdapter.ingest_robot_message``,
   the sessionWebhook included)
1. a card callback's data (``DingTalkAdapter.ingest_card_callback``; the sent card is
   looked up in a fake outbox of three buttons)
2. a raw Stream frame (``_with_string_data``, the SDK's ``CallbackMessage.from_dict``
   and ``StreamConnection._store``, as ``_on_frame`` does for a CALLBACK frame)
3. a forwarded chat record in any of its shapes, for ``_chat_record``

The seeds are the payloads ``tests/dingtalk_fakes.py`` builds (see ``fuzz/make_corpus.py``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.dingtalk import (  # the SDK's frame model through bot/: only bot/ imports platform SDKs
    CallbackMessage,
    DingTalkAdapter,
    DingTalkConfig,
    Malformed,
    StreamConnection,
    _chat_record,
    _with_string_data,
)
from fuzz.framing import ContractViolation, text, within
from fuzz.targets.feishu_events import RecordingGateway, check_event, run_now
from handlers.context import FakeClock, HandlerContext

NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
MAX_RECORD_LINES = 50
KEYS = ("accept:c1::0123456789abcdef0123", "transfer:c1::0123456789abcdef0123", "invalid:c1::0123456789abcdef0123")


class FuzzAdapter(DingTalkAdapter):
    """The real adapter, with the sent card's button keys read from memory instead of the outbox."""

    async def _action_key(self, card_id: str, index: int) -> str | None:
        return KEYS[index] if index < len(KEYS) else None


def _adapter() -> FuzzAdapter:
    config = DingTalkConfig(app_key="dingfuzzappkey", app_secret="fuzz-app-secret", robot_code="dingfuzzappkey", mode="http")
    # No database: the only read on these paths (the sent card) is overridden above.
    return FuzzAdapter(config, None, HandlerContext(clock=FakeClock(NOW), secret="fuzz-button-secret"))  # type: ignore[arg-type]


ADAPTER = _adapter()
STREAM = StreamConnection(ADAPTER)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(text(raw))
    except (ValueError, RecursionError):
        return None


def _check(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 4, data[1:]
    value = _json(rest)
    gateway = RecordingGateway()
    ADAPTER.bind(gateway)  # type: ignore[arg-type]
    ADAPTER._webhooks.clear()
    try:
        if mode == 0:
            if not isinstance(value, dict):
                return  # refused as "malformed body" before this point
            run_now(ADAPTER.ingest_robot_message(value))
        elif mode == 1:
            if not isinstance(value, dict):
                return
            run_now(ADAPTER.ingest_card_callback(value, "stream-fuzz"))
        elif mode == 2:
            if not isinstance(value, dict):
                return  # _serve_once reads frames with json.loads and skips what is no object
            headers = value.get("headers") if isinstance(value.get("headers"), dict) else {}
            if value.get("type") != CallbackMessage.TYPE:
                return  # SYSTEM and EVENT frames are answered without reading data
            message = CallbackMessage.from_dict(_with_string_data(value))
            run_now(STREAM._store(headers.get("topic") if isinstance(headers, dict) else None, message))
        else:
            lines = _chat_record(value if value is not None else text(rest))
            if len(lines) > MAX_RECORD_LINES:
                raise ContractViolation(f"a chat record of {len(lines)} lines")
    except Malformed as exc:
        if not str(exc):
            raise ContractViolation("a refusal without a reason") from None
        return
    for key, event, _ in gateway.ingested:
        check_event(key, event)
        if len(event.chat_record) > MAX_RECORD_LINES:
            raise ContractViolation(f"a chat record of {len(event.chat_record)} lines")
    for webhook in ADAPTER._webhooks.values():
        if not webhook.url.startswith(("https://", "http://")):
            raise ContractViolation(f"a reply webhook that is no URL: {webhook.url!r:.60}")


def check(data: bytes) -> None:
    """The contract in the module docstring, for one input."""
    with within(1.0, "dingtalk event parsing"):
        _check(data)

