"""Callback throughput with 1, 2 and 4 ``leadbot serve`` processes on one database.

Run: ``python3 bench/bench_scaleout.py [--db postgresql+psycopg://…] [--procs 1,2,4] [--requests 3000]``

Each process is a real ``leadbot serve`` (WeCom enabled, pointed at a fake API); the load
generator (this process, ``--concurrency`` keep-alive connections) spreads pre-encrypted
callbacks round-robin over the processes, as an L4 proxy would. Without ``--db`` a fresh
SQLite file is used (one writer: more processes cannot help there). Prints req/s, p50/p99
and the inbox row count check for each process count.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from handlers.context import SystemClock  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402
from store.db import normalise_url, upgrade  # noqa: E402
from store.models import InboxEvent  # noqa: E402
from tests.reliability.procs import USERIDS, Server, free_port, write_config  # noqa: E402
from tests.wecom_fakes import FakeWeComApi, WeComCallbacks  # noqa: E402


def _fresh_db(base: str, tag: str, tmp: Path) -> str:
    if not base:
        return f"sqlite:///{tmp / f'{tag}.db'}"
    import psycopg

    name = f"leadbot_bench_{tag}_{int(time.time())}"
    admin = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base.rpartition('/')[0]}/{name}"


async def run(procs: int, db_base: str, requests: int, concurrency: int, tmp: Path) -> dict[str, float]:
    api = FakeWeComApi(SystemClock())  # type: ignore[arg-type]
    api.token_lifetime = 7200
    await api.start()
    db_url = _fresh_db(db_base, f"p{procs}", tmp)
    upgrade(db_url)
    servers = []
    for i in range(procs):
        port = free_port()
        servers.append(Server(write_config(tmp, db_url, api.base_url(), port, f"s{procs}_{i}"), port, tmp / f"s{procs}_{i}.log"))
    cb = WeComCallbacks(SystemClock())  # type: ignore[arg-type]
    users = list(USERIDS.values())
    bodies = [cb.encrypt(cb.text(users[i % len(users)], f"第{i}条：客户确认需求", msg_id=10_000_000 + i)) for i in range(requests)]
    latencies: list[float] = []
    acked = 0
    try:
        conn = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=conn) as http:
            for s in servers:
                s.start()
            for s in servers:
                await s.wait_ready(http, timeout=60)
            queue = list(range(requests))

            async def worker(k: int) -> None:
                nonlocal acked
                while queue:
                    i = queue.pop()
                    query, body = bodies[i]
                    t0 = time.perf_counter()
                    async with http.post(f"{servers[i % procs].url}/callback/wecom?{query}", data=body) as r:
                        await r.read()
                        if r.status == 200:
                            acked += 1
                    latencies.append((time.perf_counter() - t0) * 1000)

            started = time.perf_counter()
            await asyncio.gather(*(worker(k) for k in range(concurrency)))
            elapsed = time.perf_counter() - started
    finally:
        for s in servers:
            s.stop()
        assert api.server is not None
        await api.server.close()
    engine = create_engine(normalise_url(db_url))
    with engine.connect() as c:
        rows = c.execute(select(func.count()).select_from(InboxEvent)).scalar_one()
    engine.dispose()
    lat = sorted(latencies)
    return {"procs": procs, "rps": requests / elapsed, "p50": statistics.median(lat), "p99": lat[int(len(lat) * 0.99) - 1],
            "acked": acked, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--db", default="", help="PostgreSQL server URL (a fresh database is created per run); default SQLite")
    ap.add_argument("--procs", default="1,2,4")
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    kind = "PostgreSQL" if args.db else "SQLite"
    with tempfile.TemporaryDirectory() as tmp:
        base = None
        for n in (int(x) for x in args.procs.split(",")):
            r = asyncio.run(run(n, args.db, args.requests, args.concurrency, Path(tmp)))
            base = base or r["rps"]
            ok = "ok" if r["rows"] == r["acked"] == args.requests else f"MISMATCH acked {r['acked']} rows {r['rows']}"
            print(f"scale-out {kind} {n} process(es): {r['rps']:7.0f} req/s (x{r['rps'] / base:.2f})  p50 {r['p50']:6.1f} ms  "
                  f"p99 {r['p99']:6.1f} ms  inbox {ok}", flush=True)


if __name__ == "__main__":
    main()
