"""Feishu (飞书) platform: ``POST /callback/feishu`` in, Open API out.

Inbound (event subscription v2 over HTTP, /work/shared/platforms.md §3.1):

1. Authenticate before parsing: with an Encrypt Key, ``X-Lark-Signature`` (plain SHA-256
   over timestamp + nonce + encrypt key + raw body) is checked in constant time, and the
   timestamp must be within ±300 s of our clock; only then is the body decrypted. The sole
   unsigned request we accept is ``url_verification`` (Feishu does not always sign it),
   which is answered only after its Verification Token matched. Without an Encrypt Key the
   Verification Token in the body is the only check Feishu offers.
2. De-duplicate: messages are stored under ``msg:<message_id>`` (stable across webhook
   retries *and* long-connection backfill, where ``event_id`` changes), and every
   ``event_id`` is also remembered in a replay cache so a retry is dropped before any work.
3. Store in the inbox, then answer 200. An event that needs something slow (fetching a
   merged-forward record's children, downloading a voice note for speech-to-text) is
   stored ``incomplete`` before the answer; the gateway's completion worker then calls
   :meth:`FeishuAdapter.complete` from the stored row (retries with backoff, resumes after
   a restart), so nothing acknowledged is lost even to ``kill -9``.

Card clicks (``card.action.trigger``) are answered within Feishu's 3 s: if the handler is
done within ``gateway.inline_answer_seconds`` the answer carries a toast and the updated
card; otherwise a "处理中" toast, and the update follows through the callback token
(``/interactive/v1/card/update``, 30 min, two uses) or, after that, ``PATCH`` of the message.

Outbound: ``tenant_access_token`` (7200 s, refreshed when fewer than 30 min remain, one
retry on the token-expired codes), messages with a ``uuid`` derived from our outbox dedupe
key (Feishu drops a repeated uuid), a per-recipient rate limit, and a text fallback when a
card is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from sqlalchemy import select
from sqlmodel import Session, col

from bot.config import ConfigError, Settings
from bot.crypto import (
    CallbackRejected,
    FeishuCrypto,
    ReplayCache,
    check_fresh,
    verify_feishu_token,
)
from bot.gateway import CompletionError, Delivered, DeliveryError, Gateway
from bot.http import ChartUploads, LazyHttp, json_object
from bot.keys import GATEWAY
from bot.ratelimit import RateRule
from bot.tokens import TokenManager
from cards.charts import IMAGE_LIMITS
from cards.feishu import render_feishu_card
from cards.model import Card
from cards.text import render_text
from handlers.context import Clock, HandlerContext
from handlers.events import ChatLine, InboundEvent
from store.db import Database
from store.models import CardHandle, Member, OutboxMessage

log = logging.getLogger("leadbot.feishu")

NAME: Literal["feishu"] = "feishu"
DEFAULT_API_BASE = "https://open.feishu.cn"
SHANGHAI = ZoneInfo("Asia/Shanghai")
_MS_DIGITS = re.compile(r"[0-9]{1,19}")  # a millisecond timestamp as Feishu writes it
TOKEN_EXPIRED_CODES = frozenset({99991663, 99991664, 99991665, 99991666, 99991668})
RATE_LIMIT_CODES = frozenset({99991400, 99991402, 11020, 11021, 11232})
# The recipient or chat is gone, the bot is not visible to them, …: retrying will not help.
PERMANENT_CODES = frozenset({230002, 230005, 230006, 230013, 230017, 230020, 99992351, 99992361})
CARD_REFUSED_CODES = frozenset({230001, 230025, 230099, 200621, 11310})
CARD_UPDATE_WINDOW = timedelta(days=14)  # JSON 2.0 cards: update/interaction window
CALLBACK_TOKEN_TTL = timedelta(minutes=30)
CALLBACK_TOKEN_USES = 2
MAX_BODY = 512 * 1024


class SpeechToText(Protocol):
    """Pluggable speech recognition for voice notes (Feishu delivers no transcript)."""

    async def transcribe(self, audio: bytes, *, fmt: str) -> str:
        """The text spoken in ``audio`` (Feishu voice notes are ``opus``); "" if nothing."""
        ...


@dataclass(frozen=True)
class FeishuConfig:
    """``[platforms.feishu]`` of leadbot.toml."""

    app_id: str
    app_secret: str
    verification_token: str = ""
    encrypt_key: str = ""
    api_base: str = DEFAULT_API_BASE
    card_schema: str = "2.0"
    window_s: int = 300
    merge_forward_max_depth: int = 3
    merge_forward_max_items: int = 50
    per_user_per_s: int = 5
    http_timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> FeishuConfig:
        """Read and validate the section; raises :class:`ConfigError` with a fix in Chinese."""
        raw = dict(settings.platforms.get(NAME, {}))

        def need(key: str, zh: str) -> str:
            value = raw.get(key)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(settings.path, None, f"platforms.feishu.{key}", f"缺少{zh}（飞书开放平台 → 应用 → {zh}），可用环境变量 LEADBOT_PLATFORMS__FEISHU__{key.upper()}", f"is required ({key})")
            return value.strip()

        app_id = need("app_id", "App ID")
        app_secret = need("app_secret", "App Secret")
        token = str(raw.get("verification_token") or "").strip()
        key = str(raw.get("encrypt_key") or "").strip()
        if not token and not key:
            raise ConfigError(settings.path, None, "platforms.feishu.verification_token", "至少需要配置 Verification Token 或 Encrypt Key（事件与回调 → 加密策略），否则无法验证回调来源", "verification_token or encrypt_key is required to authenticate callbacks")
        schema = str(raw.get("card_schema", "2.0"))
        if schema not in ("2.0", "1.0"):
            raise ConfigError(settings.path, None, "platforms.feishu.card_schema", "只能是 \"2.0\" 或 \"1.0\"", "must be \"2.0\" or \"1.0\"")
        return cls(
            app_id=app_id, app_secret=app_secret, verification_token=token, encrypt_key=key,
            api_base=str(raw.get("api_base") or DEFAULT_API_BASE).rstrip("/"), card_schema=schema,
            window_s=int(raw.get("window_s", 300)),
            merge_forward_max_depth=int(raw.get("merge_forward_max_depth", 3)),
            merge_forward_max_items=int(raw.get("merge_forward_max_items", 50)),
            per_user_per_s=int(raw.get("per_user_per_s", 5)),
            http_timeout_s=float(raw.get("http_timeout_s", 10.0)),
        )


def _transient(exc: FeishuApiError) -> bool:
    """A failure worth retrying: network, 5xx, rate limit, expired token."""
    return exc.status in (0, 429) or exc.status >= 500 or exc.code in RATE_LIMIT_CODES or exc.code in TOKEN_EXPIRED_CODES


class FeishuApiError(Exception):
    """An Open API call that did not succeed; ``code`` is Feishu's, ``status`` the HTTP one."""

    def __init__(self, status: int, code: int, msg: str, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status} code {code}: {msg[:200]}")
        self.status, self.code, self.msg, self.retry_after = status, code, msg, retry_after


class FeishuClient(LazyHttp):
    """The few Open API calls we need, on aiohttp, with the tenant token managed."""

    def __init__(self, config: FeishuConfig, clock: Clock) -> None:
        super().__init__(config.http_timeout_s)
        self.config = config
        self.clock = clock
        # Feishu issues a new token when fewer than 30 min remain; the old one stays valid.
        self.tokens = TokenManager(self._fetch_token, clock, refresh_margin_s=1800)

    async def _raw(self, method: str, path: str, *, token: str | None, json_body: Any = None,
                   params: dict[str, str] | None = None) -> tuple[int, dict[str, Any], bytes, str]:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            async with self.session.request(method, self.config.api_base + path, json=json_body, params=params, headers=headers) as resp:
                raw = await resp.read()
                ctype = resp.headers.get("Content-Type", "")
                reset = resp.headers.get("x-ogw-ratelimit-reset", "")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise FeishuApiError(0, -1, f"network: {type(exc).__name__}") from exc
        data = json_object(raw) if "json" in ctype or raw[:1] == b"{" else {}
        return resp.status, data, raw, reset

    async def _fetch_token(self) -> tuple[str, float]:
        status, data, _raw, _ = await self._raw(
            "POST", "/open-apis/auth/v3/tenant_access_token/internal", token=None,
            json_body={"app_id": self.config.app_id, "app_secret": self.config.app_secret},
        )
        token = data.get("tenant_access_token")
        if status != 200 or data.get("code") != 0 or not isinstance(token, str):
            raise FeishuApiError(status, int(data.get("code", -1) or -1), str(data.get("msg", "token fetch failed")))
        return token, float(data.get("expire", 7200))

    async def call(self, method: str, path: str, *, json_body: Any = None, params: dict[str, str] | None = None) -> dict[str, Any]:
        """An authenticated JSON call; returns ``data`` or raises :class:`FeishuApiError`."""

        async def once(token: str) -> tuple[int, dict[str, Any], bytes, str]:
            return await self._raw(method, path, token=token, json_body=json_body, params=params)

        status, data, _raw, reset = await self.tokens.call(once, expired=lambda r: r[1].get("code") in TOKEN_EXPIRED_CODES)
        code = data.get("code")
        if status == 200 and code == 0:
            payload = data.get("data")
            return payload if isinstance(payload, dict) else {}
        retry_after = float(reset) if reset.isdigit() else None
        raise FeishuApiError(status, int(code) if isinstance(code, int) else -1, str(data.get("msg", "")), retry_after)

    async def upload_image(self, png: bytes) -> str:
        """``POST /open-apis/im/v1/images`` (multipart, ``image_type=message``): the ``image_key``."""

        async def once(token: str) -> tuple[int, dict[str, Any], bytes, str]:
            # No JSON Content-Type here: aiohttp sets the multipart boundary. A FormData is
            # consumed by one request, so a retry with a fresh token builds its own.
            form = aiohttp.FormData()
            form.add_field("image_type", "message")
            form.add_field("image", png, filename="chart.png", content_type="image/png")
            try:
                async with self.session.post(self.config.api_base + "/open-apis/im/v1/images", data=form,
                                             headers={"Authorization": f"Bearer {token}"}) as resp:
                    raw = await resp.read()
                    reset = resp.headers.get("x-ogw-ratelimit-reset", "")
                    status = resp.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise FeishuApiError(0, -1, f"network: {type(exc).__name__}") from exc
            try:
                parsed = json.loads(raw) if raw[:1] == b"{" else {}
            except ValueError:
                parsed = {}
            return status, parsed if isinstance(parsed, dict) else {}, raw, reset

        status, data, _raw, reset = await self.tokens.call(once, expired=lambda r: r[1].get("code") in TOKEN_EXPIRED_CODES)
        payload = data.get("data")
        key = payload.get("image_key") if isinstance(payload, dict) else None
        if status == 200 and data.get("code") == 0 and isinstance(key, str) and key:
            return key
        code = data.get("code")
        raise FeishuApiError(status, int(code) if isinstance(code, int) else -1, str(data.get("msg", "image upload failed")),
                             float(reset) if reset.isdigit() else None)

    async def download(self, path: str) -> bytes:
        """A binary resource (voice notes, files)."""

        async def once(token: str) -> tuple[int, dict[str, Any], bytes, str]:
            return await self._raw("GET", path, token=token)

        status, data, raw, _ = await self.tokens.call(once, expired=lambda r: r[1].get("code") in TOKEN_EXPIRED_CODES)
        if status != 200 or data:
            raise FeishuApiError(status, int(data.get("code", -1) or -1), str(data.get("msg", "download failed")))
        return raw


@dataclass
class _CallbackToken:
    token: str
    expires_at: datetime
    uses_left: int = CALLBACK_TOKEN_USES


def _uuid_for(dedupe_key: str) -> str:
    # Feishu's uuid is at most 50 characters; our dedupe keys may be longer.
    return hashlib.sha256(dedupe_key.encode()).hexdigest()[:40]


def _local_time(ms: object) -> str | None:
    try:
        when = datetime.fromtimestamp(int(str(ms)) / 1000, SHANGHAI)
    except (ValueError, OverflowError, OSError):
        return None
    return f"{when.month}月{when.day}日 {when:%H:%M}"


def resolve_mentions(text: str, mentions: object) -> str:
    """Replace Feishu's ``@_user_N`` placeholders with ``@名字``.

    Placeholders at the very start address the bot (``@leadbot 今天拜访了…`` in a group) and
    are dropped, so the note starts with what the rep said.
    """
    keys: dict[str, str] = {}
    if isinstance(mentions, list):
        for m in mentions:
            if isinstance(m, dict) and isinstance(m.get("key"), str) and m["key"]:
                keys[m["key"]] = str(m.get("name") or "")
    text = text.strip()
    stripped = True
    while stripped:
        stripped = False
        for key in keys:
            if text.startswith(key):
                text, stripped = text[len(key):].lstrip(), True
    for key, name in keys.items():
        text = text.replace(key, f"@{name}" if name else "")
    return text.strip()


def post_to_text(content: dict[str, Any]) -> str:
    """Flatten a rich-text ``post`` (optionally wrapped in a locale such as ``zh_cn``) to plain text."""
    body: Any = content
    if "content" not in body:
        body = next((v for v in content.values() if isinstance(v, dict) and "content" in v), {})
    if not isinstance(body, dict):
        return ""
    lines: list[str] = []
    title = body.get("title")
    if isinstance(title, str) and title.strip():
        lines.append(title.strip())
    paragraphs = body.get("content")
    # Whatever a sender put there: only a list holds paragraphs (a number is no text at all).
    for paragraph in paragraphs if isinstance(paragraphs, list) else []:
        if not isinstance(paragraph, list):
            continue
        parts: list[str] = []
        for el in paragraph:
            if not isinstance(el, dict):
                continue
            tag = el.get("tag")
            if tag in ("text", "a", "md", "code_block"):
                parts.append(str(el.get("text", "")))
            elif tag == "at":
                parts.append(f"@{el.get('user_name', '')}")
            elif tag in ("img", "media"):
                parts.append("[图片]")
        line = "".join(parts).strip()
        if line:
            lines.append(line)
    return "\n".join(lines)


def message_text(msg_type: str, content: dict[str, Any], mentions: object = None) -> str:
    """The readable text of one message of any type (used for chat-record children too)."""
    if msg_type == "text":
        return resolve_mentions(str(content.get("text", "")), mentions)
    if msg_type == "post":
        return post_to_text(content)
    if msg_type == "image":
        return "[图片]"
    if msg_type == "file":
        return f"[文件] {content.get('file_name', '')}".strip()
    if msg_type == "audio":
        return "[语音]"
    if msg_type == "sticker":
        return "[表情]"
    if msg_type == "merge_forward":
        return "[聊天记录]"
    return f"[{msg_type}]"


class FeishuAdapter:
    """Feishu's inbound callback handling and outbound delivery."""

    name = NAME

    def __init__(self, config: FeishuConfig, db: Database, ctx: HandlerContext, *, stt: SpeechToText | None = None) -> None:
        self.config = config
        self.db = db
        self.ctx = ctx
        self.clock = ctx.clock
        self.client = FeishuClient(config, ctx.clock)
        self.crypto = FeishuCrypto(config.encrypt_key) if config.encrypt_key else None
        self.stt = stt
        self.events_seen = ReplayCache(ttl_s=24 * 3600, max_items=100_000)
        # Counted by the gateway in the database, for all processes together.
        self.rate_limits: tuple[RateRule, ...] = (RateRule(config.per_user_per_s, 1.0, slot_s=0.1),)
        self._callback_tokens: dict[str, _CallbackToken] = {}
        self._message_ids: dict[str, str] = {}  # our card id -> Feishu message id (cards without a CardHandle)
        # Uploaded charts, recorded in the database so card updates (and deliveries resumed
        # after a restart) keep the chart without uploading it again.
        self.charts = ChartUploads(NAME, IMAGE_LIMITS, self.client.upload_image, (FeishuApiError,), _transient,
                                   db=db, clock=ctx.clock)  # image_key does not expire
        self._answered_inline: set[str] = set()
        self.gateway: Gateway | None = None

    # ------------------------------------------------------------ lifecycle
    def recipient_for(self, member: Member) -> str | None:
        """The member's open_id."""
        return member.feishu_open_id or None

    async def start(self) -> None:
        """Nothing to connect in HTTP mode; the client session opens lazily."""

    async def close(self) -> None:
        """Close the HTTP session (incomplete events wait in the inbox for the next start)."""
        await self.client.close()

    async def settle(self) -> None:
        """Complete now what callbacks stored incomplete and is due (tests drive time this way)."""
        if self.gateway is not None:
            while await self.gateway.complete_due():
                pass

    # ------------------------------------------------------------ inbound
    async def handle_callback(self, request: web.Request, gateway: Gateway) -> web.Response:
        """``POST /callback/feishu``."""
        self.gateway = gateway
        raw = await request.read()
        if len(raw) > MAX_BODY:
            return _reject("body too large / 请求体过大", 413)
        try:
            envelope = self._authenticate(raw, request.headers)
        except CallbackRejected as exc:
            log.warning("feishu callback rejected: %s", exc.reason)
            return _reject(exc.reason)
        if envelope.get("type") == "url_verification":
            return web.json_response({"challenge": envelope.get("challenge", "")})
        header = envelope.get("header")
        event = envelope.get("event")
        if envelope.get("schema") != "2.0" or not isinstance(header, dict) or not isinstance(event, dict):
            return _reject("unsupported event schema / 仅支持 2.0 版事件")
        event_id = str(header.get("event_id") or "")
        event_type = header.get("event_type")
        if event_id and self.events_seen.seen_before(("e", event_id), self._now_s()):
            # A webhook retry of something already stored: acknowledge, do nothing.
            return web.json_response({})
        try:
            if event_type == "im.message.receive_v1":
                return await self._on_message(event)
            if event_type == "card.action.trigger":
                return await self._on_card_action(event, event_id, gateway)
        except _Malformed as exc:
            self._forget(event_id)
            return _reject(str(exc))
        except Exception:
            self._forget(event_id)
            log.exception("feishu callback could not be stored")
            return _reject("temporarily unavailable / 暂时无法处理，请重试", 503)
        return web.json_response({})

    def _forget(self, event_id: str) -> None:
        # The event was noted as seen but not stored: a retry must get through.
        self.events_seen.forget(("e", event_id))

    def _now_s(self) -> float:
        return self.clock.now().timestamp()

    def _authenticate(self, raw: bytes, headers: Any) -> dict[str, Any]:
        try:
            outer = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: `[[[[…` thousands deep
            raise CallbackRejected("malformed body / 请求体格式错误") from None
        if not isinstance(outer, dict):
            raise CallbackRejected("malformed body / 请求体格式错误")
        timestamp = headers.get("X-Lark-Request-Timestamp", "")
        nonce = headers.get("X-Lark-Request-Nonce", "")
        signature = headers.get("X-Lark-Signature", "")
        if "encrypt" in outer:
            if self.crypto is None:
                raise CallbackRejected("encrypted body but no encrypt_key configured / 未配置 Encrypt Key")
            signed = bool(signature)
            if signed:
                # Authenticate before touching the ciphertext.
                check_fresh(timestamp, self._now_s(), self.config.window_s)
                self.crypto.verify_signature(timestamp, nonce, raw, signature)
            try:
                inner = json.loads(self.crypto.decrypt_body(raw))
            except (ValueError, RecursionError):
                raise CallbackRejected("malformed body / 请求体格式错误") from None
            if not isinstance(inner, dict):
                raise CallbackRejected("malformed body / 请求体格式错误")
            if inner.get("type") == "url_verification":
                self._check_token(inner.get("token"))
                return inner
            if not signed:
                raise CallbackRejected("missing parameter / 缺少参数")
            self._check_token(_header_token(inner))
            return inner
        if self.crypto is not None:
            # We configured encryption: a plaintext body did not come from Feishu.
            raise CallbackRejected("plaintext body refused, encryption is on / 已启用加密，拒绝明文请求")
        if outer.get("type") == "url_verification":
            self._check_token(outer.get("token"))
            return outer
        if not self.config.verification_token:
            raise CallbackRejected("bad signature / 签名错误")
        verify_feishu_token(self.config.verification_token, _header_token(outer))
        return outer

    def _check_token(self, received: object) -> None:
        if self.config.verification_token:
            verify_feishu_token(self.config.verification_token, received)

    async def _on_message(self, event: dict[str, Any]) -> web.Response:
        message = event.get("message")
        sender = event.get("sender")
        if not isinstance(message, dict) or not isinstance(sender, dict):
            raise _Malformed("malformed message event / 消息事件格式错误")
        message_id = message.get("message_id")
        open_id = (sender.get("sender_id") or {}).get("open_id") if isinstance(sender.get("sender_id"), dict) else None
        if not isinstance(message_id, str) or not message_id or not isinstance(open_id, str) or not open_id:
            raise _Malformed("malformed message event / 消息事件格式错误")
        if sender.get("sender_type") not in (None, "user"):
            return web.json_response({})  # other bots and apps are not members
        msg_type = str(message.get("message_type") or "")
        try:
            content = json.loads(message.get("content") or "{}")
        except (ValueError, TypeError, RecursionError):
            raise _Malformed("malformed message content / 消息内容格式错误") from None
        if not isinstance(content, dict):
            raise _Malformed("malformed message content / 消息内容格式错误")
        now = self.clock.now()
        base = InboundEvent(
            platform=NAME, platform_user=open_id, kind="text", received_at=now,
            conversation=str(message.get("chat_id") or ""),
            extra={"message_id": message_id, "chat_type": message.get("chat_type", ""), "msg_type": msg_type},
        )
        key = f"msg:{message_id}"
        if msg_type in ("text", "post"):
            await self._ingest(key, _replace(base, text=message_text(msg_type, content, message.get("mentions"))))
        elif msg_type == "merge_forward":
            # Stored as its degraded form (a record without lines) and completed after the ack.
            await self._ingest(key, _forward_unreadable(base), incomplete=True)
        elif msg_type == "audio":
            file_key = str(content.get("file_key") or "")
            voice = _replace(base, kind="voice", file_ref=file_key, extra={**base.extra, "duration_ms": content.get("duration")})
            # Without a transcript the handlers ask the rep for 「转文字」.
            await self._ingest(key, voice, incomplete=self.stt is not None and bool(file_key))
        elif msg_type in ("file", "image", "media"):
            file_key = str(content.get("file_key") or content.get("image_key") or "")
            await self._ingest(key, _replace(base, kind="file", file_ref=file_key, file_name=str(content.get("file_name", ""))))
        else:
            await self._ingest(key, _replace(base, kind="file", text=message_text(msg_type, content)))
        return web.json_response({})

    async def _ingest(self, key: str, event: InboundEvent, *, incomplete: bool = False) -> int | None:
        assert self.gateway is not None
        return await self.gateway.ingest(key, event, incomplete=incomplete)

    async def complete(self, event: InboundEvent) -> InboundEvent:
        """Finish an event stored incomplete: a forward's messages, a voice note's transcript.

        Runs from the stored row (after the ack, after a restart, possibly twice when a lease
        ran out): it only reads from Feishu. Network failures, 5xx, rate limits and expired
        tokens are :class:`CompletionError` to retry; anything else (recalled or deleted
        message, no access) is permanent and the event is handled as it was stored.
        """
        message_id = str(event.extra.get("message_id") or "")
        msg_type = event.extra.get("msg_type")
        if msg_type == "merge_forward" and message_id:
            return await self._expand_forward(event, message_id)
        if msg_type == "audio" and message_id and event.file_ref:
            return await self._transcribe(event, message_id, event.file_ref)
        raise CompletionError(f"nothing to complete for a {msg_type!r} message", permanent=True)

    async def _expand_forward(self, base: InboundEvent, message_id: str) -> InboundEvent:
        try:
            data = await self.client.call("GET", f"/open-apis/im/v1/messages/{message_id}")
        except FeishuApiError as exc:
            raise _completion_error(exc, "merge_forward fetch") from exc
        items = data.get("items")
        if not isinstance(items, list):
            raise CompletionError("merge_forward fetch: no items in the answer", permanent=True)
        names = await self._member_names()
        lines = flatten_forward(items, message_id, names, self.config.merge_forward_max_depth, self.config.merge_forward_max_items)
        extra = {k: v for k, v in base.extra.items() if k != "expand_error"}
        return _replace(base, kind="forward", chat_record=tuple(lines), text="", extra=extra)

    async def _member_names(self) -> dict[str, str]:
        rows = await self.db.run(lambda s: list(s.execute(select(col(Member.feishu_open_id), col(Member.name)).where(col(Member.feishu_open_id).is_not(None))).all()))
        return {str(oid): str(name) for oid, name in rows}

    async def _transcribe(self, voice: InboundEvent, message_id: str, file_key: str) -> InboundEvent:
        if self.stt is None:
            raise CompletionError("no speech-to-text configured", permanent=True)
        try:
            audio = await self.client.download(f"/open-apis/im/v1/messages/{message_id}/resources/{file_key}?type=file")
        except FeishuApiError as exc:
            raise _completion_error(exc, "voice note download") from exc
        try:
            text = await self.stt.transcribe(audio, fmt="opus")
        except Exception as exc:  # noqa: BLE001 - a pluggable service: its failures are retried, then degraded
            raise CompletionError(f"speech-to-text failed: {type(exc).__name__}") from exc
        return _replace(voice, text=text.strip())

    async def _on_card_action(self, event: dict[str, Any], event_id: str, gateway: Gateway) -> web.Response:
        operator = event.get("operator")
        action = event.get("action")
        if not isinstance(operator, dict) or not isinstance(action, dict) or not event_id:
            raise _Malformed("malformed card callback / 卡片回调格式错误")
        value = action.get("value")
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):
                value = None
        if not isinstance(value, dict) or not isinstance(value.get("k"), str) or not isinstance(value.get("c"), str):
            raise _Malformed("unknown button / 无法识别的按钮")
        open_id = operator.get("open_id")
        if not isinstance(open_id, str) or not open_id:
            raise _Malformed("malformed card callback / 卡片回调格式错误")
        card_id, key = value["c"][:64], value["k"][:256]
        now = self.clock.now()
        context = event.get("context") if isinstance(event.get("context"), dict) else {}
        message_id = str(context.get("open_message_id") or "")  # type: ignore[union-attr]
        if message_id:
            self._message_ids[card_id] = message_id
        token = event.get("token")
        if isinstance(token, str) and token:
            self._callback_tokens[card_id] = _CallbackToken(token, now + CALLBACK_TOKEN_TTL)
        inbound = InboundEvent(
            platform=NAME, platform_user=open_id, kind="card_action", received_at=now,
            conversation=str(context.get("open_chat_id") or ""), card_id=card_id, action=key,  # type: ignore[union-attr]
            extra={"message_id": message_id},
        )
        inbox_id = await gateway.ingest(f"click:{event_id}", inbound)
        if inbox_id is None:
            return web.json_response({"toast": {"type": "info", "content": "已收到"}})
        if not await gateway.wait_handled(inbox_id, gateway.inline_answer_seconds):
            return web.json_response({"toast": {"type": "info", "content": "已收到，正在处理…"}})
        return web.json_response(await self._inline_answer(inbox_id, card_id))

    async def _inline_answer(self, inbox_id: int, card_id: str) -> dict[str, Any]:
        """The toast and updated card for a click handled while Feishu waits."""
        prefix = f"in:{NAME}:{inbox_id}:"

        def load(session: Session) -> list[OutboxMessage]:
            return list(session.execute(select(OutboxMessage).where(col(OutboxMessage.dedupe_key).startswith(prefix)).order_by(col(OutboxMessage.id))).scalars())

        rows = await self.db.run(load)
        answer: dict[str, Any] = {"toast": {"type": "success", "content": "已处理"}}
        for row in rows:
            payload = json.loads(row.payload)
            if row.kind == "card_update" and row.card_id == card_id and payload.get("card"):
                from cards.model import card_from_dict

                card = card_from_dict(payload["card"])
                answer["card"] = {"type": "raw", "data": render_feishu_card(card, card_id, schema=self._schema(), image_key=await self.charts.get(card_id))}
                if card.status:
                    answer["toast"] = {"type": "success", "content": card.status[:60]}
                self._answered_inline.add(row.dedupe_key)
            elif row.kind == "text" and payload.get("text") and "card" not in answer:
                answer["toast"] = {"type": "info", "content": str(payload["text"])[:60]}
        return answer

    def _schema(self) -> Any:
        return "1.0" if self.config.card_schema == "1.0" else "2.0"

    # ------------------------------------------------------------ outbound
    def sends_for(self, msg: OutboxMessage, card: Card | None, handle: CardHandle | None) -> int:
        """A row already shown in a callback answer sends nothing; any other, one message."""
        return 0 if msg.dedupe_key in self._answered_inline else 1

    async def deliver(self, msg: OutboxMessage, card: Card | None, handle: CardHandle | None) -> Delivered:
        """Send one outbox row (text, new card, or card update) to its open_id."""
        if msg.dedupe_key in self._answered_inline:
            # Already shown in the callback answer: the card the member sees is current.
            self._answered_inline.discard(msg.dedupe_key)
            return Delivered(platform_handle=self._message_ids.get(msg.card_id or ""))
        text = json.loads(msg.payload).get("text", "")
        try:
            if msg.kind == "card_update" and card is not None and msg.card_id:
                updated = await self._update_card(msg.card_id, card, handle)
                if updated is not None:
                    return updated
            if card is not None and msg.kind in ("card", "card_update"):
                return await self._send_card(msg, card)
            result = await self.client.call(
                "POST", "/open-apis/im/v1/messages", params={"receive_id_type": "open_id"},
                json_body={"receive_id": msg.recipient, "msg_type": "text", "content": json.dumps({"text": text}, ensure_ascii=False), "uuid": _uuid_for(msg.dedupe_key)},
            )
            return Delivered(platform_handle=str(result.get("message_id") or "") or None)
        except FeishuApiError as exc:
            raise _delivery_error(exc) from exc

    async def _send_card(self, msg: OutboxMessage, card: Card) -> Delivered:
        assert msg.card_id is not None
        card, image_key = await self.charts.prepare(msg, card)
        body = {
            "receive_id": msg.recipient, "msg_type": "interactive",
            "content": json.dumps(render_feishu_card(card, msg.card_id, schema=self._schema(), image_key=image_key), ensure_ascii=False),
            "uuid": _uuid_for(msg.dedupe_key),
        }
        try:
            result = await self.client.call("POST", "/open-apis/im/v1/messages", params={"receive_id_type": "open_id"}, json_body=body)
        except FeishuApiError as exc:
            if exc.code not in CARD_REFUSED_CODES:
                raise
            # The card was refused (content or version): the member still gets the words.
            log.warning("feishu refused card %s (code %s), sending text", msg.card_id, exc.code)
            body = {"receive_id": msg.recipient, "msg_type": "text", "content": json.dumps({"text": render_text(card)}, ensure_ascii=False), "uuid": _uuid_for(msg.dedupe_key + ":text")}
            result = await self.client.call("POST", "/open-apis/im/v1/messages", params={"receive_id_type": "open_id"}, json_body=body)
        message_id = str(result.get("message_id") or "")
        if message_id:
            self._message_ids[msg.card_id] = message_id
        return Delivered(platform_handle=message_id or None, handle_expires_at=self.clock.now() + CARD_UPDATE_WINDOW)

    async def _update_card(self, card_id: str, card: Card, handle: CardHandle | None) -> Delivered | None:
        """Update the card the member has; None when there is nothing left to update."""
        now = self.clock.now()
        rendered = render_feishu_card(card, card_id, schema=self._schema(), image_key=await self.charts.get(card_id))
        cb = self._callback_tokens.get(card_id)
        if cb is not None and cb.uses_left > 0 and now < cb.expires_at:
            cb.uses_left -= 1
            try:
                await self.client.call("POST", "/open-apis/interactive/v1/card/update", json_body={"token": cb.token, "card": rendered})
                return Delivered(platform_handle=self._message_ids.get(card_id))
            except FeishuApiError as exc:
                if exc.status >= 500 or exc.status == 0 or exc.code in RATE_LIMIT_CODES:
                    raise
                self._callback_tokens.pop(card_id, None)  # spent or refused: fall through to PATCH
        message_id = self._message_ids.get(card_id)
        if handle is not None and handle.platform == NAME and handle.platform_handle:
            if handle.handle_expires_at is not None and handle.handle_expires_at <= now:
                return None
            message_id = handle.platform_handle
        if not message_id:
            return None
        await self.client.call("PATCH", f"/open-apis/im/v1/messages/{message_id}", json_body={"content": json.dumps(rendered, ensure_ascii=False)})
        return Delivered(platform_handle=message_id)


class _Malformed(Exception):
    """A callback that passed authentication but is not something we understand (4xx)."""


def _forward_unreadable(base: InboundEvent) -> InboundEvent:
    """A merged forward whose messages could not be read: what handlers get if completion fails."""
    return _replace(base, kind="forward", extra={**base.extra, "expand_error": "fetch_failed"})


def _completion_error(exc: FeishuApiError, what: str) -> CompletionError:
    # Retryable as when sending; a 4xx (recalled, deleted, no permission) will not change.
    return CompletionError(f"{what} failed: {exc}", permanent=not _transient(exc), retry_after=exc.retry_after)


def _replace(event: InboundEvent, **changes: Any) -> InboundEvent:
    from dataclasses import replace

    return replace(event, **changes)


def _header_token(envelope: dict[str, Any]) -> object:
    header = envelope.get("header")
    if isinstance(header, dict):
        return header.get("token")
    return envelope.get("token")


def _reject(reason: str, status: int = 400) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def _delivery_error(exc: FeishuApiError) -> DeliveryError:
    if exc.status == 429 or exc.code in RATE_LIMIT_CODES:
        return DeliveryError(f"feishu rate limited (code {exc.code})", retry_after=exc.retry_after or 60.0)
    if exc.code in PERMANENT_CODES:
        return DeliveryError(f"feishu refused recipient (code {exc.code}): {exc.msg[:100]}", permanent=True)
    if exc.status == 0 or exc.status >= 500 or exc.code in TOKEN_EXPIRED_CODES:
        return DeliveryError(f"feishu unavailable: {exc}")
    return DeliveryError(f"feishu error: {exc}")


def flatten_forward(items: list[Any], root_id: str, names: dict[str, str], max_depth: int, max_items: int) -> list[ChatLine]:
    """Turn the flat ``items`` of ``GET /im/v1/messages/{id}`` into chat lines, oldest first.

    Feishu returns every descendant of a merge_forward at once, linked by
    ``upper_message_id``; nested records are inlined (indented speaker) up to ``max_depth``
    and at most ``max_items`` lines are kept.
    """
    children: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        if isinstance(item, dict) and item.get("message_id") != root_id:
            parent = str(item.get("upper_message_id") or root_id)
            children.setdefault(parent, []).append(item)
    lines: list[ChatLine] = []

    def speaker(item: dict[str, Any]) -> str:
        sender = item.get("sender") if isinstance(item.get("sender"), dict) else {}
        sid = str(sender.get("id") or "")  # type: ignore[union-attr]
        if sender.get("sender_type") == "app":  # type: ignore[union-attr]
            return "机器人"
        return names.get(sid) or (f"用户{sid[-4:]}" if sid else "未知")

    def walk(parent: str, depth: int) -> None:
        for item in sorted(children.get(parent, []), key=_sort_time):
            if len(lines) >= max_items:
                return
            msg_type = str(item.get("msg_type") or "")
            try:
                content = json.loads((item.get("body") or {}).get("content") or "{}")
            except (ValueError, TypeError, AttributeError, RecursionError):
                content = {}
            if not isinstance(content, dict):
                content = {}
            if msg_type == "merge_forward" and depth < max_depth:
                lines.append(ChatLine(speaker(item), "[聊天记录]", _local_time(item.get("create_time"))))
                walk(str(item.get("message_id")), depth + 1)
                continue
            text = message_text(msg_type, content, item.get("mentions"))
            if text:
                lines.append(ChatLine(speaker(item), text, _local_time(item.get("create_time"))))

    walk(root_id, 1)
    return lines


def _sort_time(item: dict[str, Any]) -> int:
    """A child's ``create_time`` (ms) as a sort key; anything but plain ASCII digits sorts first.

    ``str.isdigit`` accepts '²' and ``int`` refuses more than 4300 digits: both would abort
    the whole forward, so only up to 19 ASCII digits count.
    """
    raw = str(item.get("create_time") or "")
    return int(raw) if _MS_DIGITS.fullmatch(raw) else 0


def create_adapter(settings: Settings, db: Database, ctx: HandlerContext) -> FeishuAdapter:
    """The Feishu adapter for ``settings`` (validates ``[platforms.feishu]``)."""
    return FeishuAdapter(FeishuConfig.from_settings(settings), db, ctx)


async def callback(request: web.Request) -> web.Response:
    """``POST /callback/feishu``: events and card callbacks (one URL for both)."""
    gateway = request.app[GATEWAY]
    adapter = gateway.adapters.get(NAME)
    if not isinstance(adapter, FeishuAdapter):
        return _reject("feishu is not enabled / 未启用飞书", 404)
    try:
        return await adapter.handle_callback(request, gateway)
    except CallbackRejected as exc:
        return _reject(exc.reason)


def add_routes(app: web.Application) -> None:
    """Mount ``POST /callback/feishu``."""
    app.router.add_post("/callback/feishu", callback)


__all__ = [
    "FeishuAdapter", "FeishuApiError", "FeishuClient", "FeishuConfig", "SpeechToText",
    "add_routes", "create_adapter", "flatten_forward", "message_text", "post_to_text", "resolve_mentions",
]
