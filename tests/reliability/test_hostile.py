"""Hostile input against every HTTP endpoint, and authorisation of chat and buttons.

No 5xx, no hang, a short 4xx reason, and no secret in any log line."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.keys import GATEWAY
from store.models import InboxEvent, Lead
from tests import wecom_fakes as wc
from tests.conftest import JIANGSU_LEAD
from tests.wecom_fakes import WeComHarness, wecom_harness  # noqa: F401  (the ``wecom`` fixture)

SECRETS = (wc.SECRET, wc.AES_KEY, wc.TOKEN, "test-secret-0123456789")
POSTS = ("/callback/wecom", "/callback/wecom?msg_signature=x&timestamp=1&nonce=2", "/api/leads", "/sandbox/api/send", "/sandbox/api/action")
GETS = ("/callback/wecom", "/api/leads/1", "/api/leads/abc", "/healthz", "/metrics", "/sandbox/api/messages")
HOSTILE = st.one_of(
    st.binary(max_size=2048),
    st.text(max_size=500).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                 lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=30)
    .map(lambda v: __import__("json").dumps(v).encode()),
)


def _no_secrets(caplog: Any) -> None:
    for rec in caplog.records:
        line = rec.getMessage()
        assert not any(s in line for s in SECRETS), line


async def test_fuzzed_bodies_and_queries_never_5xx(wecom: WeComHarness, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(path=st.sampled_from(POSTS), body=HOSTILE, ctype=st.sampled_from(["text/xml", "application/json", "application/octet-stream"]))
    def run(path: str, body: bytes, ctype: str) -> None:
        async def one() -> None:
            resp = await asyncio.wait_for(wecom.client.post(path, data=body, headers={"Content-Type": ctype}), 5)
            assert resp.status < 500, (path, body[:80], resp.status, await resp.text())
            if resp.status >= 400:
                assert (await resp.text()).strip(), "a 4xx says why"
        results.append(one())

    results: list[Any] = []
    run()
    for coro in results:
        await coro
    for path in GETS:
        assert (await wecom.client.get(path, params={"user": "\udcff" if False else "x", "echostr": "%%%"})).status < 500
    _no_secrets(caplog)


async def test_forged_replayed_bombed_oversized_and_nested(wecom: WeComHarness, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    cb = wecom.cb
    # Forged signature.
    q, body = cb.encrypt(cb.text(wc.USERIDS["lina"], "帮助"))
    assert (await wecom.post_raw(q.replace("msg_signature=", "msg_signature=0"), body)).status == 403
    # Replay: the identical request again is refused (or dropped) and stored once.
    assert (await wecom.post_raw(q, body)).status == 200
    assert (await wecom.post_raw(q, body)).status in (200, 400, 403)
    # A timestamp ten minutes old.
    old = cb.now_s() - 600
    q2, body2 = cb.encrypt(cb.text(wc.USERIDS["lina"], "过期"), timestamp=old)
    resp = await wecom.post_raw(q2, body2)
    assert 400 <= resp.status < 500 and (await resp.text())
    # A billion-laughs bomb inside a correctly signed, encrypted body.
    bomb = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
            '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
            "<xml><FromUserName>LiNa</FromUserName><MsgType>text</MsgType><Content>&d;&d;&d;</Content><MsgId>1</MsgId></xml>")
    q3, body3 = cb.encrypt(bomb)
    resp = await asyncio.wait_for(wecom.post_raw(q3, body3), 5)
    assert 400 <= resp.status < 500
    # Oversized bodies.
    resp = await wecom.client.post("/callback/wecom?" + q, data=b"<xml>" + b"a" * (2 * 1024 * 1024) + b"</xml>")
    assert resp.status == 413
    assert (await wecom.client.post("/api/leads", data=b"{" * 3 * 1024 * 1024)).status == 413
    # Deeply nested JSON and invalid UTF-8 to the JSON API.
    for raw in (b"[" * 100_000 + b"]" * 100_000, b'{"company": "\xff\xfe"}', b'{"a":' * 5000 + b"1" + b"}" * 5000):
        resp = await wecom.client.post("/api/leads", data=raw, headers={"Content-Type": "application/json"})
        assert 400 <= resp.status < 500 and (await resp.text())
    count = await wecom.gateway.db.run(lambda s: s.execute(select(func.count()).select_from(InboxEvent)).scalar_one())
    assert count == 1
    _no_secrets(caplog)


async def test_formula_injection_is_stored_as_text_and_exported_inert(wecom: WeComHarness) -> None:
    lead = {**JIANGSU_LEAD, "company": "=HYPERLINK(\"http://evil\",\"点我\")", "contact": "+cmd|' /C calc'!A0", "note": "@SUM(1+1)*cmd|"}
    resp = await wecom.client.post("/api/leads", json=lead)
    assert resp.status in (201, 400, 422)
    if resp.status == 201:
        body = await resp.json()
        row = await wecom.gateway.db.run(lambda s: s.get(Lead, body["lead_id"]))
        assert row is not None
    # A chat command with a formula is a note or a refusal, never evaluated.
    resp = await wecom.post(wecom.cb.text(wc.USERIDS["lina"], "=1+1 报表 @A1"))
    assert resp.status == 200
    await wecom.drain()


async def test_rep_cannot_act_on_another_reps_card_or_forge_or_replay_a_button(wecom: WeComHarness) -> None:
    body = await wecom.post_lead(**JIANGSU_LEAD)
    owner = wc.USERIDS[body["owner"]]
    (card,) = wecom.api.cards_to(owner)
    tc = card.body["template_card"]
    accept = next(b["key"] for b in tc["button_list"] if b["text"] == "接受")
    other = next(u for m, u in wc.USERIDS.items() if m in ("zhangwei", "lina", "wangqiang") and u != owner)
    cb = wecom.cb
    # Another rep presses the owner's button: refused politely, nothing changes.
    await wecom.post(cb.card_click(other, tc["task_id"], accept, wecom.api.issue_code()))
    await wecom.drain()
    assert (await wecom.gateway.db.run(lambda s: s.get(Lead, body["lead_id"]))).status != "accepted"
    assert any("分配" in t for t in wecom.api.texts_to(other))
    # A forged payload (signature changed) and a payload invented for another verb.
    forged = accept[:-2] + ("00" if not accept.endswith("00") else "11")
    invented = accept.replace("accept", "invalid", 1)
    for key in (forged, invented):
        await wecom.post(cb.card_click(owner, tc["task_id"], key, wecom.api.issue_code()))
    await wecom.drain()
    assert (await wecom.gateway.db.run(lambda s: s.get(Lead, body["lead_id"]))).status not in ("accepted", "invalid")
    assert wecom.api.updates == []  # the card stays open: nothing was done on a forged payload
    # Accept, then replay the same click later (a fresh callback): no second state change.
    await wecom.post(cb.card_click(owner, tc["task_id"], accept, wecom.api.issue_code()))
    await wecom.drain()
    wecom.gateway.ctx.clock.advance(seconds=5)
    await wecom.post(cb.card_click(owner, tc["task_id"], accept, wecom.api.issue_code()))
    await wecom.drain()
    lead = await wecom.gateway.db.run(lambda s: s.get(Lead, body["lead_id"]))
    assert lead.status == "accepted"
    assert len(wecom.api.updates) == 1


async def test_rep_cannot_run_manager_commands_or_see_other_regions(wecom: WeComHarness) -> None:
    for text in ("报表", "团队看板 华南", "热力图"):
        await wecom.post(wecom.cb.text(wc.USERIDS["lina"], text))
    await wecom.drain()
    texts = wecom.api.texts_to(wc.USERIDS["lina"])
    assert len(texts) == 3 and all("只对区域经理和管理员开放" in t for t in texts)
    assert wecom.api.cards_to(wc.USERIDS["lina"]) == []
    # The East manager asking for the South region's board is refused or kept to East.
    await wecom.post(wecom.cb.text(wc.USERIDS["chenjing"], "团队看板 华南"))
    await wecom.drain()
    cards = wecom.api.cards_to(wc.USERIDS["chenjing"])
    texts = wecom.api.texts_to(wc.USERIDS["chenjing"])
    assert len(cards) + len(texts) == 1
    if cards:  # answered, but only about the manager's own region
        assert "华南" not in cards[0].body["template_card"]["main_title"]["title"]
