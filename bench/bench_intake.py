"""Lead intake → card in the outbox: latency at a steady arrival rate (issue 5).

``POST /api/leads`` validates, de-duplicates, assigns and queues the card before it
answers, so the response time is the intake-to-card-in-outbox latency. Leads arrive at
``--rate`` per second (open loop: a slow server does not slow the arrivals) for
``--seconds``. The server is the real app in its own process (as ``leadbot serve`` runs
it, ``gc.freeze`` included) on a SQLite file or ``--db`` URL; the load generator is this
process. ``--preload N`` first stores N older leads so de-duplication looks through a
realistic table. Printed, for a table script:

    intake → card in outbox: 2000 leads at 200/s offered, 199/s achieved, errors 0
    latency p50 4.1 ms, p99 18.0 ms, max 30.2 ms (target p99 < 100 ms on SQLite)
    server CPU 2.31 ms per lead; cards in outbox ok 2000/2000

    python3 bench/bench_intake.py [--rate 200] [--seconds 10] [--preload 20000] [--db URL]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiohttp import ClientSession, TCPConnector, web
from sqlalchemy import create_engine, func, select

from bot.app import create_app
from bot.config import parse
from store.db import normalise_url, upgrade
from store.models import Lead, OutboxMessage

TEMPLATE = (ROOT / "bot" / "templates" / "leadbot.toml").read_text(encoding="utf-8")
PROVINCES = ["江苏", "浙江", "广东", "北京", "山东", "四川", "河南", "上海"]


def _settings(url: str):  # type: ignore[no-untyped-def]
    # Capacity high enough that every lead is assigned (the realistic hot path).
    text = TEMPLATE
    for cap in ("20", "15", "10"):
        text = text.replace(f"daily_capacity = {cap}", "daily_capacity = 100000")
    return parse(text.replace('secret = ""', 'secret = "bench"', 1), str(Path(tempfile.gettempdir()) / "leadbot.toml"),
                 {"LEADBOT_DATABASE_URL": url})


def _form(i: int) -> dict[str, str]:
    return {"company": f"基准测试{i:07d}有限公司", "contact": f"客户{i}", "phone": f"139{i:08d}",
            "province": PROVINCES[i % len(PROVINCES)], "industry": "电子制造", "budget": "20万", "source": "官网表单"}


def serve(url: str, port: int) -> None:
    """The server process: the real app, workers off (the outbox is what we measure)."""
    app = create_app(_settings(url), start_workers=False)

    async def freeze(_app: web.Application) -> None:
        gc.collect()
        gc.freeze()

    app.on_startup.append(freeze)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def preload(url: str, count: int) -> None:
    """Older leads, taken in through the same path in a few big transactions."""
    if count <= 0:
        return
    from bot.keys import GATEWAY
    from handlers import leads

    async def fill() -> None:
        app = create_app(_settings(url), start_workers=False)
        runner = web.AppRunner(app)
        await runner.setup()
        gateway = app[GATEWAY]
        for start in range(10_000_000, 10_000_000 + count, 500):
            forms = [leads.validate_form(_form(i)) for i in range(start, min(start + 500, 10_000_000 + count))]
            await gateway.db.run(lambda s, forms=forms: [gateway.enqueue(s, r.outgoing, gateway.ctx.clock.now()) for r in leads.intake_many(s, forms, gateway.ctx)])
        await runner.cleanup()

    asyncio.run(fill())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _wait_up(base: str) -> None:
    async with ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(f"{base}/healthz") as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("server did not start")


async def load(base: str, rate: int, seconds: float, pid: int) -> tuple[list[float], int, float, float]:
    latencies: list[float] = []
    errors = 0

    async def one(session: ClientSession, i: int) -> None:
        nonlocal errors
        t0 = time.perf_counter()
        async with session.post(f"{base}/api/leads", json=_form(i)) as resp:
            await resp.read()
            if resp.status != 201:
                errors += 1
        latencies.append((time.perf_counter() - t0) * 1000)

    total = int(rate * seconds)
    async with ClientSession(connector=TCPConnector(limit=256)) as session:
        for i in range(20):  # warm-up: connections, caches
            await one(session, 20_000_000 + i)
        latencies.clear()
        cpu0 = _cpu_s(pid)
        tasks = []
        start = time.perf_counter()
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, i)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
        cpu = _cpu_s(pid) - cpu0
    return latencies, errors, elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--preload", type=int, default=0, help="older leads stored first")
    parser.add_argument("--db", help="a PostgreSQL server URL: the bench makes (and drops) its own database there; default a fresh SQLite file")
    parser.add_argument("--serve", nargs=2, metavar=("URL", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    url, drop = _fresh_database(args.db)
    try:
        _bench(args, url)
    finally:
        drop()


def _fresh_database(server: str | None) -> tuple[str, Callable[[], None]]:
    """A new SQLite file, or a new database on the PostgreSQL server ``server`` (dropped after)."""
    if not server:
        return normalise_url(f"sqlite:///{tempfile.mkdtemp()}/bench.db"), lambda: None
    import psycopg

    admin = normalise_url(server).replace("postgresql+psycopg://", "postgresql://")
    name = f"leadbot_bench_intake_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{normalise_url(server).rpartition('/')[0]}/{name}", drop


def _bench(args: argparse.Namespace, url: str) -> None:
    upgrade(url)
    preload(url, args.preload)
    engine = create_engine(url)
    with engine.connect() as conn:
        leads_before = conn.execute(select(func.count()).select_from(Lead)).scalar_one()
    port = _free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", url, str(port)], cwd=str(ROOT))
    base = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(_wait_up(base))
        latencies, errors, elapsed, cpu = asyncio.run(load(base, args.rate, args.seconds, proc.pid))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    total = len(latencies)
    with engine.connect() as conn:
        leads_now = conn.execute(select(func.count()).select_from(Lead)).scalar_one() - leads_before - 20
        cards = conn.execute(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "card")).scalar_one() - leads_before - 20
    engine.dispose()
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(f"intake → card in outbox: {total} leads at {args.rate}/s offered, {total / elapsed:.0f}/s achieved, errors {errors}"
          + (f", {args.preload} older leads" if args.preload else ""))
    print(f"latency p50 {statistics.median(latencies):.1f} ms, p99 {p(0.99):.1f} ms, max {latencies[-1]:.1f} ms (target p99 < 100 ms on SQLite)")
    ok = "ok" if cards == leads_now == total - errors else "MISMATCH"
    print(f"server CPU {cpu / max(total, 1) * 1000:.2f} ms per lead; cards in outbox {ok} {cards}/{total - errors}")


if __name__ == "__main__":
    main()
