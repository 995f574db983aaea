"""A fake WeCom: the server APIs we call (aiohttp TestServer) and the callbacks WeCom posts.

* :class:`FakeWeComApi` serves ``gettoken``, ``message/send``, ``message/update_template_card``
  and ``media/get`` in the real wire format, with injectable failures (HTTP 5xx, 45009,
  42001, slow answers), token expiry, per-member silent dropping past 30/min (as WeCom
  does), ``enable_duplicate_check`` and single-use ``response_code``.
* :class:`WeComCallbacks` builds encrypted callbacks with **wechatpy's** crypto (interop:
  what our server accepts is what a third-party implementation produces).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from wechatpy.enterprise.crypto import WeChatCrypto

from bot.app import create_app
from bot.config import Settings, parse
from bot.gateway import Gateway
from bot.keys import GATEWAY
from handlers.context import FakeClock

CORP_ID = "ww1436e0e65a779aee"
AGENT_ID = 1000002
SECRET = "app-secret-for-tests"
TOKEN = "QDG6eK"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"

# The [platforms.wecom] section for make_settings(extra=...); api_base is filled in.
SECTION = """
[platforms.wecom]
enabled = true
corp_id = "{corp}"
agent_id = {agent}
secret = "{secret}"
token = "{token}"
encoding_aes_key = "{key}"
api_base = "{base}"
timeout_s = 0.5
"""

# Members of the template organisation and their WeCom userids in these tests.
USERIDS = {"zhangwei": "ZhangWei", "lina": "LiNa", "wangqiang": "WangQiang", "chenjing": "ChenJing"}


def with_wecom_userids(template: str, userids: dict[str, str] = USERIDS) -> str:
    """``template`` with ``wecom_userid = "..."`` added under the chosen ``[[members]]``."""
    out = template
    for member, userid in userids.items():
        marker = f'id = "{member}"\n'
        assert marker in out, member
        out = out.replace(marker, f'{marker}wecom_userid = "{userid}"\n', 1)
    return out


def section(base_url: str) -> str:
    """The config section pointing at a fake server."""
    return SECTION.format(corp=CORP_ID, agent=AGENT_ID, secret=SECRET, token=TOKEN, key=AES_KEY, base=base_url.rstrip("/"))


@dataclass
class Sent:
    """One message the fake accepted."""

    touser: str
    msgtype: str
    body: dict[str, Any]
    response_code: str = ""


@dataclass
class FakeWeComApi:
    """State and failure injection of the fake WeCom server."""

    clock: FakeClock
    token_lifetime: int = 7200
    failures: list[Any] = field(default_factory=list)  # consumed one per send/update call: 500, 45009, 42001, "slow"
    outage: bool = False  # every send/update answers HTTP 503 while True
    slow_seconds: float = 1.0
    token_calls: int = 0
    sent: list[Sent] = field(default_factory=list)
    dropped: list[Sent] = field(default_factory=list)  # silently dropped (rate limit / duplicate check)
    updates: list[dict[str, Any]] = field(default_factory=list)
    media: dict[str, bytes] = field(default_factory=dict)
    send_attempts: int = 0
    # media/upload (charts): what was uploaded, as (media_id, type, bytes), and its own failures
    uploads: list[tuple[str, str, bytes]] = field(default_factory=list)
    upload_failures: list[Any] = field(default_factory=list)  # consumed one per upload: 500, 45009, 40004

    def __post_init__(self) -> None:
        self._tokens: dict[str, datetime] = {}
        self._codes: dict[str, bool] = {}  # response_code -> used
        self._code_seq = itertools.count(1)
        self._member_times: dict[str, list[float]] = {}
        self.server: TestServer | None = None

    # ---------------------------------------------------------------- helpers for tests
    def issue_code(self) -> str:
        """A fresh response_code (as a click callback brings)."""
        code = f"rc{next(self._code_seq)}"
        self._codes[code] = False
        return code

    def expire_tokens(self) -> None:
        """Every issued token stops working now (as after 2 h idle)."""
        for tok in self._tokens:
            self._tokens[tok] = self.clock.now()

    def to(self, userid: str) -> list[Sent]:
        """Everything delivered to ``userid`` (texts, markdown, cards)."""
        return [s for s in self.sent if s.touser == userid]

    def cards_to(self, userid: str) -> list[Sent]:
        return [s for s in self.sent if s.touser == userid and s.msgtype == "template_card"]

    def texts_to(self, userid: str) -> list[str]:
        out = []
        for s in self.sent:
            if s.touser != userid:
                continue
            if s.msgtype == "text":
                out.append(s.body["text"]["content"])
            elif s.msgtype == "markdown":
                out.append(s.body["markdown"]["content"])
        return out

    # ---------------------------------------------------------------- server
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/cgi-bin/gettoken", self._gettoken)
        app.router.add_post("/cgi-bin/message/send", self._send)
        app.router.add_post("/cgi-bin/message/update_template_card", self._update)
        app.router.add_get("/cgi-bin/media/get", self._media)
        app.router.add_post("/cgi-bin/media/upload", self._upload)
        return app

    async def start(self) -> TestServer:
        self.server = TestServer(self.app())
        await self.server.start_server()
        return self.server

    def base_url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    async def _gettoken(self, request: web.Request) -> web.Response:
        self.token_calls += 1
        await asyncio.sleep(0.01)  # a real round trip, so concurrent callers overlap
        if request.query.get("corpid") != CORP_ID or request.query.get("corpsecret") != SECRET:
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        tok = f"TOKEN{self.token_calls}"
        self._tokens[tok] = self.clock.now() + timedelta(seconds=self.token_lifetime)
        return web.json_response({"errcode": 0, "errmsg": "ok", "access_token": tok, "expires_in": self.token_lifetime})

    def _token_error(self, request: web.Request) -> dict[str, Any] | None:
        tok = request.query.get("access_token", "")
        if tok not in self._tokens:
            return {"errcode": 40014, "errmsg": "invalid access_token"}
        if self._tokens[tok] <= self.clock.now():
            return {"errcode": 42001, "errmsg": "access_token expired"}
        return None

    async def _injected(self) -> web.Response | None:
        if self.outage:
            return web.Response(status=503, text="service unavailable")
        if not self.failures:
            return None
        failure = self.failures.pop(0)
        if failure == "slow":
            await asyncio.sleep(self.slow_seconds)
            return None
        if isinstance(failure, int) and 500 <= failure < 600:
            return web.Response(status=failure, text="upstream error")
        if failure == 42001:
            self.expire_tokens()
            return None
        return web.json_response({"errcode": failure, "errmsg": "injected"})

    async def _send(self, request: web.Request) -> web.Response:
        self.send_attempts += 1
        injected = await self._injected()
        if injected is not None:
            return injected
        err = self._token_error(request)
        if err:
            return web.json_response(err)
        body = await request.json()
        if body.get("agentid") != AGENT_ID:
            return web.json_response({"errcode": 40056, "errmsg": "invalid agentid"})
        msgtype = body["msgtype"]
        sent = Sent(body["touser"], msgtype, body)
        now = self.clock.now().timestamp()
        times = [t for t in self._member_times.get(body["touser"], []) if now - t < 60]
        times.append(now)
        self._member_times[body["touser"]] = times
        if body.get("enable_duplicate_check") and any(
            s.touser == sent.touser and json.dumps(s.body.get(msgtype), sort_keys=True) == json.dumps(body.get(msgtype), sort_keys=True)
            for s in self.sent
        ):
            self.dropped.append(sent)  # WeCom answers ok and does not deliver the copy
            return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": "dup"})
        if msgtype == "template_card":
            task_id = body["template_card"]["task_id"]
            if any(s.msgtype == "template_card" and s.body["template_card"]["task_id"] == task_id for s in self.sent):
                return web.json_response({"errcode": 40058, "errmsg": "task_id exist"})
            sent.response_code = self.issue_code()
        if len(times) > 30:
            self.dropped.append(sent)  # past 30/min per member: silently not delivered
        else:
            self.sent.append(sent)
        out: dict[str, Any] = {"errcode": 0, "errmsg": "ok", "msgid": f"m{len(self.sent)}"}
        if sent.response_code:
            out["response_code"] = sent.response_code
        return web.json_response(out)

    async def _update(self, request: web.Request) -> web.Response:
        injected = await self._injected()
        if injected is not None:
            return injected
        err = self._token_error(request)
        if err:
            return web.json_response(err)
        body = await request.json()
        code = body.get("response_code", "")
        if code not in self._codes or self._codes[code]:
            return web.json_response({"errcode": 40098, "errmsg": "invalid response_code"})
        self._codes[code] = True
        self.updates.append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    def images_to(self, userid: str) -> list[str]:
        """media_ids of the ``image`` messages delivered to ``userid``."""
        return [s.body["image"]["media_id"] for s in self.sent if s.touser == userid and s.msgtype == "image"]

    async def _upload(self, request: web.Request) -> web.Response:
        """``media/upload``: multipart field ``media``; images ≤ 2 MB, JPG/PNG."""
        if self.upload_failures:
            failure = self.upload_failures.pop(0)
            if isinstance(failure, int) and 500 <= failure < 600:
                return web.Response(status=failure, text="upstream error")
            return web.json_response({"errcode": failure, "errmsg": "injected"})
        err = self._token_error(request)
        if err:
            return web.json_response(err)
        kind = request.query.get("type", "")
        form = await request.post()
        media = form.get("media")
        if kind not in ("image", "voice", "video", "file") or media is None or isinstance(media, str):
            return web.json_response({"errcode": 40004, "errmsg": "invalid media type"})
        data = media.file.read()
        if kind == "image" and len(data) > 2 * 1024 * 1024:
            return web.json_response({"errcode": 40009, "errmsg": "invalid image size"})
        media_id = f"3media{len(self.uploads) + 1}"
        self.uploads.append((media_id, kind, data))
        return web.json_response({"errcode": 0, "errmsg": "", "type": kind, "media_id": media_id, "created_at": "1380000000"})

    async def _media(self, request: web.Request) -> web.Response:
        injected = await self._injected()
        if injected is not None:
            return injected
        err = self._token_error(request)
        if err:
            return web.json_response(err)
        data = self.media.get(request.query.get("media_id", ""))
        if data is None:
            return web.json_response({"errcode": 40007, "errmsg": "invalid media_id"})
        return web.Response(body=data, content_type="audio/amr")


class WeComCallbacks:
    """Builds what WeCom posts to ``/callback/wecom``, encrypted with wechatpy."""

    def __init__(self, clock: FakeClock, *, token: str = TOKEN, key: str = AES_KEY, corp_id: str = CORP_ID) -> None:
        self.clock = clock
        self.crypto = WeChatCrypto(token, key, corp_id)
        self._nonce = itertools.count(1_000_000)
        self._msg_id = itertools.count(7_300_000_000_000_000_001)

    def now_s(self) -> int:
        return int(self.clock.now().timestamp())

    def encrypt(self, inner_xml: str, *, timestamp: int | None = None, nonce: str | None = None) -> tuple[str, bytes]:
        """(query string, POST body) for ``inner_xml``."""
        ts = str(timestamp if timestamp is not None else self.now_s())
        nonce = nonce or str(next(self._nonce))
        envelope = self.crypto.encrypt_message(inner_xml, nonce, ts)
        # wechatpy returns the passive-reply envelope; WeCom's POST carries Encrypt in the body
        # and the signature in the query.
        root = ElementTree.fromstring(envelope)
        encrypt = root.findtext("Encrypt") or ""
        signature = root.findtext("MsgSignature") or ""
        body = (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt>"
                f"<AgentID><![CDATA[{AGENT_ID}]]></AgentID></xml>").encode()
        query = urlencode({"msg_signature": signature, "timestamp": ts, "nonce": nonce})
        return query, body

    def text(self, user: str, content: str, *, msg_id: int | None = None) -> str:
        mid = msg_id if msg_id is not None else next(self._msg_id)
        return (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
                f"<CreateTime>{self.now_s()}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                f"<Content><![CDATA[{content}]]></Content><MsgId>{mid}</MsgId><AgentID>{AGENT_ID}</AgentID></xml>")

    def voice(self, user: str, media_id: str) -> str:
        return (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
                f"<CreateTime>{self.now_s()}</CreateTime><MsgType><![CDATA[voice]]></MsgType>"
                f"<MediaId><![CDATA[{media_id}]]></MediaId><Format><![CDATA[amr]]></Format>"
                f"<MsgId>{next(self._msg_id)}</MsgId><AgentID>{AGENT_ID}</AgentID></xml>")

    def image(self, user: str) -> str:
        return (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
                f"<CreateTime>{self.now_s()}</CreateTime><MsgType><![CDATA[image]]></MsgType>"
                f"<PicUrl><![CDATA[http://127.0.0.1/pic.jpg]]></PicUrl><MediaId><![CDATA[img1]]></MediaId>"
                f"<MsgId>{next(self._msg_id)}</MsgId><AgentID>{AGENT_ID}</AgentID></xml>")

    def event(self, user: str, event: str, key: str = "", *, create_time: int | None = None) -> str:
        return (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
                f"<CreateTime>{create_time or self.now_s()}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
                f"<Event><![CDATA[{event}]]></Event><EventKey><![CDATA[{escape(key)}]]></EventKey>"
                f"<AgentID>{AGENT_ID}</AgentID></xml>")

    def card_click(self, user: str, task_id: str, key: str, response_code: str, *, create_time: int | None = None) -> str:
        return (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
                f"<CreateTime>{create_time or self.now_s()}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
                f"<Event><![CDATA[template_card_event]]></Event><EventKey><![CDATA[{key}]]></EventKey>"
                f"<TaskId><![CDATA[{task_id}]]></TaskId><CardType><![CDATA[button_interaction]]></CardType>"
                f"<ResponseCode><![CDATA[{response_code}]]></ResponseCode><AgentID>{AGENT_ID}</AgentID>"
                f"<SelectedItems></SelectedItems></xml>")

    def verify_url(self, echo: str) -> str:
        """The query of a GET URL verification whose echostr decrypts to ``echo``."""
        ts, nonce = str(self.now_s()), str(next(self._nonce))
        root = ElementTree.fromstring(self.crypto.encrypt_message(echo, nonce, ts))
        return urlencode({"msg_signature": root.findtext("MsgSignature"), "timestamp": ts, "nonce": nonce, "echostr": root.findtext("Encrypt")})


# --------------------------------------------------------------------------- app harness



def wecom_settings(db_url: str, tmp_path: Any, base_url: str) -> Settings:
    """The template organisation with WeCom userids and [platforms.wecom] pointing at ``base_url``."""
    from tests.conftest import TEMPLATE

    text = with_wecom_userids(TEMPLATE).replace('secret = ""', 'secret = "test-secret-0123456789"', 1) + section(base_url)
    return parse(text, str(tmp_path / "leadbot.toml"), {"LEADBOT_DATABASE_URL": db_url})


class WeComHarness:
    """The real app with WeCom enabled, a fake WeCom API, and a callback builder."""

    def __init__(self, client: Any, api: FakeWeComApi, callbacks: WeComCallbacks) -> None:
        self.client = client
        self.api = api
        self.cb = callbacks

    @property
    def gateway(self) -> Gateway:
        return self.client.app[GATEWAY]

    @property
    def adapter(self) -> Any:
        return self.gateway.adapters["wecom"]

    async def post(self, inner_xml: str, **kw: Any) -> Any:
        query, body = self.cb.encrypt(inner_xml, **kw)
        return await self.client.post(f"/callback/wecom?{query}", data=body, headers={"Content-Type": "text/xml"})

    async def post_raw(self, query: str, body: bytes) -> Any:
        return await self.client.post(f"/callback/wecom?{query}", data=body)

    async def drain(self) -> None:
        await self.gateway.drain()

    async def post_lead(self, **fields: Any) -> dict[str, Any]:
        resp = await self.client.post("/api/leads", json=fields)
        assert resp.status == 201, await resp.text()
        body: dict[str, Any] = await resp.json()
        await self.drain()
        return body


@pytest.fixture(name="wecom")
async def wecom_harness(aiohttp_client: Any, db_url: str, tmp_path: Any, clock: FakeClock) -> Any:
    """A :class:`WeComHarness` on a fresh database."""
    api = FakeWeComApi(clock)
    await api.start()
    settings = wecom_settings(db_url, tmp_path, api.base_url())
    app = create_app(settings, clock=clock, start_workers=False)
    client = await aiohttp_client(app)
    client.app[GATEWAY].inline_answer_seconds = 0.0
    yield WeComHarness(client, api, WeComCallbacks(clock))
    assert api.server is not None
    await api.server.close()
