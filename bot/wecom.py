"""WeCom (企业微信自建应用): callbacks in, messages and template cards out.

Configuration (``leadbot.toml``)::

    [platforms.wecom]
    enabled = true
    corp_id = "ww..."                 # 企业ID (also the receive id checked in every callback)
    agent_id = 1000002                # 应用 AgentId
    secret = "..."                    # 应用 Secret      → better: LEADBOT_PLATFORMS__WECOM__SECRET
    token = "..."                     # 回调 Token       → LEADBOT_PLATFORMS__WECOM__TOKEN
    encoding_aes_key = "..."          # 回调 EncodingAESKey (43 chars) → LEADBOT_PLATFORMS__WECOM__ENCODING_AES_KEY
    api_base = "https://qyapi.weixin.qq.com"   # tests point this at a fake server
    # optional: freshness_s = 300, timeout_s = 10, per_member_per_minute = 30, per_member_per_hour = 1000

Every key can come from the environment as ``LEADBOT_PLATFORMS__WECOM__<KEY>`` (applied by
:mod:`bot.config`); keep the secret, token and AES key there, not in the file.
The callback URL to register in the WeCom admin console is ``https://<host>/callback/wecom``.

Inbound (``GET|POST /callback/wecom``), the fast path:
freshness (±``freshness_s``) → signature (constant time) → decrypt (strict padding, length and
corp id) → replay cache (a WeCom retry is acknowledged and dropped) → parse with defusedxml →
normalise into an :class:`~handlers.events.InboundEvent` → store the click's ``ResponseCode``
on the card handle → :meth:`bot.gateway.Gateway.ingest` → empty 200. Handling happens later,
from the inbox. Anything rejected gets a 4xx with a short reason and one log line without
secrets; nothing is stored.

Outbound (:meth:`WeComAdapter.deliver`, called by the gateway's delivery worker):
one :class:`~bot.tokens.TokenManager` per app (single-flight, early refresh, one retry on
40014/42001), a per-member limit (WeCom silently drops past 30/min and 1000/h), transient
failures (5xx, timeouts, 45009, -1) raised as retryable :class:`~bot.gateway.DeliveryError`
so the gateway backs off with jitter and dead-letters after N tries, and
``enable_duplicate_check`` on every retry. Cards go out as ``template_card``
(``button_interaction``), updates use ``update_template_card`` with the stored
``response_code``; when it is missing, used or older than 72 h a fresh card is sent.

Voice: WeCom apps get no speech recognition, so a :class:`SpeechToText` backend can be
plugged in (``create_adapter(..., speech=...)``); the default does not transcribe and the
rep is told, politely, to use WeChat's 「转文字」 and send the text.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from xml.etree.ElementTree import Element

import aiohttp
from aiohttp import web
from sqlalchemy import select
from sqlmodel import col

from bot.config import ConfigError, Settings
from bot.crypto import (
    REASON_BAD_SIGNATURE,
    CallbackRejected,
    MessageCrypto,
    ReplayCache,
    check_fresh,
    parse_xml,
)
from bot.gateway import Delivered, DeliveryError, Gateway
from bot.http import ChartUploads
from bot.keys import GATEWAY
from bot.ratelimit import RateRule
from bot.tokens import TokenManager
from cards import wecom as render
from cards.charts import IMAGE_LIMITS
from cards.model import Card, card_to_dict
from handlers.actions import ActionKey, BadAction
from handlers.context import Clock, HandlerContext
from handlers.events import ChatLine, InboundEvent
from store import cards as card_store
from store.db import Database
from store.models import CardHandle, Member, OutboxMessage

log = logging.getLogger("leadbot.wecom")

PLATFORM = "wecom"
DEFAULT_API_BASE = "https://qyapi.weixin.qq.com"
RESPONSE_CODE_TTL = timedelta(hours=72)
MEDIA_VALID_FOR = timedelta(days=3)  # temporary media (media/upload)
TOKEN_EXPIRED = frozenset({40014, 42001})
# System busy (-1) and API frequency limit (45009) are worth retrying; other codes are not.
TRANSIENT = frozenset({-1, 45009, 45033})
# A template_card whose task_id WeCom has already accepted (task ids are unique per app).
TASK_ID_EXISTS = 40058
MAX_BODY = 64 * 1024
# Marks a failed attempt that may still have reached WeCom (timeout, 5xx, dropped connection);
# only a retry of such an attempt asks WeCom to drop duplicates, because the check compares
# content and would also swallow a legitimate second message with the same text.
MAYBE_SENT = "[maybe-sent]"
VOICE_HINT = "企业微信应用收不到语音转写。请在微信/企业微信里长按语音选「转文字」，再把文字发给我，谢谢！"


class WeComError(Exception):
    """A WeCom API call that failed; ``transient`` failures are worth retrying."""

    def __init__(self, errcode: int, errmsg: str, *, transient: bool) -> None:
        super().__init__(f"wecom errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.transient = transient


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class WeComConfig:
    """``[platforms.wecom]``, validated."""

    corp_id: str
    agent_id: int
    secret: str
    token: str
    encoding_aes_key: str
    api_base: str = DEFAULT_API_BASE
    freshness_s: int = 300
    timeout_s: float = 10.0
    per_member_per_minute: int = 30
    per_member_per_hour: int = 1000

    def __repr__(self) -> str:  # never print secrets
        return f"WeComConfig(corp_id={self.corp_id!r}, agent_id={self.agent_id}, api_base={self.api_base!r})"


_REQUIRED = {
    "corp_id": ("企业ID（我的企业 → 企业信息）", "the corp id (My Company → Company Info)"),
    "agent_id": ("应用 AgentId（应用管理 → 自建应用）", "the app's AgentId (App Management → your app)"),
    "secret": ("应用 Secret，建议用环境变量 LEADBOT_PLATFORMS__WECOM__SECRET", "the app secret; prefer LEADBOT_PLATFORMS__WECOM__SECRET"),
    "token": ("接收消息的 Token，建议用 LEADBOT_PLATFORMS__WECOM__TOKEN", "the callback Token; prefer LEADBOT_PLATFORMS__WECOM__TOKEN"),
    "encoding_aes_key": ("接收消息的 EncodingAESKey（43 位），建议用 LEADBOT_PLATFORMS__WECOM__ENCODING_AES_KEY", "the callback EncodingAESKey (43 chars); prefer the environment"),
}


def load_config(settings: Settings) -> WeComConfig:
    """Validate ``[platforms.wecom]``; raises :class:`bot.config.ConfigError` naming the key."""
    raw = settings.platforms.get(PLATFORM, {})
    for key, (zh, en) in _REQUIRED.items():
        value = raw.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ConfigError(settings.path, None, f"platforms.wecom.{key}", f"缺失：请填写{zh}", f"missing: set {en}")
    try:
        agent_id = int(raw["agent_id"])
    except (TypeError, ValueError):
        raise ConfigError(settings.path, None, "platforms.wecom.agent_id", "应为整数，例如 1000002", "must be an integer such as 1000002") from None
    cfg = WeComConfig(
        corp_id=str(raw["corp_id"]).strip(), agent_id=agent_id, secret=str(raw["secret"]).strip(),
        token=str(raw["token"]).strip(), encoding_aes_key=str(raw["encoding_aes_key"]).strip(),
        api_base=str(raw.get("api_base") or DEFAULT_API_BASE).rstrip("/"),
        freshness_s=int(raw.get("freshness_s", 300)), timeout_s=float(raw.get("timeout_s", 10.0)),
        per_member_per_minute=int(raw.get("per_member_per_minute", 30)),
        per_member_per_hour=int(raw.get("per_member_per_hour", 1000)),
    )
    try:
        MessageCrypto(cfg.token, cfg.encoding_aes_key, cfg.corp_id)
    except ValueError:
        raise ConfigError(settings.path, None, "platforms.wecom.encoding_aes_key", "应为企业微信后台生成的 43 位字母数字", "must be the 43-character key from the WeCom console") from None
    return cfg


# --------------------------------------------------------------------------- speech


class SpeechToText(Protocol):
    """A pluggable ASR backend for WeCom voice messages (AMR, ≤ 60 s)."""

    name: str
    budget_s: float  # the most it may take: it runs before the ack (WeCom waits 5 s)

    async def transcribe(self, audio: bytes, fmt: str) -> str | None:
        """The transcript, or None when nothing was recognised."""
        ...


class NoSpeechToText:
    """The default: no ASR. The rep is asked to use 「转文字」 and send the text."""

    name = "none"
    budget_s = 0.0

    async def transcribe(self, audio: bytes, fmt: str) -> str | None:
        return None


# --------------------------------------------------------------------------- parsing

# A header line of text copied from a multi-selected WeCom chat: "Name [date] time".
_RECORD_HEADER = re.compile(
    r"^(?P<name>[^\s:：,，。!！?？\d][^:：,，。!！?？]{0,23}?)\s+"
    r"(?P<at>(?:(?:\d{4}[-/年])?\d{1,2}[-/月]\d{1,2}日?\s+)?(?:昨天\s*|前天\s*)?\d{1,2}:\d{2}(?::\d{2})?)\s*$"
)


def parse_chat_record(text: str) -> tuple[ChatLine, ...]:
    """Lines of a pasted WeCom chat record, or ``()`` when ``text`` is not one.

    A record starts with a ``Name time`` header line, and every header is followed by
    at least one content line.
    """
    lines = [ln.rstrip() for ln in text.strip().split("\n")]
    if len(lines) < 2 or not _RECORD_HEADER.match(lines[0].strip()):
        return ()
    out: list[ChatLine] = []
    speaker, at = "", ""
    body: list[str] = []
    for line in lines:
        m = _RECORD_HEADER.match(line.strip())
        if m:
            if speaker:
                if not body:
                    return ()
                out.append(ChatLine(speaker, "\n".join(body), at))
            speaker, at, body = m.group("name").strip(), m.group("at"), []
        elif line.strip():
            body.append(line.strip())
    if not body:
        return ()
    out.append(ChatLine(speaker, "\n".join(body), at))
    return tuple(out)


def _fields(root: Element) -> dict[str, str]:
    return {child.tag: (child.text or "").strip() for child in root}


def _short_key(*parts: str) -> str:
    key = ":".join(parts)
    if len(key) <= 200:
        return key
    # Inbox keys are ≤ 255; a long EventKey is hashed rather than cut (cuts could collide).
    return f"{parts[0]}:{hashlib.sha256(key.encode()).hexdigest()}"


@dataclass(frozen=True)
class Parsed:
    """A decrypted callback, normalised: its inbox key and event (None: ack and drop)."""

    key: str | None
    event: InboundEvent | None
    response_code: str = ""
    task_id: str = ""
    request_key: tuple[str, str, str] | None = None


def task_id_for(card_id: str, generation: int = 0) -> str:
    """WeCom task ids are unique per app: a fresh card for the same ``card_id`` gets a suffix."""
    return card_id if generation == 0 else f"{card_id}@{generation}"


def _delivered_to(d: Delivered) -> dict[str, str]:
    """A sent card part, as the chart record keeps it."""
    out = {"handle": d.platform_handle or "", "code": d.response_code or ""}
    if d.handle_expires_at is not None:
        out["expires"] = d.handle_expires_at.isoformat()
    return out


def _delivered_from(info: dict[str, Any]) -> Delivered:
    """Inverse of :func:`_delivered_to`."""
    expires = info.get("expires")
    return Delivered(platform_handle=str(info.get("handle") or "") or None, response_code=str(info.get("code") or "") or None,
                     handle_expires_at=datetime.fromisoformat(expires) if isinstance(expires, str) else None)


def card_id_from_task(task_id: str) -> str:
    """Inverse of :func:`task_id_for`."""
    return task_id.split("@", 1)[0]


def normalise(xml_text: str, now: datetime, agent_id: int) -> Parsed:
    """Turn the decrypted inner XML into an inbox key and an :class:`InboundEvent`."""
    root = parse_xml(xml_text)
    f = _fields(root)
    user = f.get("FromUserName", "")
    msg_type = f.get("MsgType", "")
    if not user or not msg_type:
        raise CallbackRejected("malformed body / 请求体格式错误")
    if f.get("AgentID") and f["AgentID"] != str(agent_id):
        raise CallbackRejected("wrong agent / 应用ID不匹配")
    base = {"platform": PLATFORM, "platform_user": user, "received_at": now, "conversation": user}
    if msg_type == "event":
        event_name = f.get("Event", "")
        if event_name != "template_card_event":
            return Parsed(None, None)  # enter_agent, subscribe, …: nothing for the CRM
        task_id = f.get("TaskId", "")
        event_key = f.get("EventKey", "")
        if not task_id or not event_key:
            raise CallbackRejected("malformed body / 请求体格式错误")
        key = _short_key("evt", user, f.get("CreateTime", ""), event_name, event_key)
        event = InboundEvent(kind="card_action", card_id=card_id_from_task(task_id), action=event_key,
                             extra={"task_id": task_id, "card_type": f.get("CardType", "")}, **base)  # type: ignore[arg-type]
        return Parsed(key, event, response_code=f.get("ResponseCode", ""), task_id=task_id)
    msg_id = f.get("MsgId", "")
    if not msg_id:
        raise CallbackRejected("malformed body / 请求体格式错误")
    key = _short_key("msg", user, msg_id)
    if msg_type == "text":
        content = f.get("Content", "")
        record = parse_chat_record(content)
        if record:
            return Parsed(key, InboundEvent(kind="forward", text=content, chat_record=record, **base))  # type: ignore[arg-type]
        return Parsed(key, InboundEvent(kind="text", text=content, **base))  # type: ignore[arg-type]
    if msg_type == "voice":
        return Parsed(key, InboundEvent(kind="voice", file_ref=f.get("MediaId", ""),
                                        extra={"format": f.get("Format", "amr"), "hint": VOICE_HINT}, **base))  # type: ignore[arg-type]
    # image, video, location, link, file: kept (the rep sent something) but not understood.
    return Parsed(key, InboundEvent(kind="file", file_ref=f.get("MediaId", ""), file_name=f"{msg_type}",
                                    extra={"msg_type": msg_type, "pic_url": f.get("PicUrl", "")}, **base))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- API client


class WeComApi:
    """The few WeCom server APIs we use, on aiohttp, with one token manager per app."""

    def __init__(self, cfg: WeComConfig, clock: Clock, session: aiohttp.ClientSession | None = None) -> None:
        self.cfg = cfg
        self.clock = clock
        self._session = session
        self._own_session = session is None
        self.tokens = TokenManager(self._fetch_token, clock)

    async def start(self) -> None:
        """Open the HTTP session (idempotent)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s))
            self._own_session = True

    async def close(self) -> None:
        """Close the HTTP session if we opened it."""
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("WeComApi.start() was not called")
        return self._session

    async def _json(self, method: str, path: str, *, params: dict[str, str], body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.cfg.api_base}{path}"
        try:
            async with self.session.request(method, url, params=params, json=body,
                                            timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s)) as resp:
                if resp.status >= 500:
                    raise WeComError(-resp.status, f"HTTP {resp.status}", transient=True)
                if resp.status != 200:
                    raise WeComError(-resp.status, f"HTTP {resp.status}", transient=resp.status == 429)
                data = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise WeComError(-2, f"{type(exc).__name__}", transient=True) from None
        if not isinstance(data, dict):
            raise WeComError(-3, "non-object JSON", transient=True)
        return data

    async def _fetch_token(self) -> tuple[str, float]:
        data = await self._json("GET", "/cgi-bin/gettoken", params={"corpid": self.cfg.corp_id, "corpsecret": self.cfg.secret})
        code = int(data.get("errcode", 0) or 0)
        if code != 0 or not data.get("access_token"):
            # A wrong secret (40001) needs an admin, but retrying keeps messages until it is fixed.
            raise WeComError(code, str(data.get("errmsg", "")), transient=True)
        return str(data["access_token"]), float(data.get("expires_in", 7200))

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``path`` with a token; retried once with a fresh token on 40014/42001."""
        async def attempt(token: str) -> dict[str, Any]:
            return await self._json("POST", path, params={"access_token": token}, body=body)

        data = await self.tokens.call(attempt, expired=lambda r: int(r.get("errcode", 0) or 0) in TOKEN_EXPIRED)
        code = int(data.get("errcode", 0) or 0)
        if code != 0:
            raise WeComError(code, str(data.get("errmsg", "")), transient=code in TRANSIENT or code in TOKEN_EXPIRED)
        return data

    async def send(self, body: dict[str, Any]) -> dict[str, Any]:
        """``message/send``."""
        return await self.call("/cgi-bin/message/send", body)

    async def update_template_card(self, body: dict[str, Any]) -> dict[str, Any]:
        """``message/update_template_card``."""
        return await self.call("/cgi-bin/message/update_template_card", body)

    async def upload_image(self, png: bytes) -> str:
        """``media/upload?type=image`` (multipart field ``media``): the temporary ``media_id`` (3 days)."""
        async def attempt(token: str) -> dict[str, Any]:
            # A FormData is consumed by one request, so each attempt builds its own.
            form = aiohttp.FormData()
            form.add_field("media", png, filename="chart.png", content_type="image/png")
            url = f"{self.cfg.api_base}/cgi-bin/media/upload"
            try:
                async with self.session.post(url, params={"access_token": token, "type": "image"}, data=form,
                                             timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s)) as resp:
                    if resp.status != 200:
                        raise WeComError(-resp.status, f"HTTP {resp.status}", transient=resp.status >= 500 or resp.status == 429)
                    data = await resp.json(content_type=None)
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                raise WeComError(-2, type(exc).__name__, transient=True) from None
            return data if isinstance(data, dict) else {"errcode": -3, "errmsg": "non-object JSON"}

        data = await self.tokens.call(attempt, expired=lambda r: int(r.get("errcode", 0) or 0) in TOKEN_EXPIRED)
        code = int(data.get("errcode", 0) or 0)
        if code != 0 or not data.get("media_id"):
            raise WeComError(code or -3, str(data.get("errmsg", "no media_id")), transient=code in TRANSIENT or code in TOKEN_EXPIRED or code in (0, -3))
        return str(data["media_id"])

    async def get_media(self, media_id: str) -> bytes:
        """``media/get``: the file behind ``media_id`` (voice AMR, images; valid 3 days)."""
        token = await self.tokens.get()
        for retry in (False, True):
            url = f"{self.cfg.api_base}/cgi-bin/media/get"
            try:
                async with self.session.get(url, params={"access_token": token, "media_id": media_id}) as resp:
                    if resp.status >= 500:
                        raise WeComError(-resp.status, f"HTTP {resp.status}", transient=True)
                    ctype = resp.headers.get("Content-Type", "")
                    raw = await resp.read()
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise WeComError(-2, type(exc).__name__, transient=True) from None
            if "json" not in ctype and "text/plain" not in ctype:
                return raw
            data = json.loads(raw or b"{}")
            code = int(data.get("errcode", 0) or 0)
            if code in TOKEN_EXPIRED and not retry:
                self.tokens.invalidate(token)
                token = await self.tokens.get()
                continue
            raise WeComError(code, str(data.get("errmsg", "")), transient=code in TRANSIENT)
        raise WeComError(42001, "token expired twice", transient=True)  # pragma: no cover


# --------------------------------------------------------------------------- adapter


class WeComAdapter:
    """The WeCom platform: inbound callback handling and outbox delivery."""

    name = PLATFORM

    def __init__(self, cfg: WeComConfig, db: Database, ctx: HandlerContext, *, speech: SpeechToText | None = None,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.cfg = cfg
        self.db = db
        self.ctx = ctx
        self.clock = ctx.clock
        self.crypto = MessageCrypto(cfg.token, cfg.encoding_aes_key, cfg.corp_id)
        self.api = WeComApi(cfg, ctx.clock, session)
        self.replays = ReplayCache(ttl_s=2 * cfg.freshness_s, max_items=200_000)
        # Past these WeCom drops messages silently; the gateway counts every send against
        # them in the database, so they hold for all processes together (sends_for below).
        self.rate_limits: tuple[RateRule, ...] = (
            RateRule(cfg.per_member_per_minute, 60, slot_s=1),
            RateRule(cfg.per_member_per_hour, 3600, slot_s=60),
        )
        self.speech: SpeechToText = speech or NoSpeechToText()
        self.rejected = 0  # callbacks refused (metrics, tests)
        # A chart card is two messages (template_card, then image). When the image send fails
        # after the card went out, the retry (in this process or after a restart) must not
        # send the card again: WeCom has no idempotency key, so the chart record in the
        # database says what already went out. Temporary media live 3 days.
        self.charts = ChartUploads(PLATFORM, IMAGE_LIMITS, self.api.upload_image, (WeComError,),
                                   lambda exc: exc.transient, db=db, clock=ctx.clock, valid_for=MEDIA_VALID_FOR)

    def __repr__(self) -> str:
        return f"WeComAdapter({self.cfg!r})"

    async def start(self) -> None:
        """Open the API session."""
        await self.api.start()

    async def close(self) -> None:
        """Close the API session."""
        await self.api.close()

    def recipient_for(self, member: Member) -> str | None:
        """The member's WeCom userid."""
        return member.wecom_userid or None

    # ------------------------------------------------------------ inbound
    def _now_s(self) -> float:
        return self.clock.now().timestamp()

    def verify_url(self, query: Any) -> str:
        """GET URL verification: the decrypted ``echostr`` (raises CallbackRejected)."""
        timestamp = query.get("timestamp", "")
        check_fresh(timestamp, self._now_s(), self.cfg.freshness_s)
        return self.crypto.verify_url(query.get("msg_signature", ""), timestamp, query.get("nonce", ""), query.get("echostr", ""))

    def open_callback(self, query: Any, body: bytes) -> Parsed:
        """Authenticate, decrypt and normalise one POST callback (pure CPU, no I/O)."""
        timestamp, nonce, signature = query.get("timestamp", ""), query.get("nonce", ""), query.get("msg_signature", "")
        check_fresh(timestamp, self._now_s(), self.cfg.freshness_s)
        xml_text = self.crypto.decrypt_wecom_body(body, signature, timestamp, nonce)
        request_key = (timestamp, nonce, signature)
        if self.replays.seen_before(request_key, self._now_s()):
            # WeCom's own retry of a request we already took: acknowledge, store nothing.
            return Parsed(None, None)
        try:
            parsed = normalise(xml_text, self.clock.now(), self.cfg.agent_id)
        except CallbackRejected:
            self.replays.forget(request_key)
            raise
        parsed = Parsed(parsed.key, parsed.event, parsed.response_code, parsed.task_id, request_key)
        if parsed.event is not None and parsed.event.kind == "card_action":
            action = parsed.event.action
            if action.startswith("closed:"):
                return Parsed(None, None)  # the grey button of a closed card
            try:
                ActionKey.unpack(action, self.ctx.secret)
            except BadAction as exc:
                self.replays.forget(request_key)
                raise CallbackRejected(str(exc)) from None
        return parsed

    async def _transcribe(self, event: InboundEvent) -> InboundEvent:
        if isinstance(self.speech, NoSpeechToText) or not event.file_ref:
            return event
        try:
            async def run() -> str | None:
                audio = await self.api.get_media(event.file_ref)
                return await self.speech.transcribe(audio, str(event.extra.get("format", "amr")))

            text = await asyncio.wait_for(run(), self.speech.budget_s)
        except Exception as exc:  # noqa: BLE001 - no transcript: the rep gets the 转文字 hint
            log.warning("wecom voice transcription failed (%s)", type(exc).__name__)
            return event
        if not text:
            return event
        return InboundEvent(**{**event.__dict__, "text": text, "extra": {**event.extra, "asr": self.speech.name}})

    async def accept(self, gateway: Gateway, parsed: Parsed) -> int | None:
        """Store what the callback carries, durably, before the ack; the inbox id or None."""
        if parsed.key is None or parsed.event is None:
            return None
        event = parsed.event
        if event.kind == "voice":
            event = await self._transcribe(event)
        if parsed.response_code:
            now = self.clock.now()
            code, card_id, task_id, user = parsed.response_code, event.card_id, parsed.task_id, event.platform_user

            def remember(session: Any) -> None:
                member = session.execute(select(col(Member.id)).where(col(Member.wecom_userid) == user)).scalar_one_or_none()
                card_store.record_response_code(session, card_id, code, now + RESPONSE_CODE_TTL, now,
                                                platform=PLATFORM, member_id=member or "", platform_handle=task_id)

            await self.db.run(remember)
        return await gateway.ingest(parsed.key, event)

    # ------------------------------------------------------------ outbound
    def _base(self, recipient: str, msg: OutboxMessage) -> dict[str, Any]:
        body: dict[str, Any] = {"touser": recipient, "agentid": self.cfg.agent_id}
        if msg.attempts > 0 and MAYBE_SENT in (msg.last_error or ""):
            # A retry after a timeout may follow a send that did arrive: let WeCom drop the copy.
            body["enable_duplicate_check"] = 1
            body["duplicate_check_interval"] = 1800
        return body

    def sends_for(self, msg: OutboxMessage, card: Card | None, handle: CardHandle | None) -> int:
        """Messages a delivery may send, counted against the per-member limits.

        A chart card is two (the card, then the image); a card update may turn into a fresh
        card. Counting a resumed chart delivery (image only) as two only errs on the safe side.
        """
        if msg.kind == "card" and card is not None and card.image_png:
            return 2
        return 1

    async def _send(self, msg: OutboxMessage, body: dict[str, Any]) -> dict[str, Any]:
        return await self.api.send(body)

    async def _send_card(self, msg: OutboxMessage, card: Card, card_id: str, generation: int) -> Delivered:
        now = self.clock.now()
        task_id = task_id_for(card_id, generation)
        body = self._base(msg.recipient, msg)
        body.update(msgtype="template_card", template_card=render.render_template_card(card, task_id))
        try:
            data = await self._send(msg, body)
        except WeComError as exc:
            if exc.transient:
                raise
            if exc.errcode == TASK_ID_EXISTS:
                # WeCom accepted this card before (the task id is this card's own, unique)
                # and we crashed before recording it: it was sent; a copy would be a duplicate.
                log.info("wecom already has card %s (task_id exist); not sending it again", card_id)
                return Delivered(platform_handle=task_id)
            # Cards refused (no callback URL configured, bad field…): the text still informs.
            log.warning("wecom template_card refused (%s), sending markdown instead", exc.errcode)
            md = self._base(msg.recipient, msg)
            md.update(msgtype="markdown", markdown={"content": render.render_markdown(card)})
            await self.api.send(md)
            return Delivered(platform_handle=None)
        code = str(data.get("response_code") or "")
        member_id = msg.member_id or ""
        payload = json.dumps(card_to_dict(card), ensure_ascii=False)

        def remember(session: Any) -> None:
            card_store.record_response_code(session, card_id, code, now + RESPONSE_CODE_TTL, now, platform=PLATFORM,
                                            member_id=member_id, platform_handle=task_id)
            handle = session.get(CardHandle, card_id)
            if handle is not None and handle.card_json == "{}":
                handle.card_json = payload
                session.add(handle)

        if code:
            await self.db.run(remember)
        return Delivered(platform_handle=task_id, response_code=code or None,
                         handle_expires_at=(now + RESPONSE_CODE_TTL) if code else None)

    async def _update_card(self, msg: OutboxMessage, card: Card, handle: CardHandle | None) -> Delivered:
        now = self.clock.now()
        card_id = msg.card_id or ""
        fresh = handle is None or not handle.response_code or handle.handle_expires_at is None or handle.handle_expires_at <= now
        if handle is not None and not fresh:
            code = handle.response_code or ""
            body: dict[str, Any] = {"userids": [msg.recipient], "agentid": self.cfg.agent_id, "response_code": code}
            if card.actions:
                body["template_card"] = render.render_template_card(card, handle.platform_handle or task_id_for(card_id))
            else:
                body["button"] = {"replace_name": render.replace_name(card)}
            try:
                await self.api.update_template_card(body)
            except WeComError as exc:
                if exc.transient:
                    raise
                log.info("wecom response_code unusable (%s); sending a fresh card", exc.errcode)
            else:
                await self.db.run(lambda s: card_store.consume_response_code(s, card_id, code, now))
                return Delivered()
            await self.db.run(lambda s: card_store.consume_response_code(s, card_id, code, now))
        # No usable code (expired after 72 h, used, never had one): a fresh message.
        if card.actions:
            generation = int(now.timestamp())
            return await self._send_card(msg, card, card_id, generation)
        body = self._base(msg.recipient, msg)
        body.update(msgtype="markdown", markdown={"content": render.render_markdown(card)})
        await self._send(msg, body)
        return Delivered()

    async def _send_chart_card(self, msg: OutboxMessage, card: Card, card_id: str) -> Delivered:
        """A card, then its chart as an ``image`` message right after it."""
        if not card.image_png:
            return await self._send_card(msg, card, card_id, 0)
        card, media_id = await self.charts.prepare(msg, card)
        card = card.without_image()  # the chart travels as its own image message
        if media_id is None:  # left out (too large, refused): the card says so
            return await self._send_card(msg, card, card_id, 0)
        sent = (await self.charts.sent_parts(msg)).get("card")
        if sent is not None:
            delivered = _delivered_from(sent)
        else:
            delivered = await self._send_card(msg, card, card_id, 0)
            # Durable before the image goes: a retry after a crash sends only the image.
            await self.charts.mark_part_sent(msg, "card", _delivered_to(delivered))
        body = self._base(msg.recipient, msg)
        body.update(msgtype="image", image={"media_id": media_id})
        await self._send(msg, body)
        return delivered

    async def deliver(self, msg: OutboxMessage, card: Card | None, handle: CardHandle | None) -> Delivered:
        """Send one outbox row; raises :class:`DeliveryError` (retryable or permanent)."""
        try:
            if msg.kind == "card_update" and card is not None and msg.card_id:
                return await self._update_card(msg, card, handle)
            if msg.kind == "card" and card is not None and msg.card_id:
                return await self._send_chart_card(msg, card, msg.card_id)
            text = json.loads(msg.payload).get("text", "") or (render.render_plain(card) if card else "")
            body = self._base(msg.recipient, msg)
            body.update(msgtype="text", text={"content": render.clip_bytes(text, render.MAX_TEXT_BYTES)})
            await self._send(msg, body)
            return Delivered()
        except WeComError as exc:
            # Codes below -1 are ours: HTTP 5xx (-5xx) and network failures (-2), where
            # WeCom may have delivered the message before the answer got lost.
            tag = f" {MAYBE_SENT}" if exc.errcode < -1 else ""
            raise DeliveryError(f"wecom {exc.errcode} {exc.errmsg}"[:180] + tag, permanent=not exc.transient) from None
        except ValueError as exc:
            raise DeliveryError(f"wecom: cannot render ({exc})", permanent=True) from None


# --------------------------------------------------------------------------- HTTP


def _adapter(request: web.Request) -> tuple[Gateway, WeComAdapter]:
    gateway = request.app[GATEWAY]
    adapter = gateway.adapters.get(PLATFORM)
    if not isinstance(adapter, WeComAdapter):
        raise web.HTTPServiceUnavailable(text="wecom not enabled")
    return gateway, adapter


def _reject(adapter: WeComAdapter, request: web.Request, reason: str, status: int = 400) -> web.Response:
    adapter.rejected += 1
    log.warning("wecom callback rejected: %s (from %s)", reason, request.remote)
    return web.Response(status=status, text=reason)


async def callback_get(request: web.Request) -> web.Response:
    """URL verification: answer with the decrypted echostr, nothing else."""
    _gateway, adapter = _adapter(request)
    try:
        echo = adapter.verify_url(request.query)
    except CallbackRejected as exc:
        return _reject(adapter, request, exc.reason, 403 if exc.reason == REASON_BAD_SIGNATURE else 400)
    return web.Response(text=echo, content_type="text/plain")


async def callback_post(request: web.Request) -> web.Response:
    """A message or event: verified, stored, then acknowledged with an empty 200."""
    gateway, adapter = _adapter(request)
    if request.content_length is not None and request.content_length > MAX_BODY:
        return _reject(adapter, request, "body too large / 请求体过大", 413)
    try:
        body = await request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return _reject(adapter, request, "body too large / 请求体过大", 413)
        parsed = adapter.open_callback(request.query, body)
    except CallbackRejected as exc:
        return _reject(adapter, request, exc.reason, 403 if exc.reason == REASON_BAD_SIGNATURE else 400)
    except Exception as exc:  # noqa: BLE001 - never a 500 for what a client sent
        return _reject(adapter, request, f"malformed request / 请求格式错误 ({type(exc).__name__})")
    try:
        await adapter.accept(gateway, parsed)
    except Exception as exc:  # noqa: BLE001 - not stored: say so, and WeCom retries
        if parsed.request_key is not None:
            adapter.replays.forget(parsed.request_key)
        log.error("wecom callback not stored (%s); WeCom will retry", type(exc).__name__)
        return web.Response(status=503, text="busy / 暂时无法处理")
    return web.Response(text="")


def add_routes(app: web.Application) -> None:
    """Mount ``GET|POST /callback/wecom``."""
    app.router.add_get("/callback/wecom", callback_get)
    app.router.add_post("/callback/wecom", callback_post)


def create_adapter(settings: Settings, db: Database, ctx: HandlerContext, *, speech: SpeechToText | None = None) -> WeComAdapter:
    """The WeCom adapter for ``settings`` (validates ``[platforms.wecom]``)."""
    return WeComAdapter(load_config(settings), db, ctx, speech=speech)
