"""Three ``leadbot serve`` processes on one PostgreSQL: exactly-once outcomes.

The load balancer is the test itself (round robin over the three ports, as an L4 proxy
would spread connections). Every inbound message is delivered to two different
processes; leads are posted to all three at once; each lead card is clicked through a
process other than the one that sent it. Afterwards: one inbox row and one answer per
message, rotation state shared (East leads spread evenly), one card per lead, one accept
and one card update per click, and the outbox fully delivered.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from handlers.context import SystemClock
from store.db import Database
from store.models import InboxEvent, Lead, OutboxMessage
from tests.conftest import JIANGSU_LEAD
from tests.reliability.procs import USERIDS, Server, free_port, long_tests, write_config
from tests.wecom_fakes import FakeWeComApi, WeComCallbacks

PROCESSES = 3
EAST_REPS = ("zhangwei", "lina", "wangqiang")


async def _until(predicate: Any, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.1)
    return False


async def test_three_processes_on_one_postgres_are_exactly_once(db_url: str, tmp_path: Path) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("several processes share one PostgreSQL; SQLite is the one-process setup")
    api = FakeWeComApi(SystemClock())  # type: ignore[arg-type]
    await api.start()
    servers = []
    for i in range(PROCESSES):
        port = free_port()
        servers.append(Server(write_config(tmp_path, db_url, api.base_url(), port, f"p{i}"), port, tmp_path / f"p{i}.log"))
    cb = WeComCallbacks(SystemClock())  # type: ignore[arg-type]
    db = Database(db_url)
    per_member = 6 if long_tests() else 2
    leads_n = 12 if long_tests() else 6
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            for s in servers:
                s.start()
            for s in servers:
                await s.wait_ready(http)
            rr = itertools.cycle(servers)

            async def post_text(server: Server, user: str, mid: int) -> int:
                query, body = cb.encrypt(cb.text(user, f"第{mid}条：客户要样机，月底前报价", msg_id=mid))
                async with http.post(f"{server.url}/callback/wecom?{query}", data=body) as r:
                    return r.status

            messages = [(uid, 5_000_000 + i * 100 + n) for i, uid in enumerate(USERIDS.values()) for n in range(per_member)]
            sends = []
            for user, mid in messages:  # each message reaches two different processes
                a, b = next(rr), next(rr)
                sends += [post_text(a, user, mid), post_text(b, user, mid)]

            async def post_lead(server: Server, i: int) -> dict[str, Any]:
                lead = {**JIANGSU_LEAD, "company": f"无锡并发测试{i}号机械有限公司", "phone": f"1395555{i:04d}"}
                async with http.post(f"{server.url}/api/leads", json=lead) as r:
                    assert r.status == 201, await r.text()
                    return dict(await r.json())

            lead_posts = [post_lead(next(rr), i) for i in range(leads_n)]
            results = await asyncio.gather(*sends, *lead_posts)
            assert all(st == 200 for st in results[: len(sends)])
            leads = results[len(sends):]
            owners = Counter(lead["owner"] for lead in leads)
            # Rotation state is shared: East leads spread evenly whichever process took them.
            assert set(owners) <= set(EAST_REPS) and max(owners.values()) - min(owners.values()) <= 1, owners

            def lead_cards(rep: str) -> list[Any]:
                return [c for c in api.cards_to(USERIDS[rep]) if any(b["text"] == "接受" for b in c.body["template_card"].get("button_list", []))]

            async def cards_out() -> bool:
                return sum(len(lead_cards(rep)) for rep in EAST_REPS) >= leads_n

            assert await _until(cards_out, 20)
            # Click 接受 on every lead card through a process other than the first.
            clicks = []
            for rep in EAST_REPS:
                for card in lead_cards(rep):
                    tc = card.body["template_card"]
                    key = next(b["key"] for b in tc["button_list"] if b["text"] == "接受")
                    inner = cb.card_click(USERIDS[rep], tc["task_id"], key, api.issue_code())
                    for server in (servers[1], servers[2]):  # the same click, twice
                        query, body = cb.encrypt(inner)
                        clicks.append(http.post(f"{server.url}/callback/wecom?{query}", data=body))
            for resp in await asyncio.gather(*clicks):
                assert resp.status == 200
                resp.release()

            async def settled() -> bool:
                inbox = await db.run(lambda s: list(s.execute(select(InboxEvent.status)).scalars()))
                out = await db.run(lambda s: list(s.execute(select(OutboxMessage.status)).scalars()))
                return len(inbox) == len(messages) + leads_n and set(inbox) == {"done"} and set(out) == {"sent"}

            assert await _until(settled, 40), "not drained"
            inbox = await db.run(lambda s: list(s.execute(select(InboxEvent.event_key)).scalars()))
            assert len(inbox) == len(set(inbox))
            lead_rows = await db.run(lambda s: list(s.execute(select(Lead)).scalars()))
            assert len(lead_rows) == leads_n and {lead.status for lead in lead_rows} == {"accepted"}
            task_ids = [s.body["template_card"]["task_id"] for s in api.sent if s.msgtype == "template_card"]
            assert len(task_ids) == len(set(task_ids))  # no card sent twice
            assert sum(len(lead_cards(rep)) for rep in EAST_REPS) == leads_n  # one card per lead
            assert len(api.updates) == leads_n  # one update per accepted card
            # One answer per message (a text or a confirmation card), nothing twice, nothing dropped.
            assert len(api.sent) == leads_n + len(messages) and api.dropped == []
            outbox = await db.run(lambda s: list(s.execute(select(OutboxMessage.dedupe_key)).scalars()))
            answered = Counter(k.split(":")[2] for k in outbox if k.startswith("in:wecom:"))
            assert set(answered.values()) == {1}
    finally:
        for s in servers:
            s.stop()
        db.close()
        assert api.server is not None
        await api.server.close()
