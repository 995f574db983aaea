"""WeCom callback ingest: verify + decrypt + durable inbox write + ack, against a bare aiohttp handler.

Run: ``python3 bench/bench_ingest.py [--requests 6000] [--concurrency 64] [--db URL]``
(prints figures; not a timed test).

Both servers run in their own subprocess on 127.0.0.1 (one event loop each, like
``leadbot serve``); the load generator is this process, with ``--concurrency`` keep-alive
connections, each sending pre-encrypted callbacks (unique MsgId, nonce, signature) in a
closed loop. The bare server reads the body and answers an empty 200; ours runs the real
``POST /callback/wecom`` path of ``create_app`` on a fresh SQLite file (WAL) or ``--db``.
Afterwards the inbox row count is checked against the number of acknowledged requests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------------------- servers


def serve_bare(port: int) -> None:
    """A bare aiohttp handler: read the body, answer an empty 200."""
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="")

    app = web.Application()
    app.router.add_post("/callback/wecom", handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def serve_ours(port: int, db_url: str, gc_freeze: bool = False) -> None:
    """``create_app`` with WeCom enabled, workers off (we measure the ingest fast path).

    ``gc_freeze``: after start-up, move every object alive then (SQLAlchemy and Alembic
    metadata, modules) out of the collector's reach. Without it, one full (generation 2)
    collection per few thousand requests walks that whole heap and stalls the loop for
    70-120 ms, which is most of the p99.
    """
    import logging

    from aiohttp import web

    from bot.app import create_app
    from bot.config import parse
    from store.db import upgrade
    from tests.conftest import TEMPLATE
    from tests.wecom_fakes import section, with_wecom_userids

    logging.disable(logging.WARNING)
    upgrade(db_url)
    text = with_wecom_userids(TEMPLATE).replace('secret = ""', 'secret = "bench-secret-0123456789"', 1)
    text += section("http://127.0.0.1:9")  # outbound is not exercised
    settings = parse(text, "/tmp/leadbot-bench.toml", {"LEADBOT_DATABASE_URL": db_url})
    app = create_app(settings, start_workers=False)
    if gc_freeze:
        import gc

        async def freeze(_app: web.Application) -> None:
            gc.collect()
            gc.freeze()

        app.on_startup.append(freeze)  # runs after the cleanup contexts opened the database
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# ----------------------------------------------------------------------------- load


def _requests(n: int) -> list[tuple[str, bytes]]:
    from handlers.context import SystemClock
    from tests.wecom_fakes import WeComCallbacks

    cb = WeComCallbacks(SystemClock())  # type: ignore[arg-type]
    filler = "张总确认下周三看产线，预算50万，需要两台伺服压装机。"
    out = []
    for i in range(n):
        out.append(cb.encrypt(cb.text("ZhangWei", f"{filler}#{i}", msg_id=8_000_000_000 + i)))
    return out


async def _load(port: int, reqs: list[tuple[str, bytes]], concurrency: int) -> tuple[float, list[float], int]:
    import aiohttp

    url = f"http://127.0.0.1:{port}/callback/wecom"
    latencies: list[float] = []
    errors = 0
    it = iter(reqs)
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as session:
        async def worker() -> None:
            nonlocal errors
            for query, body in it:
                t0 = time.perf_counter()
                async with session.post(f"{url}?{query}", data=body) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return elapsed, latencies, errors


async def _wait_up(port: int) -> None:
    for _ in range(200):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("server did not start")


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


async def _run(kind: str, reqs: list[tuple[str, bytes]], concurrency: int, db_url: str, warmup: int,
               gc_freeze: bool = False) -> dict[str, float]:
    port = _free_port()
    args = [sys.executable, __file__, "--serve", kind, "--port", str(port), "--db", db_url]
    if gc_freeze:
        args.append("--gc-freeze")
    proc = subprocess.Popen(args, cwd=str(ROOT))
    try:
        await _wait_up(port)
        await _load(port, reqs[:warmup], concurrency)
        elapsed, lat, errors = await _load(port, reqs[warmup:], concurrency)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    n = len(lat)
    return {"rps": n / elapsed, "p50_ms": statistics.median(lat) * 1000, "p99_ms": _pct(lat, 0.99) * 1000,
            "max_ms": max(lat) * 1000, "errors": errors, "n": n}


def _inbox_rows(db_url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.connect() as conn:
        return int(conn.execute(text("select count(*) from inboxevent")).scalar_one())


def main() -> None:
    """Run the bare handler and ours back to back with the same load; print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", choices=["bare", "ours"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--db", default="")
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after start-up in our server")
    args = parser.parse_args()
    if args.serve == "bare":
        serve_bare(args.port)
        return
    if args.serve == "ours":
        serve_ours(args.port, args.db, args.gc_freeze)
        return

    warmup = min(500, args.requests // 5)
    print(f"WeCom callback ingest, {args.requests} requests (+{warmup} warm-up), {args.concurrency} connections, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}{', gc.freeze() in ours' if args.gc_freeze else ''}")
    results: dict[str, list[dict[str, float]]] = {"bare": [], "ours": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for kind in ("bare", "ours"):
                db_url = args.db or f"sqlite:///{tmp}/bench-{r}.db"
                reqs = _requests(args.requests + warmup)  # fresh timestamps for every run
                res = asyncio.run(_run(kind, reqs, args.concurrency, db_url, warmup, args.gc_freeze and kind == "ours"))
                if kind == "ours" and not args.db:
                    res["rows"] = _inbox_rows(db_url)
                results[kind].append(res)
                extra = f"  inbox rows {int(res['rows'])}" if "rows" in res else ""
                print(f"  round {r + 1} {kind:5s} {res['rps']:8.0f} req/s  p50 {res['p50_ms']:6.2f} ms  "
                      f"p99 {res['p99_ms']:6.2f} ms  max {res['max_ms']:6.1f} ms  errors {int(res['errors'])}{extra}")
    ratios = [o["rps"] / b["rps"] for b, o in zip(results["bare"], results["ours"])]
    p99s = [r["p99_ms"] for r in results["ours"]]
    print(f"per round: ratio ours/bare {', '.join(f'{x:.2f}' for x in ratios)} (target >= 0.30); "
          f"ours p99 {', '.join(f'{x:.0f}' for x in p99s)} ms (target < 100 ms)")
    print(f"median: ours {statistics.median(r['rps'] for r in results['ours']):.0f} req/s, "
          f"bare {statistics.median(r['rps'] for r in results['bare']):.0f} req/s, "
          f"ratio {statistics.median(ratios):.2f}, ours p99 {statistics.median(p99s):.0f} ms")

if __name__ == "__main__":
    main()
