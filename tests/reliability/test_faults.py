"""Duplicates across platforms, a platform outage with pacing checks, and 100 people
pressing 接受 on one lead at once (in-process, deterministic clock)."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import create_app
from bot.gateway import Gateway
from bot.keys import GATEWAY
from handlers.context import FakeClock
from store.models import InboxEvent, Lead, OutboxMessage
from tests import feishu_fakes as fs
from tests import wecom_fakes as wc
from tests.conftest import JIANGSU_LEAD
from tests.test_platform_scenarios import DingTalkDriver, FeishuDriver, WeComDriver


async def _count(client: Any, model: Any, *where: Any) -> int:
    return int(await client.app[GATEWAY].db.run(lambda s: s.execute(select(func.count()).select_from(model).where(*where)).scalar_one()))


async def test_every_inbound_delivered_one_to_four_times_in_random_order_across_platforms(
    aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock
) -> None:
    drivers = [FeishuDriver(), DingTalkDriver(), WeComDriver()]
    for d in drivers:
        await d.start()
    try:
        ids: dict[str, dict[str, str]] = defaultdict(dict)
        for d in drivers:
            for m, extra in d.member_ids().items():
                ids[m].update(extra)
        settings = fs.settings_with_platform_ids(db_url, tmp_path, "".join(d.toml() for d in drivers), dict(ids))
        client = await aiohttp_client(create_app(settings, clock=clock, start_workers=False))
        client.app[GATEWAY].inline_answer_seconds = 0.0
        for d in drivers:
            d.client, d.clock = client, clock
        rng = random.Random(7)
        members = ("zhangwei", "lina", "wangqiang", "liuyang")
        sends = []
        distinct = 0
        for d in drivers:
            for m in members:
                for n in range(2):
                    distinct += 1
                    msg_id = f"{d.name}-{m}-{n}" if d.name != "wecom" else str(8_100_000 + distinct)
                    text = f"今天拜访了第{distinct}家客户，对方要报价"
                    sends += [(d, m, text, msg_id)] * rng.randint(1, 4)
        rng.shuffle(sends)
        # Copies arrive concurrently too, not only one after another.
        statuses = await asyncio.gather(*(d.send_text(m, t, msg_id=i) for d, m, t, i in sends))
        assert set(statuses) == {200}
        await client.app[GATEWAY].drain()
        assert await _count(client, InboxEvent) == distinct
        # One answer per distinct message, on the platform it came from.
        answers = sum(len(d.texts(m)) + len(d.cards(m)) for d in drivers for m in members)
        assert answers == distinct
        assert await _count(client, OutboxMessage) == distinct
        # Lead card clicks delivered 1-4 times: one accept, one card update.
        lead = await (await client.post("/api/leads", json=JIANGSU_LEAD)).json()
        await client.app[GATEWAY].drain()
        owner = lead["owner"]
        holder = next(d for d in drivers if any("接受" in c.buttons for c in d.cards(owner)))
        before = len(holder.cards(owner))
        card = holder.cards(owner)[-1]
        assert "接受" in card.buttons
        assert set(await asyncio.gather(*(holder.click(owner, card, "接受") for _ in range(rng.randint(2, 4))))) == {200}
        await client.app[GATEWAY].drain()
        assert len(holder.cards(owner)) == before
        assert holder.cards(owner)[-1].buttons == ()
        assert holder.texts(owner) == [] or not any("无需重复" in t for t in holder.texts(owner))
    finally:
        for d in drivers:
            await d.close()


class PacedWeCom(wc.FakeWeComApi):
    """The fake WeCom, recording when (fake time) each send was attempted and for whom."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.attempts_at: list[tuple[Any, str]] = []

    async def _send(self, request: Any) -> Any:
        body = await request.json()
        self.attempts_at.append((self.clock.now(), str(body.get("template_card", {}).get("task_id") or body.get("text"))))
        return await super()._send(request)


async def test_outage_then_recovery_each_card_once_in_order_and_paced(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> None:
    api = PacedWeCom(clock)
    await api.start()
    try:
        client = await aiohttp_client(create_app(wc.wecom_settings(db_url, tmp_path, api.base_url()), clock=clock, start_workers=False))
        gw: Gateway = client.app[GATEWAY]
        api.outage = True
        companies = [f"常州测试{i}号机械有限公司" for i in range(6)]
        owners = []
        for i, company in enumerate(companies):
            resp = await client.post("/api/leads", json={**JIANGSU_LEAD, "company": company, "phone": f"1381234{i:04d}"})
            owners.append((await resp.json())["owner"])
        # Two minutes of 503, then 45009 (rate limited) and a 502 on the way back.
        for _ in range(24):
            await gw.drain()
            clock.advance(seconds=5)
        assert api.sent == []
        api.outage = False
        api.failures = [45009, 45009, 502]
        for _ in range(120):
            await gw.drain()
            clock.advance(seconds=10)
        rows = await gw.db.run(lambda s: [(o.id, o.status, o.attempts, o.last_error) for o in s.execute(select(OutboxMessage)).scalars()])
        assert {r[1] for r in rows} == {"sent"}, rows
        cards = [s for s in api.sent if s.msgtype == "template_card"]
        task_ids = [c.body["template_card"]["task_id"] for c in cards]
        assert len(task_ids) == len(set(task_ids)) == len(companies)  # each card exactly once
        for owner in set(owners):
            got = [c.body["template_card"]["main_title"]["title"] for c in cards if c.touser == wc.USERIDS.get(owner, owner)]
            expected = [co for co, o in zip(companies, owners) if o == owner]
            assert [next(co for co in expected if co in t) for t in got] == expected  # in order per person
        # Pacing: retries of one message are spaced by the backoff (≥ 2 s, growing), never
        # a tight loop; and a person's later card waits for the earlier one (no overtaking).
        by_message: dict[str, list[Any]] = defaultdict(list)
        for at, key in api.attempts_at:
            by_message[key].append(at)
        for key, times in by_message.items():
            gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
            assert all(g >= 2.0 for g in gaps), (key, gaps)
        assert len(api.attempts_at) <= len(companies) * 8
    finally:
        assert api.server is not None
        await api.server.close()


async def test_dead_letters_show_on_metrics(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> None:
    api = wc.FakeWeComApi(clock)
    await api.start()
    try:
        client = await aiohttp_client(create_app(wc.wecom_settings(db_url, tmp_path, api.base_url()), clock=clock, start_workers=False))
        api.outage = True
        await client.post("/api/leads", json=JIANGSU_LEAD)
        for _ in range(40):  # a seven-hour outage: past eight tries and the six-hour budget
            await client.app[GATEWAY].drain()
            clock.advance(minutes=11)
        metrics = await (await client.get("/metrics")).text()
        assert 'leadbot_outbox_messages{status="dead"} 1' in metrics
    finally:
        assert api.server is not None
        await api.server.close()


def _many_reps(n: int) -> str:
    return "".join(
        f'\n[[members]]\nid = "rep{i:03d}"\nname = "销售{i:03d}"\nrole = "rep"\nregion = "华东"\nmanager = "chenjing"\nwecom_userid = "wxrep{i:03d}"\n'
        for i in range(n)
    )


async def test_hundred_simultaneous_accepts_one_owner_everyone_told(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> None:
    from bot.config import parse
    from tests.conftest import TEMPLATE

    api = wc.FakeWeComApi(clock)
    await api.start()
    try:
        text = wc.with_wecom_userids(TEMPLATE).replace('secret = ""', 'secret = "test-secret-0123456789"', 1)
        # Members must come before the platform table in TOML; appended at the end they are top-level arrays anyway.
        settings = parse(text + _many_reps(100) + wc.section(api.base_url()), str(tmp_path / "leadbot.toml"), {"LEADBOT_DATABASE_URL": db_url})
        client = await aiohttp_client(create_app(settings, clock=clock, start_workers=False))
        gw: Gateway = client.app[GATEWAY]
        gw.inline_answer_seconds = 0.0
        lead = await (await client.post("/api/leads", json=JIANGSU_LEAD)).json()
        await gw.drain()
        owner = lead["owner"]
        owner_uid = wc.USERIDS.get(owner, f"wx{owner}")
        (card,) = api.cards_to(owner_uid)
        tc = card.body["template_card"]
        key = next(b["key"] for b in tc["button_list"] if b["text"] == "接受")
        cb = wc.WeComCallbacks(clock)
        clickers = [f"wxrep{i:03d}" for i in range(100) if f"rep{i:03d}" != owner][:99] + [owner_uid]
        random.Random(3).shuffle(clickers)
        requests = [cb.encrypt(cb.card_click(u, tc["task_id"], key, api.issue_code())) for u in clickers]
        resps = await asyncio.gather(*(client.post(f"/callback/wecom?{q}", data=b) for q, b in requests))
        assert {r.status for r in resps} == {200}
        # Three dispatchers race over the inbox (real row locks on PostgreSQL).
        others = [Gateway(gw.db, gw.ctx, gw.adapters.values()) for _ in range(2)]
        await asyncio.gather(gw.dispatch_pending(), *(g.dispatch_pending() for g in others))
        await gw.drain()
        row = await gw.db.run(lambda s: s.get(Lead, lead["lead_id"]))
        assert row.status == "accepted" and row.owner_id == owner
        assert len(api.updates) == 1
        told = [u for u in clickers if u != owner_uid]
        for u in told:
            texts = api.texts_to(u)
            assert len(texts) == 1 and "分配给了" in texts[0], (u, texts)
        assert api.texts_to(owner_uid) == []
    finally:
        assert api.server is not None
        await api.server.close()


async def test_thirty_minute_outage_still_delivers_every_card(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> None:
    api = wc.FakeWeComApi(clock)
    await api.start()
    try:
        client = await aiohttp_client(create_app(wc.wecom_settings(db_url, tmp_path, api.base_url()), clock=clock, start_workers=False))
        api.outage = True
        await client.post("/api/leads", json=JIANGSU_LEAD)
        for _ in range(60):
            await client.app[GATEWAY].drain()
            clock.advance(seconds=30)
        api.outage = False
        for _ in range(12):
            clock.advance(minutes=5)
            await client.app[GATEWAY].drain()
        assert len(api.sent) == 1
    finally:
        assert api.server is not None
        await api.server.close()
