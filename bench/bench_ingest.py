"""Callback ingest per platform: verify + decrypt + durable inbox write + ack, against a bare aiohttp handler.

Run: ``python3 bench/bench_ingest.py [--platform wecom|feishu|dingtalk|all] [--requests 6000]
[--concurrency 64] [--rounds 2] [--chunk 250] [--db postgresql+psycopg://…] [--gc-freeze]``
(prints figures; not a timed test).

Cases (``--platform dingtalk`` runs both DingTalk cases):

* ``wecom``: ``POST /callback/wecom``, AES-CBC XML envelope, sha1 ``msg_signature`` in the
  query (built with wechatpy, as tests/wecom_fakes.py does).
* ``feishu``: ``POST /callback/feishu``, event subscription v2 ``im.message.receive_v1``,
  body ``{"encrypt": …}`` (AES-256-CBC, key = sha256(Encrypt Key)) signed with
  ``X-Lark-Request-Timestamp`` / ``-Nonce`` / ``X-Lark-Signature``; unique event_id and
  message_id per request (tests/feishu_fakes.py ``FeishuSender``).
* ``dingtalk``: ``POST /callback/dingtalk``, the outgoing robot's plain JSON body with the
  ``timestamp`` / ``sign`` headers (HMAC-SHA256 with the app secret); unique msgId.
* ``dingtalk-event``: the same robot message through the encrypted event subscription
  (WeCom's crypto with the app key as owner, ``msg_signature``/``timestamp``/``nonce`` in
  the query), answered with the encrypted ``success`` map. This is the heavier DingTalk path
  (AES decrypt plus an AES encrypt of the reply), so it is measured too.

For every case and round the bare server and ours each run in their own subprocess on
127.0.0.1 (one event loop each, like ``leadbot serve``); the load generator is this process,
with ``--concurrency`` keep-alive connections per server sending pre-built requests (real
signatures and ciphertexts, built before the timed loop) in a closed loop. After a warm-up
of each, the two take turns every ``--chunk`` requests, so a burst of other work on a
shared machine hits both alike instead of deciding the ratio. The bare server reads the
body and answers what the platform minimally expects (an empty 200 for WeCom, ``{}`` for
Feishu and the DingTalk robot, a constant JSON object shaped like the encrypted ``success``
map for the DingTalk event subscription). Ours is the real route of ``create_app`` (workers
off) on a fresh SQLite file (WAL) per case and round, or a fresh database on the ``--db``
PostgreSQL server. Afterwards the inbox rows of that platform are checked against the
acknowledged (HTTP 200) requests, warm-up included.

Printed per case (``NAME`` is wecom, feishu, dingtalk or dingtalk-event), for a table script:

    [NAME] round R bare|ours  N req/s  p50 X ms  p99 X ms  max X ms  server CPU N us/req  errors N
    [NAME] ratio ours/bare 0.41, 0.43
    [NAME] ours p99 55.1, 60.2 ms
    [NAME] inbox rows ok 4800/4800          (rows/acknowledged, warm-up included, all rounds;
                                             else "inbox rows MISMATCH 4790/4800 acknowledged, 4800 sent")
    [NAME] median: ours N req/s, bare N req/s, ratio X, p99 X ms, server CPU ours N us/req, bare N us/req

Other work on the machine still moves req/s; the server's CPU time per request (user +
system, from /proc, database thread included) is steadier and shows where a low ratio
comes from.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
FILLER = "张总确认下周三看产线，预算50万，需要两台伺服压装机。"
OUTBOUND = "http://127.0.0.1:9"  # outbound is not exercised (workers are off)


@dataclass(frozen=True)
class Req:
    """One pre-built callback: path with query, body, headers."""

    path: str
    body: bytes
    headers: dict[str, str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------------------- cases


def _wecom_settings(db_url: str) -> Any:
    from bot.config import parse
    from tests.conftest import TEMPLATE
    from tests.wecom_fakes import section, with_wecom_userids

    text = with_wecom_userids(TEMPLATE).replace('secret = ""', 'secret = "bench-secret-0123456789"', 1)
    text += section(OUTBOUND)
    return parse(text, "/tmp/leadbot-bench.toml", {"LEADBOT_DATABASE_URL": db_url})


def _feishu_settings(db_url: str) -> Any:
    from tests.feishu_fakes import feishu_ids, feishu_toml, settings_with_platform_ids

    return settings_with_platform_ids(db_url, Path(tempfile.gettempdir()), feishu_toml(OUTBOUND), feishu_ids())


def _dingtalk_settings(db_url: str) -> Any:
    from tests.dingtalk_fakes import dingtalk_ids, dingtalk_toml
    from tests.feishu_fakes import settings_with_platform_ids

    return settings_with_platform_ids(db_url, Path(tempfile.gettempdir()), dingtalk_toml(OUTBOUND, mode="http"), dingtalk_ids())


def _wecom_requests(n: int, tag: int) -> list[Req]:
    from handlers.context import SystemClock
    from tests.wecom_fakes import WeComCallbacks

    cb = WeComCallbacks(SystemClock())  # type: ignore[arg-type]
    out = []
    for i in range(n):
        query, body = cb.encrypt(cb.text("ZhangWei", f"{FILLER}#{i}", msg_id=8_000_000_000 + tag * 10_000_000 + i))
        out.append(Req(f"/callback/wecom?{query}", body, {}))
    return out


def _feishu_requests(n: int, tag: int) -> list[Req]:
    from tests.feishu_fakes import FeishuSender

    sender = FeishuSender()
    now_s = int(time.time())
    out = []
    for i in range(n):
        payload = sender.text_message("ou_zhangwei", f"{FILLER}#{i}", message_id=f"om_bench_{tag}_{i}", event_id=f"ev-bench-{tag}-{i}")
        body, headers = sender.request(payload, now_s, nonce=uuid.uuid4().hex[:16])
        out.append(Req("/callback/feishu", body, headers))
    return out


def _dingtalk_message(i: int, tag: int, now_ms: int) -> dict[str, Any]:
    from tests.dingtalk_fakes import robot_message

    # Real robot messages carry a sessionWebhook; the adapter keeps it for replies.
    return robot_message("dt_zhangwei", f"{FILLER}#{i}", msg_id=f"msgbench{tag}x{i}", created_ms=now_ms,
                         webhook=f"https://oapi.dingtalk.com/robot/sendBySession?session=bench{tag}x{i}")


def _dingtalk_robot_requests(n: int, tag: int) -> list[Req]:
    from tests.dingtalk_fakes import robot_http_request

    now_ms = int(time.time() * 1000)
    out = []
    for i in range(n):
        # Each request its own timestamp (and so its own sign), as DingTalk sends them.
        body, headers = robot_http_request(_dingtalk_message(i, tag, now_ms), now_ms - n + i)
        out.append(Req("/callback/dingtalk", body, headers))
    return out


def _dingtalk_event_requests(n: int, tag: int) -> list[Req]:
    from urllib.parse import urlencode

    from tests.dingtalk_fakes import event_http_request

    now_ms = int(time.time() * 1000)
    out = []
    for i in range(n):
        body, query = event_http_request(_dingtalk_message(i, tag, now_ms), now_ms - n + i, nonce=uuid.uuid4().hex[:12])
        out.append(Req(f"/callback/dingtalk?{urlencode(query)}", body, {"Content-Type": "application/json"}))
    return out


@dataclass(frozen=True)
class Case:
    """One callback route measured against its bare twin."""

    name: str
    platform: str  # inbox ``platform`` column
    route: str
    bare_body: bytes  # what the bare handler answers (platform's minimal acceptable answer)
    bare_type: str
    settings: Callable[[str], Any]
    requests: Callable[[int, int], list[Req]]


# The size of our encrypted "success" (rand16 + len4 + "success" + 20-byte app key, padded to 64 bytes: 88 base64 chars).
_SUCCESS_SHAPE = (b'{"msg_signature": "0000000000000000000000000000000000000000", "encrypt": "' + b"A" * 86 + b'==", '
                  b'"timeStamp": "1773108000000", "nonce": "000000000000"}')

CASES: dict[str, Case] = {
    "wecom": Case("wecom", "wecom", "/callback/wecom", b"", "text/plain", _wecom_settings, _wecom_requests),
    "feishu": Case("feishu", "feishu", "/callback/feishu", b"{}", "application/json", _feishu_settings, _feishu_requests),
    "dingtalk": Case("dingtalk", "dingtalk", "/callback/dingtalk", b"{}", "application/json", _dingtalk_settings, _dingtalk_robot_requests),
    "dingtalk-event": Case("dingtalk-event", "dingtalk", "/callback/dingtalk", _SUCCESS_SHAPE, "application/json", _dingtalk_settings,
                           _dingtalk_event_requests),
}
PLATFORM_CASES = {"wecom": ["wecom"], "feishu": ["feishu"], "dingtalk": ["dingtalk", "dingtalk-event"], "all": list(CASES)}


# ----------------------------------------------------------------------------- servers


def serve_bare(case: Case, port: int) -> None:
    """A bare aiohttp handler: read the body, answer the platform's minimal 200."""
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=case.bare_body, content_type=case.bare_type)

    app = web.Application()
    app.router.add_post(case.route, handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def serve_ours(case: Case, port: int, db_url: str, gc_freeze: bool = False) -> None:
    """``create_app`` with the case's platform enabled, workers off (we measure the ingest fast path).

    ``gc_freeze``: after start-up, move every object alive then (SQLAlchemy and Alembic
    metadata, modules) out of the collector's reach. Without it, one full (generation 2)
    collection per few thousand requests walks that whole heap and stalls the loop for
    70-120 ms, which is most of the p99.
    """
    import logging

    from aiohttp import web

    from bot.app import create_app
    from store.db import upgrade

    logging.disable(logging.WARNING)
    upgrade(db_url)
    app = create_app(case.settings(db_url), start_workers=False)
    if gc_freeze:
        import gc

        async def freeze(_app: web.Application) -> None:
            gc.collect()
            gc.freeze()

        app.on_startup.append(freeze)  # runs after the cleanup contexts opened the database
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# ----------------------------------------------------------------------------- load


@dataclass
class _Tally:
    """What one server has answered so far in a run."""

    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    warm_answered: int = 0
    warm_errors: int = 0
    cpu_s: float | None = 0.0


async def _load(session: Any, base: str, reqs: list[Req], concurrency: int) -> tuple[float, list[float], int]:
    """Closed loop: ``concurrency`` workers on keep-alive connections until ``reqs`` is used up."""
    latencies: list[float] = []
    errors = 0
    it = iter(reqs)

    async def worker() -> None:
        nonlocal errors
        for req in it:
            t0 = time.perf_counter()
            async with session.post(base + req.path, data=req.body, headers=req.headers) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, latencies, errors


async def _wait_up(port: int) -> None:
    for _ in range(400):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("server did not start")


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def _run(case: Case, reqs: dict[str, list[Req]], concurrency: int, db_url: str, warmup: int, chunk: int, ours_first: bool,
         gc_freeze: bool = False) -> dict[str, dict[str, float]]:
    """Both servers of ``case`` in their own processes, warmed up, then the timed closed loop in alternating chunks.

    Bare and ours take turns every ``chunk`` requests (the other one idles), so both see the
    same background load on a shared machine; run one after the other, a burst of other
    work during one of them decides the ratio.
    """
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports: dict[str, int] = {}
    for kind in ("bare", "ours"):
        ports[kind] = _free_port()
        args = [sys.executable, __file__, "--serve", kind, "--case", case.name, "--port", str(ports[kind]), "--db", db_url]
        if gc_freeze and kind == "ours":
            args.append("--gc-freeze")
        procs[kind] = subprocess.Popen(args, cwd=str(ROOT))
    order = ("ours", "bare") if ours_first else ("bare", "ours")

    async def drive() -> dict[str, _Tally]:
        import aiohttp

        tallies = {kind: _Tally() for kind in order}
        sessions = {kind: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) for kind in order}
        try:
            for kind in order:
                await _wait_up(ports[kind])
                _, lat, errors = await _load(sessions[kind], f"http://127.0.0.1:{ports[kind]}", reqs[kind][:warmup], concurrency)
                tallies[kind].warm_answered, tallies[kind].warm_errors = len(lat), errors
            for at in range(warmup, max(len(r) for r in reqs.values()), chunk):
                for kind in order:
                    tally = tallies[kind]
                    cpu0 = _cpu_s(procs[kind].pid)
                    elapsed, lat, errors = await _load(sessions[kind], f"http://127.0.0.1:{ports[kind]}", reqs[kind][at:at + chunk], concurrency)
                    cpu1 = _cpu_s(procs[kind].pid)
                    tally.elapsed += elapsed
                    tally.latencies += lat
                    tally.errors += errors
                    tally.cpu_s = None if cpu0 is None or cpu1 is None or tally.cpu_s is None else tally.cpu_s + cpu1 - cpu0
        finally:
            for session in sessions.values():
                await session.close()
        return tallies

    try:
        tallies = asyncio.run(drive())
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=10)
    out: dict[str, dict[str, float]] = {}
    for kind, t in tallies.items():
        n, lat = len(t.latencies), t.latencies
        # Server CPU per request: less sensitive than req/s to other work on the machine.
        cpu_us = t.cpu_s / n * 1e6 if t.cpu_s is not None else float("nan")
        out[kind] = {"cpu_us": cpu_us, "rps": n / t.elapsed, "p50_ms": statistics.median(lat) * 1000, "p99_ms": _pct(lat, 0.99) * 1000,
                     "max_ms": max(lat) * 1000, "errors": t.errors, "n": n,
                     "acked": t.warm_answered + n - t.warm_errors - t.errors, "sent": len(reqs[kind])}
    return out


def _inbox_rows(db_url: str, platform: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("select count(*) from inboxevent where platform = :p"), {"p": platform}).scalar_one())
    finally:
        engine.dispose()


def _fresh_db(base: str, tag: str, tmp: Path) -> str:
    """A new, migrated database for one case and round: a SQLite file, or a new PostgreSQL database on ``base``'s server."""
    from store.db import upgrade

    if not base:
        url = f"sqlite:///{tmp / f'bench-{tag}.db'}"
    elif base.startswith("postgresql"):
        import psycopg

        name = f"leadbot_bench_ingest_{tag.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(base.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = f"{base.rpartition('/')[0]}/{name}"
    else:
        url = base  # another URL is used as given; rows are counted as a difference
    upgrade(url)
    return url


def _drop_db(base: str, url: str) -> None:
    if not base.startswith("postgresql") or url == base:
        return
    import psycopg

    with psycopg.connect(base.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')


def main() -> None:
    """For each round and case: the bare handler, then ours, with the same load; print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", choices=["bare", "ours"])
    parser.add_argument("--case", choices=list(CASES), default="wecom")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--db", default="", help="PostgreSQL server URL: a fresh database per case and round (dropped after); "
                        "default a fresh SQLite file each")
    parser.add_argument("--platform", choices=list(PLATFORM_CASES), default="all",
                        help="dingtalk runs both the robot callback and the encrypted event subscription")
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=250, help="bare and ours take turns every CHUNK requests")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after start-up in our server")
    args = parser.parse_args()
    if args.serve == "bare":
        serve_bare(CASES[args.case], args.port)
        return
    if args.serve == "ours":
        serve_ours(CASES[args.case], args.port, args.db, args.gc_freeze)
        return

    cases = [CASES[name] for name in PLATFORM_CASES[args.platform]]
    warmup = min(500, args.requests // 5)
    print(f"callback ingest vs bare aiohttp ({', '.join(c.name for c in cases)}), {args.requests} requests (+{warmup} warm-up), "
          f"{args.concurrency} connections, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
          f"{', gc.freeze() in ours' if args.gc_freeze else ''}, load average {os.getloadavg()[0]:.1f} at start "
          f"(other work on the machine moves req/s); targets: ratio >= 0.30, p99 < 100 ms", flush=True)
    results: dict[str, dict[str, list[dict[str, float]]]] = {c.name: {"bare": [], "ours": []} for c in cases}
    # Ids differ between invocations and between runs, so a shared --db never dedupes them away.
    tags = itertools.count(random.randrange(1_000_000) * 1000)
    with tempfile.TemporaryDirectory() as tmp:
        # Rounds outermost: background noise on the machine spreads over every case alike.
        for r in range(args.rounds):
            for case in cases:
                db_url = _fresh_db(args.db, f"{case.name}-{r}", Path(tmp))
                # Each server its own ids, so ours stores every request it acknowledges.
                reqs = {kind: case.requests(args.requests + warmup, next(tags)) for kind in ("bare", "ours")}  # fresh timestamps
                before = _inbox_rows(db_url, case.platform)
                res = _run(case, reqs, args.concurrency, db_url, warmup, args.chunk, r % 2 == 1, args.gc_freeze)
                res["ours"]["rows"] = _inbox_rows(db_url, case.platform) - before
                for kind in ("bare", "ours"):
                    one = res[kind]
                    results[case.name][kind].append(one)
                    extra = f"  inbox rows {int(one['rows'])}/{int(one['acked'])}" if kind == "ours" else ""
                    print(f"[{case.name}] round {r + 1} {kind:4s} {one['rps']:7.0f} req/s  p50 {one['p50_ms']:6.2f} ms  "
                          f"p99 {one['p99_ms']:6.2f} ms  max {one['max_ms']:6.1f} ms  server CPU {one['cpu_us']:4.0f} us/req  "
                          f"errors {int(one['errors'])}{extra}", flush=True)
                _drop_db(args.db, db_url)
    for case in cases:
        bare, ours = results[case.name]["bare"], results[case.name]["ours"]
        ratios = [o["rps"] / b["rps"] for b, o in zip(bare, ours)]
        p99s = [o["p99_ms"] for o in ours]
        rows, acked, sent = (sum(int(o[k]) for o in ours) for k in ("rows", "acked", "sent"))
        # Every request acknowledged, and every acknowledgement backed by exactly one row.
        rows_ok = all(int(o["rows"]) == int(o["acked"]) == int(o["sent"]) for o in ours)
        print(f"[{case.name}] ratio ours/bare {', '.join(f'{x:.2f}' for x in ratios)}")
        print(f"[{case.name}] ours p99 {', '.join(f'{x:.1f}' for x in p99s)} ms")
        print(f"[{case.name}] inbox rows ok {rows}/{acked}" if rows_ok
              else f"[{case.name}] inbox rows MISMATCH {rows}/{acked} acknowledged, {sent} sent")
        print(f"[{case.name}] median: ours {statistics.median(o['rps'] for o in ours):.0f} req/s, "
              f"bare {statistics.median(b['rps'] for b in bare):.0f} req/s, ratio {statistics.median(ratios):.2f}, "
              f"p99 {statistics.median(p99s):.1f} ms, server CPU ours {statistics.median(o['cpu_us'] for o in ours):.0f} us/req, "
              f"bare {statistics.median(b['cpu_us'] for b in bare):.0f} us/req")


if __name__ == "__main__":
    main()
