"""A fake Feishu Open API server and a fake Feishu event sender, speaking the real wire formats.

``FakeFeishu`` serves token, send, patch, delayed card update, message fetch (merge_forward
tree) and resource download, records every request, and lets a test inject failures
(``fail(path_fragment, status, body, times)``), expire tokens (``expire_tokens()``) or go
down entirely (``down = True``). ``FeishuSender`` builds what Feishu would POST to us:
encrypted with the Encrypt Key and signed (X-Lark-Signature), or plaintext with the
Verification Token.
"""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.crypto import FeishuCrypto, feishu_signature

APP_ID = "cli_a1b2c3d4e5"
APP_SECRET = "feishu-app-secret-0123"
VERIFICATION_TOKEN = "vtok-abcdef"
ENCRYPT_KEY = "feishu-encrypt-key-xyz"


@dataclass
class Failure:
    fragment: str
    status: int
    body: dict[str, Any]
    times: int
    headers: dict[str, str] = field(default_factory=dict)


class FakeFeishu:
    """The Open API endpoints leadbot calls, in memory."""

    def __init__(self) -> None:
        self.tokens: set[str] = set()
        self.token_fetches = 0
        self.messages: dict[str, dict[str, Any]] = {}  # message_id -> {receive_id, msg_type, content}
        self.sent: list[dict[str, Any]] = []  # every accepted send, in order
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.delayed_updates: list[tuple[str, dict[str, Any]]] = []
        self.callback_token_uses: dict[str, int] = {}
        self.trees: dict[str, list[dict[str, Any]]] = {}
        self.resources: dict[tuple[str, str], bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.images: dict[str, bytes] = {}  # image_key -> uploaded bytes (im/v1/images)
        self.failures: list[Failure] = []
        self.down = False
        self._uuids: dict[str, str] = {}
        self._callback_messages: dict[str, str] = {}
        self._ids = itertools.count(1)
        self.server: TestServer | None = None

    # -------------------------------------------------------- test controls
    def fail(self, fragment: str, status: int = 500, body: dict[str, Any] | None = None, times: int = 1, headers: dict[str, str] | None = None) -> None:
        """The next ``times`` requests whose path contains ``fragment`` get this answer."""
        self.failures.append(Failure(fragment, status, body or {"code": 1, "msg": "injected"}, times, headers or {}))

    def expire_tokens(self) -> None:
        """Every token issued so far stops working (code 99991663)."""
        self.tokens.clear()

    def card_of(self, message_id: str) -> dict[str, Any]:
        """The card JSON a member currently sees in ``message_id``."""
        msg = self.messages[message_id]
        assert msg["msg_type"] == "interactive", msg
        return json.loads(msg["content"])

    def cards_for(self, open_id: str) -> list[tuple[str, dict[str, Any]]]:
        """``(message_id, card)`` of every card shown to ``open_id``, oldest first."""
        return [(mid, json.loads(m["content"])) for mid, m in self.messages.items() if m["receive_id"] == open_id and m["msg_type"] == "interactive"]

    def texts_for(self, open_id: str) -> list[str]:
        """Text messages sent to ``open_id``."""
        return [json.loads(m["content"])["text"] for m in self.messages.values() if m["receive_id"] == open_id and m["msg_type"] == "text"]

    # -------------------------------------------------------- server
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/open-apis/auth/v3/tenant_access_token/internal", self._token)
        app.router.add_post("/open-apis/im/v1/messages", self._send)
        app.router.add_patch("/open-apis/im/v1/messages/{mid}", self._patch)
        app.router.add_get("/open-apis/im/v1/messages/{mid}", self._get_tree)
        app.router.add_get("/open-apis/im/v1/messages/{mid}/resources/{key}", self._resource)
        app.router.add_post("/open-apis/interactive/v1/card/update", self._delayed_update)
        app.router.add_post("/open-apis/im/v1/images", self._upload_image)
        return app

    async def start(self) -> TestServer:
        self.server = TestServer(self.app(), host="127.0.0.1")
        await self.server.start_server()
        return self.server

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if self.down:
            return web.Response(status=502, text="<html>bad gateway</html>", content_type="text/html")
        for failure in self.failures:
            if failure.times > 0 and failure.fragment in request.path:
                failure.times -= 1
                return web.json_response(failure.body, status=failure.status, headers=failure.headers)
        if not request.path.endswith("tenant_access_token/internal"):
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
                return web.json_response({"code": 99991663, "msg": "Invalid access token for authorization"}, status=400)
        return await handler(request)

    async def _token(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("app_id") != APP_ID or body.get("app_secret") != APP_SECRET:
            return web.json_response({"code": 10014, "msg": "app secret invalid"})
        self.token_fetches += 1
        token = f"t-{uuid.uuid4().hex[:12]}"
        self.tokens.add(token)
        return web.json_response({"code": 0, "msg": "ok", "tenant_access_token": token, "expire": 7200})

    async def _send(self, request: web.Request) -> web.Response:
        if request.query.get("receive_id_type") != "open_id":
            return web.json_response({"code": 99992402, "msg": "field validation failed"}, status=400)
        body = await request.json()
        if body.get("msg_type") not in ("text", "interactive") or not isinstance(body.get("content"), str):
            return web.json_response({"code": 230001, "msg": "invalid message content"}, status=400)
        json.loads(body["content"])  # must be a JSON string, as Feishu requires
        if body.get("uuid") in self._uuids:
            return web.json_response({"code": 0, "data": {"message_id": self._uuids[body["uuid"]]}})
        mid = f"om_{next(self._ids):06d}"
        self.messages[mid] = {"receive_id": body["receive_id"], "msg_type": body["msg_type"], "content": body["content"]}
        self.sent.append({"message_id": mid, **body})
        if body.get("uuid"):
            self._uuids[body["uuid"]] = mid
        return web.json_response({"code": 0, "msg": "success", "data": {"message_id": mid}})

    async def _patch(self, request: web.Request) -> web.Response:
        mid = request.match_info["mid"]
        body = await request.json()
        if mid not in self.messages:
            return web.json_response({"code": 230011, "msg": "message not found"}, status=400)
        self.messages[mid]["content"] = body["content"]
        self.patches.append((mid, json.loads(body["content"])))
        return web.json_response({"code": 0, "msg": "success", "data": {}})

    async def _delayed_update(self, request: web.Request) -> web.Response:
        body = await request.json()
        token = body.get("token")
        uses = self.callback_token_uses.get(token, 0)
        if not token or uses >= 2:
            return web.json_response({"code": 200640, "msg": "token invalid or used"}, status=400)
        self.callback_token_uses[token] = uses + 1
        self.delayed_updates.append((token, body["card"]))
        # Feishu applies it to the message the callback came from.
        mid = self._callback_messages.get(token)
        if mid:
            self.messages[mid]["content"] = json.dumps(body["card"], ensure_ascii=False)
        return web.json_response({"code": 0, "msg": "success", "data": {}})

    async def _upload_image(self, request: web.Request) -> web.Response:
        """``im/v1/images``: multipart ``image_type`` + ``image`` (≤ 10 MB) → ``image_key``."""
        form = await request.post()
        image = form.get("image")
        if form.get("image_type") not in ("message", "avatar") or image is None or isinstance(image, str):
            return web.json_response({"code": 234001, "msg": "Invalid request param."}, status=400)
        data = image.file.read()
        if len(data) > 10 * 1024 * 1024:
            return web.json_response({"code": 234006, "msg": "The file size exceed the max value."}, status=400)
        key = f"img_v3_{next(self._ids):04d}"
        self.images[key] = data
        return web.json_response({"code": 0, "msg": "success", "data": {"image_key": key}})

    def issue_callback_token(self, message_id: str) -> str:
        """A card-callback token bound to ``message_id`` (what Feishu puts in event.token)."""
        token = f"c-{uuid.uuid4().hex[:16]}"
        self._callback_messages[token] = message_id
        return token

    async def _get_tree(self, request: web.Request) -> web.Response:
        mid = request.match_info["mid"]
        items = self.trees.get(mid)
        if items is None:
            return web.json_response({"code": 230011, "msg": "message not found"}, status=400)
        return web.json_response({"code": 0, "data": {"items": items, "has_more": False}})

    async def _resource(self, request: web.Request) -> web.StreamResponse:
        data = self.resources.get((request.match_info["mid"], request.match_info["key"]))
        if data is None:
            return web.json_response({"code": 234003, "msg": "file not found"}, status=400)
        return web.Response(body=data, content_type="application/octet-stream")


class FeishuSender:
    """Builds the HTTP requests Feishu sends to ``/callback/feishu``."""

    def __init__(self, encrypt_key: str | None = ENCRYPT_KEY, token: str = VERIFICATION_TOKEN) -> None:
        self.encrypt_key = encrypt_key
        self.token = token
        self._n = itertools.count(1)

    def envelope(self, event_type: str, event: dict[str, Any], *, event_id: str | None = None, create_ms: int = 0) -> dict[str, Any]:
        return {
            "schema": "2.0",
            "header": {"event_id": event_id or f"ev-{uuid.uuid4().hex}", "event_type": event_type, "create_time": str(create_ms),
                       "token": self.token, "app_id": APP_ID, "tenant_key": "tenant-1"},
            "event": event,
        }

    def request(self, payload: dict[str, Any], now_s: int, *, sign: bool = True, nonce: str | None = None) -> tuple[bytes, dict[str, str]]:
        """Body bytes and headers for ``payload`` at Unix time ``now_s``."""
        text = json.dumps(payload, ensure_ascii=False)
        if self.encrypt_key is None:
            return text.encode(), {"Content-Type": "application/json"}
        body = json.dumps({"encrypt": FeishuCrypto(self.encrypt_key).encrypt(text)}).encode()
        headers = {"Content-Type": "application/json"}
        if sign:
            ts, nn = str(now_s), nonce or f"n{next(self._n)}"
            headers.update({
                "X-Lark-Request-Timestamp": ts, "X-Lark-Request-Nonce": nn,
                "X-Lark-Signature": feishu_signature(ts, nn, self.encrypt_key, body),
            })
        return body, headers

    def text_message(self, open_id: str, text: str, *, message_id: str | None = None, mentions: list[dict[str, Any]] | None = None,
                     msg_type: str = "text", content: dict[str, Any] | None = None, event_id: str | None = None) -> dict[str, Any]:
        event = {
            "sender": {"sender_id": {"open_id": open_id, "user_id": None, "union_id": "on_x"}, "sender_type": "user", "tenant_key": "tenant-1"},
            "message": {
                "message_id": message_id or f"om_in_{uuid.uuid4().hex[:10]}", "create_time": "1773108000000",
                "chat_id": f"oc_{open_id}", "chat_type": "p2p", "message_type": msg_type,
                "content": json.dumps(content if content is not None else {"text": text}, ensure_ascii=False),
                "mentions": mentions or [],
            },
        }
        return self.envelope("im.message.receive_v1", event, event_id=event_id)

    def card_click(self, open_id: str, value: dict[str, Any], *, message_id: str, token: str = "", event_id: str | None = None) -> dict[str, Any]:
        event = {
            "operator": {"open_id": open_id, "tenant_key": "tenant-1"},
            "token": token,
            "action": {"value": value, "tag": "button"},
            "host": "im_message",
            "context": {"open_message_id": message_id, "open_chat_id": f"oc_{open_id}"},
        }
        return self.envelope("card.action.trigger", event, event_id=event_id)


def settings_with_platform_ids(db_url: str, tmp_path: Any, extra: str, ids: dict[str, dict[str, str]]) -> Any:
    """The conftest template organisation with platform ids added to members, plus ``extra`` TOML.

    ``ids`` maps a member id to its extra keys, e.g. ``{"zhangwei": {"feishu_open_id": "ou_zw"}}``.
    """
    import re

    from bot.config import parse
    from tests.conftest import TEMPLATE

    def add(match: re.Match[str]) -> str:
        extra_keys = ids.get(match.group(1), {})
        return match.group(0) + "".join(f'\n{k} = "{v}"' for k, v in extra_keys.items())

    text = re.sub(r'^id = "([a-z]+)"$', add, TEMPLATE, flags=re.MULTILINE)
    text = text.replace('secret = ""', 'secret = "test-secret-0123456789"', 1) + extra
    return parse(text, str(tmp_path / "leadbot.toml"), {"LEADBOT_DATABASE_URL": db_url})


REPS = ("admin", "chenjing", "huangwei", "zhaolei", "zhangwei", "lina", "wangqiang", "liuyang", "zhoumin", "wujie", "sunli", "mahao")


def feishu_ids() -> dict[str, dict[str, str]]:
    """Every member gets an open_id ``ou_<member>``."""
    return {m: {"feishu_open_id": f"ou_{m}"} for m in REPS}


def feishu_toml(api_base: str, *, encrypt: bool = True, schema: str = "2.0") -> str:
    lines = [
        "\n[platforms.feishu]", "enabled = true", f'app_id = "{APP_ID}"', f'app_secret = "{APP_SECRET}"',
        f'verification_token = "{VERIFICATION_TOKEN}"', f'api_base = "{api_base}"', f'card_schema = "{schema}"',
    ]
    if encrypt:
        lines.append(f'encrypt_key = "{ENCRYPT_KEY}"')
    return "\n".join(lines) + "\n"
