"""Per-member rate limits hold for several processes on one database (store/ratelimits.py).

WeCom silently drops what goes past 30 messages a minute to one member. Two gateways (two
``leadbot serve`` processes) deliver to the same member; what the fake WeCom received,
stamped with the fake clock, must never hold more than 30 in any 60 s, and everything must
arrive, in order, as time passes.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bot.app import create_app
from bot.gateway import Gateway
from bot.keys import GATEWAY
from handlers.context import FakeClock
from store.db import Database
from store.models import OutboxMessage, RateCounter
from store.ratelimits import RateRule, acquire, prune
from tests.wecom_fakes import FakeWeComApi, wecom_settings

MEMBER = "LiNa"


def _most_in_any_window(times: list[datetime], window: timedelta) -> int:
    """The largest number of ``times`` inside one half-open window of length ``window``."""
    ordered = sorted(times)
    return max((sum(1 for t in ordered if start <= t < start + window) for start in ordered), default=0)


async def test_two_gateways_share_wecoms_per_member_limit(aiohttp_client: Any, db_url: str, tmp_path: Path, clock: FakeClock) -> None:
    api = FakeWeComApi(clock)
    await api.start()
    try:
        settings = wecom_settings(db_url, tmp_path, api.base_url())
        gateways: list[Gateway] = [
            (await aiohttp_client(create_app(settings, clock=clock, start_workers=False))).app[GATEWAY] for _ in range(2)
        ]
        now = clock.now()
        await gateways[0].db.run(lambda s: [s.add(OutboxMessage(
            platform="wecom", recipient=MEMBER, kind="text", payload=json.dumps({"text": f"提醒{i}"}),
            dedupe_key=f"burst{i}", next_attempt_at=now, created_at=now)) for i in range(100)])
        stamped: list[datetime] = []
        by_gateway = [0, 0]
        for _ in range(400):
            for n, gw in enumerate(gateways):
                before = len(api.sent)
                # Small claims, so both processes take turns at the same member's queue.
                await gw.deliver_due(limit=20)
                stamped += [clock.now()] * (len(api.sent) - before)
                by_gateway[n] += len(api.sent) - before
            if len(api.sent) + len(api.dropped) >= 100:
                break
            clock.advance(seconds=2)
        assert api.dropped == []  # WeCom never had to drop anything
        assert api.texts_to(MEMBER) == [f"提醒{i}" for i in range(100)]
        assert _most_in_any_window(stamped, timedelta(seconds=60)) <= 30
        assert min(by_gateway) > 0, by_gateway  # both processes did send
        # 100 messages at 30 a minute take a little over three minutes, not much more.
        assert stamped[-1] - stamped[0] <= timedelta(minutes=4)
    finally:
        assert api.server is not None
        await api.server.close()


def test_random_sends_never_exceed_any_window_and_the_wait_is_exact(db_url: str) -> None:
    db = Database(db_url)
    rng = random.Random(7)
    rules = (RateRule(5, 10, slot_s=1), RateRule(12, 60, slot_s=5))
    t = datetime(2026, 3, 10, 2, 0, 0, 250_000, tzinfo=timezone.utc)
    sent: list[datetime] = []
    try:
        for _ in range(150):
            t += timedelta(milliseconds=rng.choice([0, 50, 400, 1300, 4000]))
            cost = rng.choice([1, 1, 1, 2])
            wait = db.transaction(lambda s: acquire(s, "wecom", "u1", rules, t, cost=cost))
            if wait == 0.0:
                sent += [t] * cost
                continue
            assert wait > 0
            # Just before the wait is over it is still refused; at its end it is allowed.
            early = t + timedelta(seconds=wait) - timedelta(milliseconds=1)
            assert db.transaction(lambda s: acquire(s, "wecom", "u1", rules, early, cost=cost)) > 0
            t += timedelta(seconds=wait)
            assert db.transaction(lambda s: acquire(s, "wecom", "u1", rules, t, cost=cost)) == 0.0
            sent += [t] * cost
        assert _most_in_any_window(sent, timedelta(seconds=10)) <= 5
        assert _most_in_any_window(sent, timedelta(seconds=60)) <= 12
        # Another recipient has its own budget.
        assert db.transaction(lambda s: acquire(s, "wecom", "u2", rules, t)) == 0.0
        # Counters no rule can see any more are removed; the recent ones stay.
        later = t + timedelta(seconds=61)
        rows_before = db.transaction(lambda s: s.execute(select(func.count()).select_from(RateCounter)).scalar_one())
        assert db.transaction(lambda s: prune(s, t)) < rows_before
        assert db.transaction(lambda s: prune(s, later + timedelta(seconds=5))) > 0
        assert db.transaction(lambda s: s.execute(select(func.count()).select_from(RateCounter)).scalar_one()) == 0
    finally:
        db.close()
