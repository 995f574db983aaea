"""WeCom inbound: URL verification, verified + decrypted callbacks into the inbox, rejections."""

from __future__ import annotations

import base64
import logging
from datetime import UTC
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from sqlalchemy import func, select
from wechatpy.enterprise.crypto import WeChatCrypto

from bot.app import create_app
from bot.crypto import wecom_signature
from bot.keys import GATEWAY
from bot.wecom import parse_chat_record
from handlers.events import InboundEvent
from store.models import InboxEvent
from tests.wecom_fakes import (
    AES_KEY,
    CORP_ID,
    SECRET,
    TOKEN,
    USERIDS,
    WeComHarness,
    wecom_harness,  # noqa: F401  (the ``wecom`` fixture)
    wecom_settings,
)

ZW = USERIDS["zhangwei"]


async def _inbox(h: WeComHarness) -> list[InboxEvent]:
    return await h.gateway.db.run(lambda s: list(s.execute(select(InboxEvent).order_by(InboxEvent.id)).scalars()))


async def test_url_verification_answers_the_decrypted_echostr(wecom: WeComHarness) -> None:
    resp = await wecom.client.get(f"/callback/wecom?{wecom.cb.verify_url('1616140317555161061')}")
    assert resp.status == 200
    assert await resp.text() == "1616140317555161061"


async def test_url_verification_with_forged_signature_is_403(wecom: WeComHarness) -> None:
    query = wecom.cb.verify_url("echo").replace("msg_signature=", "msg_signature=0")
    resp = await wecom.client.get(f"/callback/wecom?{query}")
    assert resp.status == 403


async def test_text_message_lands_in_inbox_before_the_empty_ack(wecom: WeComHarness) -> None:
    resp = await wecom.post(wecom.cb.text(ZW, "张总确认下周三看产线，预算50万", msg_id=42))
    assert resp.status == 200 and await resp.text() == ""
    rows = await _inbox(wecom)
    assert [(r.platform, r.event_key, r.status) for r in rows] == [("wecom", f"msg:{ZW}:42", "pending")]
    event = InboundEvent.from_json(rows[0].payload)
    assert (event.kind, event.platform_user, event.text) == ("text", ZW, "张总确认下周三看产线，预算50万")
    await wecom.drain()
    assert (await _inbox(wecom))[0].status == "done"
    assert wecom.api.to(ZW), "the answer to the note goes back over WeCom"


async def test_retries_are_acknowledged_and_dropped(wecom: WeComHarness) -> None:
    inner = wecom.cb.text(ZW, "你好", msg_id=7)
    query, body = wecom.cb.encrypt(inner)
    for _ in range(3):  # WeCom's identical retry
        resp = await wecom.post_raw(query, body)
        assert resp.status == 200 and await resp.text() == ""
    # A redelivery with a new nonce/signature but the same MsgId.
    resp = await wecom.post(inner)
    assert resp.status == 200
    assert len(await _inbox(wecom)) == 1
    await wecom.drain()
    assert len(wecom.api.to(ZW)) == 1


def _bad_padding_body(h: WeComHarness) -> tuple[str, bytes]:
    key = base64.b64decode(AES_KEY + "=")
    plain = b"0123456789abcdef" + (5).to_bytes(4, "big") + b"hello" + CORP_ID.encode()
    plain += bytes([0]) * (32 - len(plain) % 32)  # zero bytes are not PKCS#7
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    encrypt = base64.b64encode(enc.update(plain) + enc.finalize()).decode()
    ts, nonce = str(h.cb.now_s()), "123"
    query = urlencode({"msg_signature": wecom_signature(TOKEN, ts, nonce, encrypt), "timestamp": ts, "nonce": nonce})
    return query, f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()


async def test_rejections_are_4xx_with_one_log_line_and_nothing_stored(wecom: WeComHarness, caplog: Any) -> None:
    good_q, good_b = wecom.cb.encrypt(wecom.cb.text(ZW, "正常消息"))
    forged_q = good_q.replace("msg_signature=", "msg_signature=f")
    other_corp = WeChatCrypto(TOKEN, AES_KEY, "wwOTHERCORP000000")
    envelope = other_corp.encrypt_message(wecom.cb.text(ZW, "x"), "99", str(wecom.cb.now_s()))
    import xml.etree.ElementTree as ET

    root = ET.fromstring(envelope)
    wrong_corp = (urlencode({"msg_signature": root.findtext("MsgSignature"), "timestamp": str(wecom.cb.now_s()), "nonce": "99"}),
                  f"<xml><Encrypt><![CDATA[{root.findtext('Encrypt')}]]></Encrypt></xml>".encode())
    stale = wecom.cb.encrypt(wecom.cb.text(ZW, "旧消息"), timestamp=wecom.cb.now_s() - 301)
    future = wecom.cb.encrypt(wecom.cb.text(ZW, "未来"), timestamp=wecom.cb.now_s() + 301)
    cases: list[tuple[str, tuple[str, bytes], int]] = [
        ("forged signature", (forged_q, good_b), 403),
        ("wrong corp id", wrong_corp, 400),
        ("stale timestamp", stale, 400),
        ("future timestamp", future, 400),
        ("bad padding", _bad_padding_body(wecom), 400),
        ("garbage body", (good_q, b"\x00\xffnot xml at all"), 400),
        ("entity expansion", (good_q, b'<!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Encrypt>&a;</Encrypt></xml>'), 400),
        ("missing params", ("", good_b), 400),
        ("empty body", (good_q, b""), 400),
    ]
    for name, (query, body), status in cases:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="leadbot"):
            resp = await wecom.post_raw(query, body)
        assert resp.status == status, (name, resp.status, await resp.text())
        lines = [r for r in caplog.records if r.name.startswith("leadbot")]
        assert len(lines) == 1, (name, [r.getMessage() for r in lines])
        text = lines[0].getMessage()
        for secret in (TOKEN, AES_KEY, SECRET):
            assert secret not in text
    assert await _inbox(wecom) == []
    # The legitimate request still works afterwards (rejections did not poison the replay cache).
    resp = await wecom.post_raw(good_q, good_b)
    assert resp.status == 200 and len(await _inbox(wecom)) == 1


async def test_tampered_button_key_is_refused_at_the_edge(wecom: WeComHarness) -> None:
    resp = await wecom.post(wecom.cb.card_click(ZW, "abcdef0123456789", "accept:abcdef0123456789:1:0000000000000000dead", "rc-x"))
    assert resp.status == 400
    assert await _inbox(wecom) == []


async def test_other_events_are_acknowledged_and_not_stored(wecom: WeComHarness) -> None:
    resp = await wecom.post(wecom.cb.event(ZW, "enter_agent"))
    assert resp.status == 200
    assert await _inbox(wecom) == []


async def test_image_is_stored_as_a_file_event(wecom: WeComHarness) -> None:
    assert (await wecom.post(wecom.cb.image(ZW))).status == 200
    event = InboundEvent.from_json((await _inbox(wecom))[0].payload)
    assert (event.kind, event.file_ref, event.extra["msg_type"]) == ("file", "img1", "image")


async def test_voice_without_asr_asks_politely_for_the_transcribe_feature(wecom: WeComHarness) -> None:
    assert (await wecom.post(wecom.cb.voice(ZW, "media-1"))).status == 200
    event = InboundEvent.from_json((await _inbox(wecom))[0].payload)
    assert (event.kind, event.file_ref, event.text) == ("voice", "media-1", "")
    await wecom.drain()
    reply = wecom.api.texts_to(ZW)[-1]
    assert "转文字" in reply


class FakeAsr:
    name = "fake-asr"
    budget_s = 2.0

    def __init__(self) -> None:
        self.heard: list[tuple[bytes, str]] = []

    async def transcribe(self, audio: bytes, fmt: str) -> str | None:
        self.heard.append((audio, fmt))
        return "王总说下周二来厂里看样机"


async def test_voice_with_a_plugged_asr_fetches_the_amr_and_stores_the_transcript(wecom: WeComHarness) -> None:
    asr = FakeAsr()
    wecom.adapter.speech = asr
    wecom.api.media["media-2"] = b"#!AMR\n\x00\x01"
    wecom.api.expire_tokens()  # media/get also survives an expired token
    assert (await wecom.post(wecom.cb.voice(ZW, "media-2"))).status == 200
    assert asr.heard == [(b"#!AMR\n\x00\x01", "amr")]
    event = InboundEvent.from_json((await _inbox(wecom))[0].payload)
    assert (event.kind, event.text, event.extra["asr"]) == ("voice", "王总说下周二来厂里看样机", "fake-asr")


async def test_pasted_wecom_chat_record_becomes_a_forward(wecom: WeComHarness) -> None:
    record = "王建国 2026/3/9 16:02\n样机什么时候能到？\n张伟 16:05\n下周二送到，顺便看产线\n王建国 16:06\n好的，预算50万以内"
    assert (await wecom.post(wecom.cb.text(ZW, record))).status == 200
    event = InboundEvent.from_json((await _inbox(wecom))[0].payload)
    assert event.kind == "forward"
    assert [(c.speaker, c.text, c.sent_at) for c in event.chat_record] == [
        ("王建国", "样机什么时候能到？", "2026/3/9 16:02"),
        ("张伟", "下周二送到，顺便看产线", "16:05"),
        ("王建国", "好的，预算50万以内", "16:06"),
    ]


def test_chat_record_recognition_is_strict() -> None:
    assert parse_chat_record("张总确认下周三看产线") == ()
    assert parse_chat_record("明天 10:00\n") == ()
    assert parse_chat_record("会议 10:00\n\n张伟 10:05") == ()  # a header without content
    assert parse_chat_record("张总说：下周 10:30 见\n好的") == ()
    assert len(parse_chat_record("李娜 2026-03-09 09:14:33\n收到\n多行内容\n")) == 1


async def test_acknowledged_messages_survive_a_restart_and_are_handled_once(
    aiohttp_client: Any, db_url: str, tmp_path: Any, clock: Any, wecom: WeComHarness
) -> None:
    for i in range(3):
        assert (await wecom.post(wecom.cb.text(ZW, f"第{i}条跟进：客户要报价", msg_id=100 + i))).status == 200
    # The process dies before handling anything (nothing drained); a new one starts on the same database.
    await wecom.client.close()
    settings = wecom_settings(db_url, tmp_path, wecom.api.base_url())
    second = await aiohttp_client(create_app(settings, clock=clock, start_workers=False))
    await second.app[GATEWAY].drain()
    await second.app[GATEWAY].drain()
    rows = await second.app[GATEWAY].db.run(lambda s: list(s.execute(select(InboxEvent.status, func.count()).group_by(InboxEvent.status)).all()))
    assert dict(rows) == {"done": 3}
    assert len(wecom.api.to(ZW)) == 3


SERVE = """
import sys, logging
sys.path.insert(0, {root!r})
from aiohttp import web
from bot.app import create_app
from bot.config import parse
from tests.conftest import TEMPLATE
from tests.wecom_fakes import section, with_wecom_userids
logging.disable(logging.WARNING)
text = with_wecom_userids(TEMPLATE).replace('secret = ""', 'secret = "test-secret-0123456789"', 1) + section({base!r})
settings = parse(text, {cfg!r}, {{"LEADBOT_DATABASE_URL": {db!r}}})
web.run_app(create_app(settings, start_workers=False), host="127.0.0.1", port={port}, print=None, access_log=None)
"""


async def test_kill_9_during_a_burst_loses_no_acknowledged_message(
    aiohttp_client: Any, db_url: str, tmp_path: Any, clock: Any, wecom: WeComHarness
) -> None:
    import asyncio
    import os
    import signal
    import socket
    import subprocess
    import sys
    from datetime import datetime
    from pathlib import Path

    import aiohttp

    from handlers.context import SystemClock
    from tests.wecom_fakes import WeComCallbacks

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = str(Path(__file__).resolve().parent.parent)
    code = SERVE.format(root=root, base=wecom.api.base_url(), cfg=str(tmp_path / "k.toml"), db=db_url, port=port)
    await wecom.client.close()  # the harness app steps aside; the subprocess owns the database now
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=root)
    real = WeComCallbacks(SystemClock())  # type: ignore[arg-type]
    requests = [real.encrypt(real.text(ZW, f"第{i}条：客户确认需求", msg_id=500 + i)) for i in range(60)]
    acked: set[int] = set()
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                        if r.status < 500:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)

            async def send(i: int) -> None:
                query, body = requests[i]
                try:
                    async with http.post(f"http://127.0.0.1:{port}/callback/wecom?{query}", data=body) as r:
                        if r.status == 200:
                            acked.add(i)
                except aiohttp.ClientError:
                    pass

            tasks = [asyncio.create_task(send(i)) for i in range(60)]
            while len(acked) < 20:
                await asyncio.sleep(0.001)
            os.kill(proc.pid, signal.SIGKILL)  # mid-burst
            await asyncio.gather(*tasks)
    finally:
        proc.kill()
        proc.wait()
    assert 20 <= len(acked)
    # Restart; WeCom retries everything it did not get a 200 for (and we resend all of it).
    clock.set(datetime.now(UTC))
    second = await aiohttp_client(create_app(wecom_settings(db_url, tmp_path, wecom.api.base_url()), clock=clock, start_workers=False))
    for query, body in requests:
        resp = await second.post(f"/callback/wecom?{query}", data=body)
        assert resp.status == 200
    await second.app[GATEWAY].drain()
    rows = await second.app[GATEWAY].db.run(lambda s: list(s.execute(select(InboxEvent.event_key, InboxEvent.status)).all()))
    keys = [k for k, _ in rows]
    assert len(keys) == len(set(keys)) == 60
    assert {st for _, st in rows} == {"done"}
    assert {f"msg:{ZW}:{500 + i}" for i in acked} <= set(keys)
    clock.advance(seconds=61)  # 60 replies to one member: WeCom's 30/min spreads them over two minutes
    await second.app[GATEWAY].drain()
    assert len(wecom.api.to(ZW)) == 60 and wecom.api.dropped == []  # one answer per message
