"""Lead intake → card in the outbox: latency at a steady arrival rate (issue 5).

``POST /api/leads`` validates, de-duplicates, assigns and queues the card in one
transaction, so the response time is the intake-to-card-in-outbox latency. Leads arrive
at ``--rate`` per second (open loop: a slow server does not slow the arrivals) for
``--seconds``; the server is the real app on a SQLite file (or ``--db`` URL).

    python3 bench/bench_intake.py [--rate 200] [--seconds 10] [--db URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiohttp import ClientSession, TCPConnector, web  # noqa: E402

from bot.app import create_app  # noqa: E402
from bot.config import parse  # noqa: E402
from store.db import upgrade  # noqa: E402

TEMPLATE = (ROOT / "bot" / "templates" / "leadbot.toml").read_text(encoding="utf-8")
PROVINCES = ["江苏", "浙江", "广东", "北京", "山东", "四川", "河南", "上海"]


async def run(rate: int, seconds: float, url: str) -> None:
    # Capacity high enough that every lead is assigned (the realistic hot path).
    text = TEMPLATE.replace("daily_capacity = 20", "daily_capacity = 100000").replace("daily_capacity = 15", "daily_capacity = 100000").replace("daily_capacity = 10", "daily_capacity = 100000")
    settings = parse(text.replace('secret = ""', 'secret = "bench"', 1), str(Path(tempfile.gettempdir()) / "leadbot.toml"), {"LEADBOT_DATABASE_URL": url})
    app = create_app(settings, start_workers=False)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    errors = 0

    async def one(session: ClientSession, i: int) -> None:
        nonlocal errors
        body = {"company": f"基准测试{i:06d}有限公司", "contact": f"客户{i}", "phone": f"139{i:08d}",
                "province": PROVINCES[i % len(PROVINCES)], "industry": "电子制造", "budget": "20万", "source": "官网表单"}
        t0 = time.perf_counter()
        async with session.post(f"{base}/api/leads", json=body) as resp:
            await resp.read()
            if resp.status != 201:
                errors += 1
        latencies.append((time.perf_counter() - t0) * 1000)

    total = int(rate * seconds)
    async with ClientSession(connector=TCPConnector(limit=256)) as session:
        tasks = []
        start = time.perf_counter()
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, i)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    await runner.cleanup()
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    print(f"intake → card in outbox: {total} leads at {rate}/s offered, {total / elapsed:.0f}/s achieved, errors {errors}")
    print(f"latency p50 {statistics.median(latencies):.1f} ms, p99 {p(0.99):.1f} ms, max {latencies[-1]:.1f} ms (target p99 < 100 ms on SQLite)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    url = args.db or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    upgrade(url)
    asyncio.run(run(args.rate, args.seconds, url))


if __name__ == "__main__":
    main()
