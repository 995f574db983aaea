"""A fake DingTalk: Open API (token, robot send, StandardCard send/update, sessionWebhook) and
a Stream endpoint (``connections/open`` + WebSocket speaking the frame format), with
injectable failures; plus builders for what DingTalk sends us over HTTP.

Stream controls: ``push(frame)`` sends a CALLBACK/SYSTEM frame on the live socket and
``wait_ack(message_id)`` returns our acknowledgement; ``disconnect()`` sends the SYSTEM
``disconnect`` frame; ``silent = True`` keeps sockets open but sends nothing (a zombie
connection, which only a watchdog notices).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from dingtalk_stream.frames import Headers

from bot.crypto import DingTalkEventCrypto, dingtalk_robot_sign

APP_KEY = "dingappkey0123456789"
APP_SECRET = "dingtalk-app-secret-abcdefghijklmnopqrstuvwxyz"
EVENT_TOKEN = "evtoken123"
AES_KEY = "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7"
TOPIC_ROBOT = "/v1.0/im/bot/messages/get"
TOPIC_CARD = "/v1.0/card/instances/callback"


class FakeDingTalk:
    """The DingTalk endpoints leadbot calls, in memory."""

    def __init__(self) -> None:
        self.tokens: set[str] = set()
        self.token_fetches = 0
        self.texts: list[tuple[str, str]] = []  # (userId, text) via robot API
        self.webhook_texts: list[tuple[str, str]] = []  # (conversation key, text) via sessionWebhook
        self.cards: dict[str, dict[str, Any]] = {}  # cardBizId -> {"user", "card"}
        self.card_updates: list[tuple[str, dict[str, Any]]] = []
        self.media: dict[str, bytes] = {}  # media_id -> bytes uploaded through the legacy media/upload
        self.failures: list[list[Any]] = []
        self.down = False
        self.server: TestServer | None = None
        # stream
        self.tickets: set[str] = set()
        self.opens = 0
        self.sockets: list[web.WebSocketResponse] = []
        self.acks: dict[str, dict[str, Any]] = {}
        self._ack_events: dict[str, asyncio.Event] = {}
        self.silent = False
        self._ids = itertools.count(1)
        self.refuse_open = 0

    # -------------------------------------------------------- controls
    def fail(self, fragment: str, status: int = 500, body: dict[str, Any] | None = None, times: int = 1) -> None:
        self.failures.append([fragment, status, body or {"code": "ServiceUnavailable", "message": "injected"}, times])

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def texts_for(self, user: str) -> list[str]:
        return [t for u, t in self.texts if u == user] + [t for u, t in self.webhook_texts if u == user]

    def cards_for(self, user: str) -> list[tuple[str, dict[str, Any]]]:
        return [(biz, c["card"]) for biz, c in self.cards.items() if c["user"] == user]

    # -------------------------------------------------------- server
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/v1.0/oauth2/accessToken", self._token)
        app.router.add_post("/v1.0/robot/oToMessages/batchSend", self._batch_send)
        app.router.add_post("/v1.0/im/v1.0/robot/interactiveCards/send", self._card_send)
        app.router.add_put("/v1.0/im/robots/interactiveCards", self._card_update)
        app.router.add_post("/robot/sendBySession/{user}", self._webhook)
        app.router.add_post("/media/upload", self._media_upload)
        app.router.add_post("/v1.0/gateway/connections/open", self._open)
        app.router.add_get("/gateway", self._gateway)
        return app

    async def start(self) -> TestServer:
        self.server = TestServer(self.app(), host="127.0.0.1")
        await self.server.start_server()
        return self.server

    async def close(self) -> None:
        for ws in list(self.sockets):
            await ws.close()
        if self.server is not None:
            await self.server.close()

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    def webhook_url(self, user: str) -> str:
        return f"{self.base_url}/robot/sendBySession/{user}"

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/gateway":
            return await handler(request)
        if self.down:
            return web.Response(status=503, text="service unavailable")
        for f in self.failures:
            if f[3] > 0 and f[0] in request.path:
                f[3] -= 1
                return web.json_response(f[2], status=f[1])
        open_paths = ("/v1.0/oauth2/accessToken", "/v1.0/gateway/connections/open")
        if request.path.startswith("/v1.0/") and request.path not in open_paths and request.headers.get("x-acs-dingtalk-access-token") not in self.tokens:
            return web.json_response({"code": "InvalidAuthentication", "message": "不合法的access_token"}, status=401)
        return await handler(request)

    async def _token(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("appKey") != APP_KEY or body.get("appSecret") != APP_SECRET:
            return web.json_response({"code": "invalidClientSecret", "message": "bad secret"}, status=400)
        self.token_fetches += 1
        token = uuid.uuid4().hex
        self.tokens.add(token)
        return web.json_response({"accessToken": token, "expireIn": 7200})

    async def _batch_send(self, request: web.Request) -> web.Response:
        body = await request.json()
        assert body["robotCode"] == APP_KEY
        param = json.loads(body["msgParam"])
        text = param.get("content") or param.get("text") or ""
        for user in body["userIds"]:
            self.texts.append((user, text))
        return web.json_response({"processQueryKey": f"pq{next(self._ids)}"})

    async def _card_send(self, request: web.Request) -> web.Response:
        body = await request.json()
        assert body["cardTemplateId"] == "StandardCard"
        user = json.loads(body["singleChatReceiver"])["userId"]
        self.cards[body["cardBizId"]] = {"user": user, "card": json.loads(body["cardData"])}
        return web.json_response({"processQueryKey": f"pq{next(self._ids)}"})

    async def _card_update(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body["cardBizId"] not in self.cards:
            return web.json_response({"code": "param.cardBizIdNotExist", "message": "card not found"}, status=400)
        card = json.loads(body["cardData"])
        self.cards[body["cardBizId"]]["card"] = card
        self.card_updates.append((body["cardBizId"], card))
        return web.json_response({"success": True})

    async def _media_upload(self, request: web.Request) -> web.Response:
        """Legacy oapi ``media/upload?access_token=``: multipart ``type`` + ``media`` → ``media_id``."""
        if request.query.get("access_token") not in self.tokens:
            return web.json_response({"errcode": 40014, "errmsg": "不合法的access_token"})
        form = await request.post()
        media = form.get("media")
        if form.get("type") not in ("image", "voice", "file", "video") or media is None or isinstance(media, str):
            return web.json_response({"errcode": 40004, "errmsg": "不合法的媒体文件类型"})
        data = media.file.read()
        if form.get("type") == "image" and len(data) > 1024 * 1024:
            return web.json_response({"errcode": 40009, "errmsg": "不合法的图片文件大小"})
        media_id = f"@lADP{next(self._ids):06d}"
        self.media[media_id] = data
        return web.json_response({"errcode": 0, "errmsg": "ok", "type": "image", "media_id": media_id, "created_at": 1})

    async def _webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        text = body.get("text", {}).get("content") if body.get("msgtype") == "text" else body.get("markdown", {}).get("text")
        self.webhook_texts.append((request.match_info["user"], text or ""))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _open(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("clientId") != APP_KEY or body.get("clientSecret") != APP_SECRET:
            return web.json_response({"code": "invalidClient", "message": "bad client"}, status=401)
        topics = {s["topic"] for s in body.get("subscriptions", [])}
        assert {TOPIC_ROBOT, TOPIC_CARD} <= topics
        if self.refuse_open > 0:
            self.refuse_open -= 1
            return web.json_response({"code": "ServiceUnavailable"}, status=503)
        self.opens += 1
        ticket = uuid.uuid4().hex
        self.tickets.add(ticket)
        return web.json_response({"endpoint": f"ws://127.0.0.1:{self.server.port}/gateway", "ticket": ticket})  # type: ignore[union-attr]

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("ticket") not in self.tickets:
            return web.Response(status=403)
        self.tickets.discard(request.query["ticket"])
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.sockets.append(ws)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    ack = json.loads(msg.data)
                    mid = ack.get("headers", {}).get("messageId", "")
                    self.acks[mid] = ack
                    self._ack_events.setdefault(mid, asyncio.Event()).set()
        finally:
            if ws in self.sockets:
                self.sockets.remove(ws)
        return ws

    # -------------------------------------------------------- stream controls
    async def wait_connected(self, count: int = 1, timeout: float = 5.0) -> None:
        """Until ``count`` connections were opened and one socket is live."""
        async def poll() -> None:
            while self.opens < count or not self.sockets:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(poll(), timeout)

    async def push(self, frame: dict[str, Any]) -> None:
        await self.wait_connected(self.opens or 1)
        await self.sockets[-1].send_str(json.dumps(frame))

    async def wait_ack(self, message_id: str, timeout: float = 5.0) -> dict[str, Any]:
        ev = self._ack_events.setdefault(message_id, asyncio.Event())
        await asyncio.wait_for(ev.wait(), timeout)
        return self.acks[message_id]

    async def disconnect(self) -> None:
        await self.push(system_frame("disconnect"))

    async def drop_sockets(self) -> None:
        for ws in list(self.sockets):
            await ws.close()


def _headers(topic: str, message_id: str) -> dict[str, Any]:
    h = Headers()
    h.app_id, h.connection_id, h.content_type = APP_KEY, "conn-1", Headers.CONTENT_TYPE_APPLICATION_JSON
    h.message_id, h.topic, h.time = message_id, topic, 1773108000000
    return h.to_dict()


def callback_frame(topic: str, data: dict[str, Any], message_id: str | None = None) -> dict[str, Any]:
    """A CALLBACK frame as DingTalk pushes it (``data`` is a JSON string)."""
    return {"specVersion": "1.0", "type": "CALLBACK", "headers": _headers(topic, message_id or f"mid-{uuid.uuid4().hex[:10]}"), "data": json.dumps(data, ensure_ascii=False)}


def system_frame(topic: str, message_id: str | None = None) -> dict[str, Any]:
    return {"specVersion": "1.0", "type": "SYSTEM", "headers": _headers(topic, message_id or f"sys-{uuid.uuid4().hex[:8]}"), "data": "{}"}


def robot_message(user: str, text: str = "", *, msg_id: str | None = None, msgtype: str = "text", content: dict[str, Any] | None = None,
                  webhook: str | None = None, created_ms: int = 1773108000000) -> dict[str, Any]:
    """A robot message body (HTTP outgoing robot / Stream robot topic)."""
    data: dict[str, Any] = {
        "msgtype": msgtype, "msgId": msg_id or f"msg{uuid.uuid4().hex[:16]}", "createAt": created_ms, "conversationType": "1",
        "conversationId": f"cid{user}", "senderId": f"$:LWCP_v1:${user}", "senderNick": user, "senderCorpId": "dingcorp",
        "senderStaffId": user, "chatbotUserId": "$:LWCP_v1:$bot", "chatbotCorpId": "dingcorp", "robotCode": APP_KEY, "isInAtList": True,
    }
    if msgtype == "text":
        data["text"] = {"content": text}
    if content is not None:
        data["content"] = content
    if webhook:
        data["sessionWebhook"] = webhook
        data["sessionWebhookExpiredTime"] = created_ms + 90 * 60 * 1000
    return data


def card_callback(user: str, card_biz_id: str, button_id: str) -> dict[str, Any]:
    """A card callback's ``data`` (dingtalk-stream CardCallbackMessage shape)."""
    from dingtalk_stream.card_callback import CardCallbackMessage

    msg = CardCallbackMessage()
    msg.corp_id, msg.user_id, msg.card_instance_id = "dingcorp", user, card_biz_id
    msg.content = {"cardPrivateData": {"actionIds": [button_id], "params": {}}}
    return msg.to_dict()


def robot_http_request(data: dict[str, Any], now_ms: int, secret: str = APP_SECRET) -> tuple[bytes, dict[str, str]]:
    """Body and headers of an outgoing-robot POST."""
    ts = str(now_ms)
    return json.dumps(data, ensure_ascii=False).encode(), {"Content-Type": "application/json", "timestamp": ts, "sign": dingtalk_robot_sign(ts, secret)}


def event_http_request(data: dict[str, Any], now_ms: int, *, nonce: str = "nonce1") -> tuple[bytes, dict[str, str]]:
    """Body and query of an encrypted event-subscription POST."""
    crypto = DingTalkEventCrypto(EVENT_TOKEN, AES_KEY, APP_KEY)
    encrypt = crypto.encrypt(json.dumps(data, ensure_ascii=False))
    ts = str(now_ms)
    return json.dumps({"encrypt": encrypt}).encode(), {"msg_signature": crypto.signature(ts, nonce, encrypt), "timestamp": ts, "nonce": nonce}


def dingtalk_toml(api_base: str, *, mode: str = "http", watchdog_s: float = 30.0, events: bool = True) -> str:
    lines = ["\n[platforms.dingtalk]", "enabled = true", f'app_key = "{APP_KEY}"', f'app_secret = "{APP_SECRET}"', f'mode = "{mode}"',
             f'api_base = "{api_base}"', f"watchdog_s = {watchdog_s}", "reconnect_max_s = 0.2"]
    if events:
        lines += [f'token = "{EVENT_TOKEN}"', f'aes_key = "{AES_KEY}"']
    return "\n".join(lines) + "\n"


def dingtalk_ids() -> dict[str, dict[str, str]]:
    from tests.feishu_fakes import REPS

    return {m: {"dingtalk_userid": f"dt_{m}"} for m in REPS}
