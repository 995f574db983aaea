"""DingTalk (钉钉) platform: Stream mode (default) or HTTP callbacks in, Open API out.

Inbound (/work/shared/platforms.md §2.1):

* **Stream mode** (``mode = "stream"``): :class:`StreamConnection` opens a ticket with
  ``POST /v1.0/gateway/connections/open`` and holds the WebSocket, using dingtalk-stream's
  frame models (``CallbackMessage``, ``SystemMessage``, ``AckMessage``) for the wire format
  but our own aiohttp loop, because the SDK's ``open_connection`` and token calls are
  blocking ``requests`` inside coroutines and it has no liveness watchdog. Robot messages
  (``/v1.0/im/bot/messages/get``) and card callbacks (``/v1.0/card/instances/callback``)
  are stored in the inbox and acknowledged at once (an unstored frame is *not* acked, so
  DingTalk redelivers it). A watchdog reconnects when no frame arrived for ``watchdog_s``
  (~90 s; DingTalk pings every ~30 s), a ``disconnect`` system frame reconnects
  immediately, and :meth:`StreamConnection.stop` closes cleanly.
* **HTTP mode** (``POST /callback/dingtalk``): the outgoing robot's ``timestamp`` + ``sign``
  headers (HMAC-SHA256 with the app secret, ≤ 1 h). That sign does not cover the body, so
  ``msgId`` de-duplication is strict (inbox key plus a replay cache) and the body's
  ``robotCode`` must be ours. The encrypted event subscription (same crypto as WeCom, owner
  key = app key) is served on the same URL: ``check_url`` and every other event are
  answered with the encrypted ``success``.

Audio messages carry DingTalk's own transcript in ``content.recognition``: it becomes the
voice note's text. Replies go through the conversation's ``sessionWebhook`` while it is
valid, otherwise through the robot API (``oToMessages/batchSend``); cards are StandardCard
interactive cards with ``request`` buttons, updated by ``cardBizId`` (= our card id).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import urllib.parse
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from dingtalk_stream.frames import AckMessage, Headers, SystemMessage
from dingtalk_stream.frames import CallbackMessage as _SdkCallbackMessage
from sqlalchemy import select
from sqlmodel import Session, col

from bot.config import ConfigError, Settings
from bot.crypto import (
    CallbackRejected,
    DingTalkEventCrypto,
    ReplayCache,
    check_fresh,
    verify_dingtalk_robot_sign,
)
from bot.gateway import Delivered, DeliveryError, Gateway
from bot.http import ChartUploads, LazyHttp, json_object
from bot.keys import GATEWAY
from bot.ratelimit import RateRule
from bot.tokens import TokenManager
from cards.charts import IMAGE_LIMITS
from cards.dingtalk import action_index, markdown_message, render_standard_card
from cards.model import Card
from handlers.context import Clock, HandlerContext
from handlers.events import ChatLine, InboundEvent
from store.db import Database
from store.models import CardHandle, Member, OutboxMessage

log = logging.getLogger("leadbot.dingtalk")

NAME: Literal["dingtalk"] = "dingtalk"
DEFAULT_API_BASE = "https://api.dingtalk.com"
# Media upload exists only on the legacy host (dingtalk-stream's upload_to_dingtalk uses it
# with the new-style token); the id it returns ("@lA…") goes into a StandardCard image.
DEFAULT_OAPI_BASE = "https://oapi.dingtalk.com"
LEGACY_TOKEN_EXPIRED = frozenset({40014, 42001, 88})
LEGACY_TRANSIENT = frozenset({-1, 90002, 90019})
SHANGHAI = ZoneInfo("Asia/Shanghai")
TOPIC_ROBOT = "/v1.0/im/bot/messages/get"
TOPIC_ROBOT_DELEGATE = "/v1.0/im/bot/messages/delegate"
TOPIC_CARD = "/v1.0/card/instances/callback"
MAX_BODY = 512 * 1024
THROTTLE_CODES = frozenset({"Throttling", "Throttling.User", "Throttling.Api", "90002", "90019", "130101"})


@dataclass(frozen=True)
class DingTalkConfig:
    """``[platforms.dingtalk]`` of leadbot.toml."""

    app_key: str
    app_secret: str
    robot_code: str
    mode: str = "stream"
    token: str = ""
    aes_key: str = ""
    api_base: str = DEFAULT_API_BASE
    oapi_base: str = DEFAULT_OAPI_BASE
    window_s: int = 3600
    watchdog_s: float = 90.0
    reconnect_max_s: float = 30.0
    http_timeout_s: float = 10.0
    per_user_per_min: int = 20

    @classmethod
    def from_settings(cls, settings: Settings) -> DingTalkConfig:
        """Read and validate the section; raises :class:`ConfigError` with a fix in Chinese."""
        raw = dict(settings.platforms.get(NAME, {}))

        def need(key: str, zh: str) -> str:
            value = raw.get(key)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(settings.path, None, f"platforms.dingtalk.{key}", f"缺少{zh}（钉钉开放平台 → 应用开发 → 凭证与基础信息），可用环境变量 LEADBOT_PLATFORMS__DINGTALK__{key.upper()}", f"is required ({key})")
            return value.strip()

        app_key = need("app_key", "AppKey（Client ID）")
        app_secret = need("app_secret", "AppSecret（Client Secret）")
        mode = str(raw.get("mode", "stream"))
        if mode not in ("stream", "http"):
            raise ConfigError(settings.path, None, "platforms.dingtalk.mode", "只能是 \"stream\"（推荐）或 \"http\"", "must be \"stream\" or \"http\"")
        token, aes_key = str(raw.get("token") or ""), str(raw.get("aes_key") or "")
        if bool(token) != bool(aes_key):
            raise ConfigError(settings.path, None, "platforms.dingtalk.aes_key", "事件订阅需要同时配置 token 和 aes_key（开发者后台 → 事件订阅 → 加密 aes_key / 签名 token）", "token and aes_key go together")
        if aes_key and len(aes_key) != 43:
            raise ConfigError(settings.path, None, "platforms.dingtalk.aes_key", "aes_key 应为 43 个字符", "aes_key must be 43 characters")
        api_base = str(raw.get("api_base") or DEFAULT_API_BASE).rstrip("/")
        # A custom api_base (a proxy, a test server) serves the legacy paths too unless told otherwise.
        oapi_base = str(raw.get("oapi_base") or (DEFAULT_OAPI_BASE if api_base == DEFAULT_API_BASE else api_base)).rstrip("/")
        return cls(
            app_key=app_key, app_secret=app_secret, robot_code=str(raw.get("robot_code") or app_key), mode=mode,
            token=token, aes_key=aes_key, api_base=api_base, oapi_base=oapi_base,
            window_s=int(raw.get("window_s", 3600)), watchdog_s=float(raw.get("watchdog_s", 90.0)),
            reconnect_max_s=float(raw.get("reconnect_max_s", 30.0)), http_timeout_s=float(raw.get("http_timeout_s", 10.0)),
            per_user_per_min=int(raw.get("per_user_per_min", 20)),
        )


class DingTalkApiError(Exception):
    """An Open API call that failed; ``code`` is DingTalk's string code when there is one."""

    def __init__(self, status: int, code: str, msg: str, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status} {code}: {msg[:200]}")
        self.status, self.code, self.msg, self.retry_after = status, code, msg, retry_after


class DingTalkClient(LazyHttp):
    """Token, robot sends and card calls on aiohttp (never the SDK's blocking ``requests``)."""

    def __init__(self, config: DingTalkConfig, clock: Clock) -> None:
        super().__init__(config.http_timeout_s)
        self.config = config
        self.tokens = TokenManager(self._fetch_token, clock, refresh_margin_s=300)

    async def raw(self, method: str, url: str, *, body: Any = None, token: str | None = None) -> tuple[int, dict[str, Any]]:
        """One request; ``(status, json-or-empty)``; network trouble is a :class:`DingTalkApiError`."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["x-acs-dingtalk-access-token"] = token
        try:
            async with self.session.request(method, url, json=body, headers=headers) as resp:
                raw = await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise DingTalkApiError(0, "network", type(exc).__name__) from exc
        data = json_object(raw)
        if data.get("status") == 1111:
            # The per-IP ban (10 000 requests / 20 s) answers with its own shape.
            raise DingTalkApiError(status, "1111", "ip banned", retry_after=float(data.get("wait", 5)) * 60)
        return status, data

    async def _fetch_token(self) -> tuple[str, float]:
        status, data = await self.raw("POST", f"{self.config.api_base}/v1.0/oauth2/accessToken", body={"appKey": self.config.app_key, "appSecret": self.config.app_secret})
        token = data.get("accessToken")
        if status != 200 or not isinstance(token, str):
            raise DingTalkApiError(status, str(data.get("code", "")), str(data.get("message", "token fetch failed")))
        return token, float(data.get("expireIn", 7200))

    async def call(self, method: str, path: str, body: Any) -> dict[str, Any]:
        """An authenticated Open API call; raises :class:`DingTalkApiError` unless 2xx."""

        async def once(token: str) -> tuple[int, dict[str, Any]]:
            return await self.raw(method, self.config.api_base + path, body=body, token=token)

        status, data = await self.tokens.call(once, expired=lambda r: r[0] == 401 or r[1].get("code") == "InvalidAuthentication")
        if 200 <= status < 300:
            return data
        code = str(data.get("code", ""))
        retry = 60.0 if status == 429 or code in THROTTLE_CODES else None
        raise DingTalkApiError(status, code, str(data.get("message", "")), retry)


    async def upload_image(self, png: bytes) -> str:
        """Legacy ``POST /media/upload?access_token=`` (multipart ``media``, ``type=image``): the media_id."""

        async def once(token: str) -> tuple[int, dict[str, Any]]:
            form = aiohttp.FormData()  # consumed by one request: a token retry builds its own
            form.add_field("type", "image")
            form.add_field("media", png, filename="chart.png", content_type="image/png")
            url = f"{self.config.oapi_base}/media/upload?access_token={urllib.parse.quote_plus(token)}"
            try:
                async with self.session.post(url, data=form) as resp:
                    raw, status = await resp.read(), resp.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise DingTalkApiError(0, "network", type(exc).__name__) from exc
            try:
                data = json.loads(raw) if raw else {}
            except ValueError:
                data = {}
            return status, data if isinstance(data, dict) else {}

        status, data = await self.tokens.call(once, expired=lambda r: r[0] == 401 or r[1].get("errcode") in LEGACY_TOKEN_EXPIRED)
        media_id = data.get("media_id")
        if status == 200 and not data.get("errcode") and isinstance(media_id, str) and media_id:
            return media_id
        code = data.get("errcode", "")
        transient = status == 0 or status >= 500 or status == 429 or code in LEGACY_TRANSIENT or code in LEGACY_TOKEN_EXPIRED
        raise DingTalkApiError(status, f"upload:{code}", str(data.get("errmsg", "media upload failed")), 60.0 if transient else None)



@dataclass
class _Webhook:
    url: str
    expires_at: datetime


def _ms_to_dt(ms: object) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(str(ms)) / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _local_time(ms: object) -> str | None:
    when = _ms_to_dt(ms)
    if when is None:
        return None
    when = when.astimezone(SHANGHAI)
    return f"{when.month}月{when.day}日 {when:%H:%M}"


class Malformed(Exception):
    """A verified request whose content we do not understand (answered 4xx / acked with 400)."""


def _chat_record(raw: object) -> tuple[ChatLine, ...]:
    """Best-effort reading of a forwarded chat record (its exact shape is UNCONFIRMED)."""
    for _ in range(3):  # the record may be a JSON string inside a dict inside a JSON string
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except (ValueError, RecursionError):  # RecursionError: `[[[[…` thousands deep
                return ()
        if isinstance(raw, dict):
            raw = raw.get("chatRecord") or raw.get("records") or []
    lines: list[ChatLine] = []
    if isinstance(raw, list):
        for item in raw[:50]:
            if not isinstance(item, dict):
                continue
            text = item.get("content") or item.get("text") or ""
            if isinstance(text, dict):
                text = text.get("content") or text.get("recognition") or ""
            speaker = item.get("senderNick") or item.get("senderName") or item.get("senderId") or "未知"
            if str(text).strip():
                lines.append(ChatLine(str(speaker), str(text).strip(), _local_time(item.get("createAt") or item.get("sendTime"))))
    return tuple(lines)


def robot_message_event(data: dict[str, Any], now: datetime) -> tuple[str, InboundEvent]:
    """Normalise a robot message (HTTP body or Stream ``data``) into ``(inbox key, event)``."""
    msg_id = data.get("msgId")
    user = data.get("senderStaffId") or data.get("senderId")
    if not isinstance(msg_id, str) or not msg_id or not isinstance(user, str) or not user:
        raise Malformed("malformed robot message / 机器人消息格式错误")
    msgtype = str(data.get("msgtype") or "")
    content = data.get("content") if isinstance(data.get("content"), dict) else {}
    assert isinstance(content, dict)
    base = InboundEvent(
        platform=NAME, platform_user=user, kind="text", received_at=now, conversation=str(data.get("conversationId") or ""),
        extra={"msg_id": msg_id, "conversation_type": str(data.get("conversationType") or ""), "msgtype": msgtype},
    )
    if msgtype == "text":
        text = data.get("text", {}).get("content", "") if isinstance(data.get("text"), dict) else ""
        event = replace(base, text=str(text).strip())
    elif msgtype == "audio":
        event = replace(base, kind="voice", text=str(content.get("recognition") or "").strip(), file_ref=str(content.get("downloadCode") or ""))
    elif msgtype == "richText":
        parts = []
        items = content.get("richText")
        for item in items if isinstance(items, list) else []:  # a number or an object holds no text
            if isinstance(item, dict):
                if item.get("text"):
                    parts.append(str(item["text"]))
                elif item.get("downloadCode") or item.get("pictureDownloadCode"):
                    parts.append("[图片]")
        event = replace(base, text="".join(parts).strip())
    elif msgtype == "picture":
        event = replace(base, kind="file", file_ref=str(content.get("downloadCode") or content.get("pictureDownloadCode") or ""), file_name="picture")
    elif msgtype == "file":
        event = replace(base, kind="file", file_ref=str(content.get("downloadCode") or ""), file_name=str(content.get("fileName") or ""))
    elif msgtype == "chatRecord":
        event = replace(base, kind="forward", chat_record=_chat_record(content or data.get("chatRecord")))
    else:
        event = replace(base, kind="file", text="")
    return f"msg:{msg_id}", event


class DingTalkAdapter:
    """DingTalk's inbound handling (Stream and HTTP) and outbound delivery."""

    name = NAME

    def __init__(self, config: DingTalkConfig, db: Database, ctx: HandlerContext) -> None:
        self.config = config
        self.db = db
        self.ctx = ctx
        self.clock = ctx.clock
        self.client = DingTalkClient(config, ctx.clock)
        self.crypto = DingTalkEventCrypto(config.token, config.aes_key, config.app_key) if config.aes_key else None
        self.msg_ids = ReplayCache(ttl_s=2 * 3600, max_items=100_000)
        # Counted by the gateway in the database, for all processes together.
        self.rate_limits: tuple[RateRule, ...] = (RateRule(config.per_user_per_min, 60.0, slot_s=1),)
        self._webhooks: dict[str, _Webhook] = {}
        self._sent_cards: set[str] = set()
        # Uploaded charts, recorded in the database so card updates (and deliveries resumed
        # after a restart) keep the chart without uploading it again.
        self.charts = ChartUploads(NAME, IMAGE_LIMITS, self.client.upload_image, (DingTalkApiError,),
                                   lambda exc: exc.retry_after is not None, db=db, clock=ctx.clock)
        self.gateway: Gateway | None = None
        self.bound = asyncio.Event()  # set once the gateway is known; the stream waits for it
        self.stream: StreamConnection | None = None

    def bind(self, gateway: Gateway) -> None:
        """Give the adapter its gateway (stream frames arrive without an HTTP request)."""
        self.gateway = gateway
        self.bound.set()

    def recipient_for(self, member: Member) -> str | None:
        """The member's DingTalk userId (staff id)."""
        return member.dingtalk_userid or None

    async def start(self) -> None:
        """Stream mode: connect in the background (the gateway is bound on first use)."""
        if self.config.mode == "stream":
            self.stream = StreamConnection(self)
            self.stream.start()

    async def close(self) -> None:
        """Stop the stream and close the HTTP session."""
        if self.stream is not None:
            await self.stream.stop()
        await self.client.close()

    # ------------------------------------------------------------ inbound (shared)
    async def ingest_robot_message(self, data: dict[str, Any]) -> int | None:
        """Store one robot message; remembers its sessionWebhook for replies."""
        assert self.gateway is not None
        key, event = robot_message_event(data, self.clock.now())
        webhook = data.get("sessionWebhook")
        expires = _ms_to_dt(data.get("sessionWebhookExpiredTime"))
        if isinstance(webhook, str) and webhook.startswith(("https://", "http://")) and expires is not None:
            self._webhooks[event.platform_user] = _Webhook(webhook, expires)
        return await self.gateway.ingest(key, event)

    async def ingest_card_callback(self, data: dict[str, Any], delivery_id: str) -> int | None:
        """Store a card button click: ``outTrackId`` is our card id, the button id picks the action."""
        assert self.gateway is not None
        card_id, user = data.get("outTrackId"), data.get("userId")
        content = data.get("content")
        if isinstance(content, str):
            try:
                content = json.loads(content)
            except (ValueError, RecursionError):
                content = None
        if not isinstance(card_id, str) or not card_id or not isinstance(user, str) or not user or not isinstance(content, dict):
            raise Malformed("malformed card callback / 卡片回调格式错误")
        private = content.get("cardPrivateData") if isinstance(content.get("cardPrivateData"), dict) else {}
        assert isinstance(private, dict)
        ids = private.get("actionIds") or []
        index = action_index(ids[0]) if isinstance(ids, list) and ids else None
        if index is None:
            raise Malformed("unknown button / 无法识别的按钮")
        key = await self._action_key(card_id[:64], index)
        if key is None:
            raise Malformed("unknown card / 未知的卡片")
        event = InboundEvent(platform=NAME, platform_user=user, kind="card_action", received_at=self.clock.now(), card_id=card_id[:64], action=key)
        return await self.gateway.ingest(f"click:{delivery_id}", event)

    async def _action_key(self, card_id: str, index: int) -> str | None:
        """The signed key of button ``index`` on the card we last sent as ``card_id``."""

        def load(session: Session) -> str | None:
            row = session.execute(
                select(col(OutboxMessage.payload)).where(col(OutboxMessage.card_id) == card_id, col(OutboxMessage.platform) == NAME, col(OutboxMessage.kind) == "card").order_by(col(OutboxMessage.id).desc())
            ).first()
            if row is None:
                return None
            card = json.loads(row[0]).get("card")
            actions = card.get("actions") if isinstance(card, dict) else None
            if not isinstance(actions, list) or index >= len(actions):
                return None
            return str(actions[index].get("key") or "") or None

        return await self.db.run(load)

    # ------------------------------------------------------------ inbound (HTTP)
    async def handle_http(self, request: web.Request, gateway: Gateway) -> web.Response:
        """``POST /callback/dingtalk``: outgoing robot or encrypted event subscription."""
        self.bind(gateway)
        raw = await request.read()
        if len(raw) > MAX_BODY:
            return _reject("body too large / 请求体过大", 413)
        query = request.query
        signature = query.get("msg_signature") or query.get("signature")
        try:
            if signature:
                return await self._http_event(raw, signature, query.get("timestamp") or query.get("timeStamp") or "", query.get("nonce") or "")
            if request.headers.get("sign"):
                return await self._http_robot(raw, request.headers.get("timestamp", ""), request.headers.get("sign", ""))
        except CallbackRejected as exc:
            log.warning("dingtalk callback rejected: %s", exc.reason)
            return _reject(exc.reason)
        except Malformed as exc:
            return _reject(str(exc))
        except Exception:
            log.exception("dingtalk callback could not be stored")
            return _reject("temporarily unavailable / 暂时无法处理，请重试", 503)
        return _reject("missing parameter / 缺少参数")

    async def _http_robot(self, raw: bytes, timestamp: str, sign: str) -> web.Response:
        now_s = self.clock.now().timestamp()
        verify_dingtalk_robot_sign(timestamp, sign, self.config.app_secret, now_s, self.config.window_s)
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise Malformed("malformed body / 请求体格式错误") from None
        if not isinstance(data, dict):
            raise Malformed("malformed body / 请求体格式错误")
        # The sign covers only the timestamp: the body must at least be addressed to our robot…
        robot = data.get("robotCode")
        if robot is not None and robot != self.config.robot_code:
            raise CallbackRejected("robot code mismatch / 机器人编码不匹配")
        # …be fresh itself…
        created = data.get("createAt")
        if created is not None:
            check_fresh(str(created), now_s, self.config.window_s, millis=True)
        # …and never be seen twice (a captured timestamp/sign pair replays any body for an hour).
        msg_id = data.get("msgId")
        if isinstance(msg_id, str) and self.msg_ids.seen_before(msg_id, now_s):
            return web.json_response({})
        try:
            await self.ingest_robot_message(data)
        except Exception:
            if isinstance(msg_id, str):
                self.msg_ids.forget(msg_id)
            raise
        return web.json_response({})

    async def _http_event(self, raw: bytes, signature: str, timestamp: str, nonce: str) -> web.Response:
        if self.crypto is None:
            raise CallbackRejected("event subscription not configured / 未配置事件订阅 token 与 aes_key")
        check_fresh(timestamp, self.clock.now().timestamp(), self.config.window_s, millis=True)
        plain = self.crypto.decrypt_json_body(raw, signature, timestamp, nonce)
        try:
            data = json.loads(plain)
        except (ValueError, RecursionError):
            raise Malformed("malformed event / 事件格式错误") from None
        if not isinstance(data, dict):
            raise Malformed("malformed event / 事件格式错误")
        if data.get("outTrackId"):
            # Card callbacks registered with callbackType=HTTP (shape as over Stream; UNCONFIRMED for HTTP).
            digest = hashlib.sha256(raw).hexdigest()[:32]
            await self.ingest_card_callback(data, f"http-{digest}")
        elif data.get("msgtype") and data.get("msgId"):
            await self.ingest_robot_message(data)
        # check_url and every other event: the encrypted "success" is the whole answer.
        reply_ts = str(int(self.clock.now().timestamp() * 1000))
        reply_nonce = hashlib.sha256(f"{reply_ts}{nonce}".encode()).hexdigest()[:12]
        return web.json_response(self.crypto.dingtalk_success_reply(reply_ts, reply_nonce))

    # ------------------------------------------------------------ outbound
    async def deliver(self, msg: OutboxMessage, card: Card | None, handle: CardHandle | None) -> Delivered:
        """Send one outbox row: text (sessionWebhook or robot API), card, or card update."""
        text = str(json.loads(msg.payload).get("text", ""))
        try:
            if card is not None and msg.card_id and msg.kind == "card_update" and await self._was_sent(msg.card_id, handle):
                rendered = render_standard_card(card, msg.card_id, image=await self.charts.get(msg.card_id))
                await self.client.call("PUT", "/v1.0/im/robots/interactiveCards", {"cardBizId": msg.card_id, "cardData": json.dumps(rendered, ensure_ascii=False)})
                return Delivered(platform_handle=msg.card_id)
            if card is not None and msg.card_id and msg.kind in ("card", "card_update"):
                card, media_id = await self.charts.prepare(msg, card)
                body = {
                    "cardTemplateId": "StandardCard", "robotCode": self.config.robot_code, "cardBizId": msg.card_id,
                    "cardData": json.dumps(render_standard_card(card, msg.card_id, image=media_id), ensure_ascii=False),
                    "singleChatReceiver": json.dumps({"userId": msg.recipient}), "sendOptions": {},
                }
                await self.client.call("POST", "/v1.0/im/v1.0/robot/interactiveCards/send", body)
                self._sent_cards.add(msg.card_id)
                return Delivered(platform_handle=msg.card_id)
            return await self._send_text(msg.recipient, text, card, msg.dedupe_key)
        except DingTalkApiError as exc:
            raise _delivery_error(exc) from exc

    async def _was_sent(self, card_id: str, handle: CardHandle | None) -> bool:
        """Whether DingTalk has a card with cardBizId ``card_id`` (so it can be updated in place)."""
        if card_id in self._sent_cards or (handle is not None and handle.platform == NAME and bool(handle.platform_handle)):
            return True
        # After a restart the memory is gone; the outbox remembers what was sent.
        sent = await self.db.run(lambda s: s.execute(
            select(col(OutboxMessage.id)).where(col(OutboxMessage.card_id) == card_id, col(OutboxMessage.platform) == NAME,
                                               col(OutboxMessage.kind) == "card", col(OutboxMessage.status) == "sent")).first())
        if sent:
            self._sent_cards.add(card_id)
        return bool(sent)

    async def _send_text(self, user: str, text: str, card: Card | None, dedupe_key: str) -> Delivered:
        hook = self._webhooks.get(user)
        # Leave a minute of margin: a webhook that expires in flight loses the message.
        if hook is not None and self.clock.now() + timedelta(seconds=60) < hook.expires_at:
            body: dict[str, Any] = {"msgtype": "text", "text": {"content": text}}
            if card is not None:
                body = {"msgtype": "markdown", "markdown": markdown_message(card)}
            status, data = await self.client.raw("POST", hook.url, body=body)
            if status == 200 and data.get("errcode", 0) == 0:
                return Delivered()
            log.warning("sessionWebhook refused (HTTP %s, errcode %s); using the robot API", status, data.get("errcode"))
            self._webhooks.pop(user, None)
        msg_key, param = ("sampleText", {"content": text}) if card is None else ("sampleMarkdown", markdown_message(card))
        await self.client.call("POST", "/v1.0/robot/oToMessages/batchSend", {
            "robotCode": self.config.robot_code, "userIds": [user], "msgKey": msg_key, "msgParam": json.dumps(param, ensure_ascii=False),
        })
        return Delivered()


def _delivery_error(exc: DingTalkApiError) -> DeliveryError:
    if exc.retry_after is not None:
        return DeliveryError(f"dingtalk throttled ({exc.code})", retry_after=exc.retry_after)
    if exc.status in (400, 403, 404) and exc.code not in ("", "network"):
        return DeliveryError(f"dingtalk refused ({exc.code}): {exc.msg[:100]}", permanent=True)
    return DeliveryError(f"dingtalk unavailable: {exc}")


def _reject(reason: str, status: int = 400) -> web.Response:
    return web.json_response({"error": reason}, status=status)


class StreamConnection:
    """The supervised Stream-mode WebSocket: reconnects, watchdog, immediate acks, clean stop."""

    def __init__(self, adapter: DingTalkAdapter) -> None:
        self.adapter = adapter
        self.config = adapter.config
        self._task: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._stopping = False
        self.connected = asyncio.Event()
        # Counters for /metrics and tests.
        self.connects = 0
        self.watchdog_trips = 0
        self.frames = 0
        self.last_frame_at = 0.0

    def start(self) -> None:
        """Run the connection loop in the background."""
        self._task = asyncio.create_task(self.run(), name="dingtalk-stream")

    async def stop(self) -> None:
        """Close the socket and end the loop; frames not yet acked will be redelivered by DingTalk."""
        self._stopping = True
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def run(self) -> None:
        """Connect, serve, and reconnect with capped exponential backoff until stopped."""
        await self.adapter.bound.wait()
        delay = 0.5
        while not self._stopping:
            try:
                served = await self._serve_once()
                delay = 0.5 if served else min(delay * 2, self.config.reconnect_max_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep reconnecting whatever happened
                log.warning("dingtalk stream connection failed: %s", type(exc).__name__)
                delay = min(delay * 2, self.config.reconnect_max_s)
            self.connected.clear()
            if not self._stopping:
                await asyncio.sleep(delay)

    async def _open(self) -> str:
        body = {
            "clientId": self.config.app_key, "clientSecret": self.config.app_secret, "ua": "leadbot/0.1", "localIp": "127.0.0.1",
            "subscriptions": [{"type": "EVENT", "topic": "*"}, {"type": "CALLBACK", "topic": TOPIC_ROBOT}, {"type": "CALLBACK", "topic": TOPIC_CARD}],
        }
        status, data = await self.adapter.client.raw("POST", f"{self.config.api_base}/v1.0/gateway/connections/open", body=body)
        endpoint, ticket = data.get("endpoint"), data.get("ticket")
        if status != 200 or not isinstance(endpoint, str) or not isinstance(ticket, str):
            raise DingTalkApiError(status, str(data.get("code", "")), "connections/open failed")
        return f"{endpoint}?ticket={urllib.parse.quote_plus(ticket)}"

    async def _serve_once(self) -> bool:
        """One connection's life; True if it carried at least one frame."""
        url = await self._open()
        served = False
        async with self.adapter.client.session.ws_connect(url, heartbeat=None, autoping=True) as ws:
            self._ws = ws
            self.connects += 1
            self.connected.set()
            while not self._stopping:
                try:
                    msg = await asyncio.wait_for(ws.receive(), timeout=self.config.watchdog_s)
                except TimeoutError:
                    # Silent socket (ping hang, zombie connection): start over.
                    self.watchdog_trips += 1
                    log.warning("dingtalk stream silent for %.0f s; reconnecting", self.config.watchdog_s)
                    return served
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
                    return served
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                self.frames += 1
                self.last_frame_at = time.monotonic()
                served = True
                try:
                    frame = json.loads(msg.data)
                except (ValueError, RecursionError):
                    continue  # no message id to acknowledge: DingTalk's own retry limit ends it
                if not isinstance(frame, dict):
                    continue
                if not await self._on_frame(ws, frame):
                    return served
        return served

    async def _on_frame(self, ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> bool:
        """Handle one frame; False when the server asked us to reconnect."""
        kind = frame.get("type")
        headers = frame.get("headers") if isinstance(frame.get("headers"), dict) else {}
        assert isinstance(headers, dict)
        topic = headers.get("topic")
        if kind == SystemMessage.TYPE:
            if topic == SystemMessage.TOPIC_DISCONNECT:
                log.info("dingtalk stream: server asked to disconnect")
                return False
            try:
                system = SystemMessage.from_dict(frame)
            except (ValueError, RecursionError, TypeError, AttributeError, OverflowError):
                await self._refuse(ws, frame, "malformed frame / 帧格式错误")
                return True
            await ws.send_str(json.dumps(_ack(system.headers, system.data, message="OK").to_dict()))  # ping → pong with the same data
            return True
        if kind == CallbackMessage.TYPE:
            try:
                # Inside the try: a frame the SDK model cannot read is refused like any other
                # malformed one, otherwise it is never acked and DingTalk redelivers it forever.
                msg = CallbackMessage.from_dict(_with_string_data(frame))
                await self._store(topic, msg)
            except Malformed as exc:
                await self._refuse(ws, frame, str(exc))
                return True
            except Exception:
                log.exception("dingtalk frame could not be stored; not acknowledged")
                return True
            await ws.send_str(json.dumps(_ack(msg.headers, {"response": None}).to_dict()))
            return True
        # EVENT frames (contacts, approvals…): not used yet, acknowledged so they are not redelivered.
        await ws.send_str(json.dumps(_ack(_reply_headers(frame), {"status": "SUCCESS", "message": "success"}).to_dict()))
        return True

    async def _refuse(self, ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any], reason: str) -> None:
        """Acknowledge a frame we will never understand with 400, so DingTalk does not redeliver it."""
        ack = _ack(_reply_headers(frame), {"response": None}, code=AckMessage.STATUS_BAD_REQUEST, message=reason)
        await ws.send_str(json.dumps(ack.to_dict()))

    async def _store(self, topic: object, msg: CallbackMessage) -> None:
        if not isinstance(msg.data, dict):
            raise Malformed("malformed frame data / 帧数据格式错误")
        if topic in (TOPIC_ROBOT, TOPIC_ROBOT_DELEGATE):
            await self.adapter.ingest_robot_message(msg.data)
        elif topic == TOPIC_CARD:
            await self.adapter.ingest_card_callback(msg.data, f"stream-{msg.headers.message_id}")
        else:
            raise Malformed("unknown topic / 未订阅的主题")


class CallbackMessage(_SdkCallbackMessage):
    """dingtalk-stream's CALLBACK frame model, refusing what it cannot read as :class:`Malformed`.

    The SDK's ``from_dict`` raises whatever ``json.loads`` of ``data`` raises (ValueError,
    RecursionError for `[[[[…`), AttributeError for ``headers`` that is no object and
    ValueError / TypeError for a ``time`` that is no integer.
    """

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> _SdkCallbackMessage:
        if not isinstance(d.get("headers", {}), dict):
            raise Malformed("malformed frame headers / 帧头格式错误")
        try:
            return _SdkCallbackMessage.from_dict(d)
        except (ValueError, RecursionError, TypeError, AttributeError, OverflowError):
            raise Malformed("malformed frame data / 帧数据格式错误") from None


def _reply_headers(frame: dict[str, Any]) -> Headers:
    # An ack needs only the frame's message id; the other headers may be what we cannot read.
    headers = Headers()
    raw = frame.get("headers")
    message_id = raw.get("messageId") if isinstance(raw, dict) else None
    headers.message_id = message_id if isinstance(message_id, str) else ""
    return headers


def _with_string_data(frame: dict[str, Any]) -> dict[str, Any]:
    # The SDK model expects ``data`` as a JSON string (as DingTalk sends it).
    data = frame.get("data")
    if isinstance(data, str) or data is None:
        return frame
    try:
        return {**frame, "data": json.dumps(data)}
    except RecursionError:
        raise Malformed("malformed frame data / 帧数据格式错误") from None


def _ack(headers: Headers, data: Any, *, code: int = AckMessage.STATUS_OK, message: str = "OK") -> AckMessage:
    ack = AckMessage()
    ack.code = code
    ack.headers.message_id = headers.message_id
    ack.headers.content_type = Headers.CONTENT_TYPE_APPLICATION_JSON
    ack.message = message
    ack.data = data
    return ack


def create_adapter(settings: Settings, db: Database, ctx: HandlerContext) -> DingTalkAdapter:
    """The DingTalk adapter for ``settings`` (validates ``[platforms.dingtalk]``)."""
    return DingTalkAdapter(DingTalkConfig.from_settings(settings), db, ctx)


async def callback(request: web.Request) -> web.Response:
    """``POST /callback/dingtalk`` (HTTP mode; also served in Stream mode for event subscriptions)."""
    gateway = request.app[GATEWAY]
    adapter = gateway.adapters.get(NAME)
    if not isinstance(adapter, DingTalkAdapter):
        return _reject("dingtalk is not enabled / 未启用钉钉", 404)
    return await adapter.handle_http(request, gateway)


async def _bind_gateway(app: web.Application) -> None:
    # Stream frames arrive without an HTTP request: hand the adapter its gateway at start-up.
    gateway = app[GATEWAY]
    adapter = gateway.adapters.get(NAME)
    if isinstance(adapter, DingTalkAdapter):
        adapter.bind(gateway)


def add_routes(app: web.Application) -> None:
    """Mount ``POST /callback/dingtalk`` and bind the gateway for Stream mode."""
    app.router.add_post("/callback/dingtalk", callback)
    app.on_startup.append(_bind_gateway)


__all__ = [
    "DingTalkAdapter", "DingTalkApiError", "DingTalkClient", "DingTalkConfig", "StreamConnection",
    "add_routes", "create_adapter", "robot_message_event",
]
