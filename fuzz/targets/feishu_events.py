"""Feishu events after decryption: the envelope, message events, card clicks, merged forwards.

Contract of :func:`check`: for any decrypted JSON, turning it into an ``InboundEvent``
raises nothing but the adapter's documented refusals (``_Malformed`` → a 400 for an
event it does not understand, ``CallbackRejected`` for a body it does not trust) and
takes at most 1 s. Anything else is answered 503 ("temporarily unavailable"): Feishu
retries the same event, which fails the same way again. Besides, every event handed to
the gateway has the documented field types (text and ids as ``str``, a card id of at
most 64 characters, a button key of at most 256), and a merged forward never yields
more lines than ``merge_forward_max_items``.

Input: one selector byte, then the rest. ``selector % 5`` is the mode:

0. a decrypted envelope ``{"schema": "2.0", "header": …, "event": …}``, dispatched as
   ``FeishuAdapter.handle_callback`` does (message events and card clicks)
1. the raw request body, read by ``FeishuAdapter._authenticate`` of a plaintext-mode
   app (verification token): what anyone on the internet can send
2. the ``items`` of ``GET /im/v1/messages/{id}`` (a JSON list) for ``flatten_forward``
3. a message ``content`` object for ``message_text`` of every message type and ``post_to_text``
4. ``text 0x1E mentions-JSON`` for ``resolve_mentions``

The seeds are the payloads ``tests/feishu_fakes.py`` builds (see ``fuzz/make_corpus.py``).
"""

from __future__ import annotations

import json
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from bot.crypto import CallbackRejected
from bot.feishu import (
    FeishuAdapter,
    FeishuConfig,
    _Malformed,
    flatten_forward,
    message_text,
    post_to_text,
    resolve_mentions,
)
from fuzz.framing import ContractViolation, fields, text, within
from handlers.context import FakeClock, HandlerContext
from handlers.events import InboundEvent

NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
TOKEN = "vtok-abcdef"
ROOT_ID = "om_fwd"
MAX_DEPTH, MAX_ITEMS = 3, 50
MESSAGE_TYPES = ("text", "post", "image", "file", "audio", "sticker", "merge_forward", "media", "interactive")


class RecordingGateway:
    """The two gateway calls the Feishu callback makes, answered at once and without a database."""

    inline_answer_seconds = 0.0

    def __init__(self) -> None:
        self.ingested: list[tuple[str, InboundEvent, bool]] = []

    async def ingest(self, key: str, event: InboundEvent, *, incomplete: bool = False) -> int:
        self.ingested.append((key, event, incomplete))
        return len(self.ingested)

    async def wait_handled(self, inbox_id: int, seconds: float) -> bool:
        return False  # the click is answered "已收到，正在处理…": no outbox read


def _adapter() -> FeishuAdapter:
    config = FeishuConfig(app_id="cli_a1b2c3d4e5", app_secret="feishu-app-secret-0123", verification_token=TOKEN)
    # No database: nothing on the paths driven here reads one (charts are only for sending).
    return FeishuAdapter(config, None, HandlerContext(clock=FakeClock(NOW), secret="fuzz-button-secret"))  # type: ignore[arg-type]


ADAPTER = _adapter()


def run_now(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that awaits nothing but our fakes: one step, no event loop (fast, deterministic)."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise ContractViolation("the callback awaited something besides the gateway fake")


def _json(raw: bytes) -> Any:
    """The JSON value of ``raw``, or ``None`` (decrypted bodies that are no JSON are refused earlier)."""
    try:
        return json.loads(text(raw))
    except (ValueError, RecursionError):
        return None


def check_event(key: str, event: InboundEvent) -> None:
    """The gateway-side contract for one ingested event (shared with the DingTalk target)."""
    for name in ("platform_user", "text", "conversation", "card_id", "action", "file_ref", "file_name"):
        value = getattr(event, name)
        if value is not None and not isinstance(value, str):
            raise ContractViolation(f"{name} is {type(value).__name__}, not str")
    if not key or not event.platform_user:
        raise ContractViolation("an event without an inbox key or a sender")
    if event.kind == "card_action" and (len(event.card_id or "") > 64 or len(event.action or "") > 256):
        raise ContractViolation("card id or button key longer than the inbox stores")
    for line in event.chat_record:
        if not isinstance(line.speaker, str) or not isinstance(line.text, str):
            raise ContractViolation("a chat line with a non-text speaker or text")
    # The inbox keeps the event as UTF-8 JSON text before Feishu gets its answer.
    stored = event.to_json()
    stored.encode("utf-8")
    if InboundEvent.from_json(stored).kind != event.kind:
        raise ContractViolation("the stored event reads back as another kind")


def _envelope(envelope: Any) -> None:
    """``handle_callback`` after ``_authenticate``: the same checks, in the same order."""
    if not isinstance(envelope, dict) or envelope.get("type") == "url_verification":
        return
    header, event = envelope.get("header"), envelope.get("event")
    if envelope.get("schema") != "2.0" or not isinstance(header, dict) or not isinstance(event, dict):
        return  # answered 400 "unsupported event schema"
    event_id = str(header.get("event_id") or "")
    gateway = RecordingGateway()
    ADAPTER.gateway = gateway  # type: ignore[assignment]
    ADAPTER._message_ids.clear()
    ADAPTER._callback_tokens.clear()
    try:
        if header.get("event_type") == "im.message.receive_v1":
            run_now(ADAPTER._on_message(event))
        elif header.get("event_type") == "card.action.trigger":
            run_now(ADAPTER._on_card_action(event, event_id, gateway))  # type: ignore[arg-type]
    except _Malformed as exc:
        if not str(exc):
            raise ContractViolation("a refusal without a reason") from None
        return
    for key, inbound, _ in gateway.ingested:
        check_event(key, inbound)


def _forward(items: Any) -> None:
    if not isinstance(items, list):
        return  # "no items in the answer": a permanent completion error, checked before
    names = {"ou_zhangwei": "张伟"}
    lines = flatten_forward(items, ROOT_ID, names, MAX_DEPTH, MAX_ITEMS)
    if len(lines) > MAX_ITEMS:
        raise ContractViolation(f"{len(lines)} lines, more than max_items {MAX_ITEMS}")
    for line in lines:
        if not isinstance(line.text, str) or not line.text or not isinstance(line.speaker, str):
            raise ContractViolation(f"a chat line without text or speaker: {line!r:.80}")


def _content(content: Any) -> None:
    if not isinstance(content, dict):
        return  # callers refuse (or replace by {}) a content that is not an object
    for msg_type in MESSAGE_TYPES:
        if not isinstance(message_text(msg_type, content, content.get("mentions")), str):
            raise ContractViolation(f"message_text({msg_type}) is not text")
    if not isinstance(post_to_text(content), str):
        raise ContractViolation("post_to_text is not text")


def _check(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 5, data[1:]
    if mode == 0:
        _envelope(_json(rest))
    elif mode == 1:
        try:
            ADAPTER._authenticate(rest, {})
        except CallbackRejected as exc:
            if not exc.reason:
                raise ContractViolation("a refusal without a reason") from None
    elif mode == 2:
        _forward(_json(rest))
    elif mode == 3:
        _content(_json(rest))
    else:
        raw_text, raw_mentions = fields(rest, 2)
        if not isinstance(resolve_mentions(text(raw_text), _json(raw_mentions)), str):
            raise ContractViolation("resolve_mentions is not text")


def check(data: bytes) -> None:
    """The contract in the module docstring, for one input."""
    with within(1.0, "feishu event parsing"):
        _check(data)
