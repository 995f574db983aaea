"""Callback throughput with 1, 2 and 4 ``leadbot serve`` processes on one database, with CPU accounting.

Run: ``python3 bench/bench_scaleout.py [--db postgresql+psycopg://…] [--procs 1,2,4] [--requests 3000]
[--drain] [--profile DIR]``

Each process is a real ``leadbot serve`` (WeCom enabled, pointed at a fake API that runs in a
process of its own, bench/fake_wecom_api.py); the load generator (this process) spreads
pre-encrypted callbacks round-robin over the processes, as an L4 proxy would, over
``--concurrency`` keep-alive connections with pre-built request bytes and a minimal HTTP/1.1
reader, so that it costs a small fraction of what the servers cost.

On a small machine every process shares the same cores, so req/s alone cannot say what limits
scaling. For each process count the bench measures, over the callback window (first to last
answer), the CPU seconds used by the load generator (``gen``), the servers (``srv``, all
their threads) and PostgreSQL (``pg``: the backends of the bench database and the shared
background processes, not other databases' backends), per request, plus ``api`` (the fake
WeCom), ``other`` (processes not in the benchmark: the machine is not ours alone) and
``idle``. If ``srv`` ms/req stays flat while req/s stops growing and ``idle`` is ~0, the run
is CPU-bound and would scale with cores. Each server first handles a few callbacks (its
lexicons are built on the first event: ~0.5 s of CPU, reported as warm-up) so the window
shows the steady state. With ``--drain`` it then waits until every stored event has been handled (the dispatchers run in the background all along) and reports
handled events/s and CPU per handled event: that is the sustained capacity, ack rate alone
only says how fast a backlog can be built. ``--profile DIR`` records each server with py-spy
(``--gil``: only the thread running Python code, so waits on sockets do not count) during the
callback window and the drain, and prints where the samples went.

Prints one parseable line per process count::

    procs 2: 1517 req/s, p50 12.3 ms, p99 45.6 ms, cpu ms/req gen 0.21 srv 0.45 pg 0.30, inbox ok

followed by indented detail lines. Without ``--db`` a fresh SQLite file is used (one writer:
more processes cannot help there).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pyspy_summary
from cpu_account import Snapshot, snapshot, used
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from handlers.context import SystemClock
from store.db import normalise_url, upgrade
from store.models import InboxEvent, OutboxMessage
from tests.reliability.procs import ROOT, USERIDS, Server, free_port, write_config
from tests.wecom_fakes import WeComCallbacks

HERE = Path(__file__).resolve().parent
WARM_UP = 12  # callbacks per server handled before the window


def _fresh_db(base: str, tag: str, tmp: Path) -> str:
    if not base:
        return f"sqlite:///{tmp / f'{tag}.db'}"
    import psycopg

    name = f"leadbot_bench_{tag}_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(_admin_url(base), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base.rpartition('/')[0]}/{name}"


def _admin_url(base: str) -> str:
    return base.replace("postgresql+psycopg://", "postgresql://")


def _pg_totals(base: str, db_url: str) -> dict[str, int]:
    """Transactions and rows the database did for the whole run (read once the servers have
    exited: a backend reports its counts when it ends, before that they may lag by seconds)."""
    if not base:
        return {}
    import psycopg

    name = db_url.rpartition("/")[2]
    with psycopg.connect(_admin_url(base), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT xact_commit + xact_rollback, tup_returned, tup_fetched, tup_inserted + tup_updated + tup_deleted "
                           "FROM pg_stat_database WHERE datname = %s", (name,)).fetchone()
    if row is None:
        return {}
    return {"xacts": int(row[0]), "returned": int(row[1]), "fetched": int(row[2]), "written": int(row[3])}


def _drop_db(base: str, db_url: str) -> None:
    if not base:
        return
    import psycopg

    with psycopg.connect(_admin_url(base), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_url.rpartition("/")[2]}" WITH (FORCE)')


class FakeApiProcess:
    """bench/fake_wecom_api.py as a subprocess: its URL, its pid, and its counts at the end."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(HERE / "fake_wecom_api.py")], cwd=ROOT,
                                     stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http"):
            raise RuntimeError("fake WeCom API did not start")

    def stop(self) -> dict[str, int]:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else {}


def _request_bytes(port: int, query: str, body: bytes) -> bytes:
    head = (f"POST /callback/wecom?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("ascii") + body


@dataclass
class Drive:
    """What the load generator saw."""

    latencies_ms: list[float] = field(default_factory=list)
    acked: int = 0
    errors: int = 0
    elapsed: float = 0.0


async def _worker(port: int, work: list[bytes], out: Drive) -> None:
    """One keep-alive connection sending its share of requests one after another."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while work:
            request = work.pop()
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            close = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                lname = name.strip().lower()
                if lname == b"content-length":
                    length = int(value)
                elif lname == b"connection" and value.strip().lower() == b"close":
                    close = True
            if length:
                await reader.readexactly(length)
            out.latencies_ms.append((time.perf_counter() - t0) * 1000)
            if head[9:12] == b"200":
                out.acked += 1
            else:
                out.errors += 1
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


async def drive(servers: list[Server], requests: list[bytes], concurrency: int) -> Drive:
    """Send request i to server i mod N over ``concurrency`` connections, as fast as answered."""
    n = len(servers)
    queues = [[r for i, r in enumerate(requests) if i % n == k] for k in range(n)]
    for q in queues:
        q.reverse()  # pop() from the end sends them in order
    out = Drive()
    started = time.perf_counter()
    await asyncio.gather(*(_worker(servers[c % n].port, queues[c % n], out) for c in range(max(concurrency, n))))
    out.elapsed = time.perf_counter() - started
    return out


def _counts(engine: Engine) -> tuple[dict[str, int], dict[str, int]]:
    with engine.connect() as c:
        inbox = c.execute(select(col(InboxEvent.status), func.count()).group_by(col(InboxEvent.status))).all()
        outbox = c.execute(select(col(OutboxMessage.status), func.count()).group_by(col(OutboxMessage.status))).all()
    return {str(k): int(v) for k, v in inbox}, {str(k): int(v) for k, v in outbox}


async def _wait_handled(engine: Engine, timeout: float) -> dict[str, int]:
    """Poll until no inbox row is pending (or ``timeout``); the final inbox counts."""
    deadline = time.perf_counter() + timeout
    while True:
        inbox, _ = _counts(engine)
        if not inbox.get("pending", 0) or time.perf_counter() > deadline:
            return inbox
        await asyncio.sleep(0.1)


def _per(used_s: dict[str, float], n: int) -> dict[str, float]:
    """CPU ms per item."""
    return {k: 1000 * v / max(n, 1) for k, v in used_s.items()}


def _start_profilers(servers: list[Server], directory: Path, tag: str) -> list[tuple[subprocess.Popen[bytes], Path]]:
    if shutil.which("py-spy") is None:
        print("  (py-spy not installed: pip install py-spy)", flush=True)
        return []
    out = []
    for i, s in enumerate(servers):
        assert s.proc is not None
        path = directory / f"{tag}_srv{i}.raw"
        proc = subprocess.Popen(["py-spy", "record", "--pid", str(s.proc.pid), "--rate", "250", "--nonblocking", "--gil",
                                 "--format", "raw", "-o", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append((proc, path))
    return out


def _stop_profilers(profilers: list[tuple[subprocess.Popen[bytes], Path]]) -> list[Path]:
    # py-spy writes its file on SIGINT.
    for proc, _ in profilers:
        proc.send_signal(2)
    for proc, _ in profilers:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return [p for _, p in profilers if p.exists()]


@dataclass
class Result:
    procs: int
    requests: int
    drive: Drive
    window_cpu: dict[str, float]
    inbox_at_window_end: dict[str, int]
    rows: int
    handled_s: float | None = None
    drain_cpu: dict[str, float] = field(default_factory=dict)
    outbox_at_end: dict[str, int] = field(default_factory=dict)
    api: dict[str, int] = field(default_factory=dict)
    warm_srv_ms: float = 0.0
    pg_totals: dict[str, int] = field(default_factory=dict)
    profile: list[str] = field(default_factory=list)


async def run(procs: int, db_base: str, requests: int, concurrency: int, tmp: Path, *, drain_timeout: float,
              profile_dir: Path | None) -> Result:
    api = FakeApiProcess()
    db_url = _fresh_db(db_base, f"p{procs}", tmp)
    engine: Engine | None = None
    servers: list[Server] = []
    try:
        upgrade(db_url)
        for i in range(procs):
            port = free_port()
            servers.append(Server(write_config(tmp, db_url, api.url, port, f"s{procs}_{i}"), port, tmp / f"s{procs}_{i}.log"))
        cb = WeComCallbacks(SystemClock())  # type: ignore[arg-type]
        users = list(USERIDS.values())
        payload = []
        for i in range(requests):
            query, body = cb.encrypt(cb.text(users[i % len(users)], f"第{i}条：客户确认需求", msg_id=10_000_000 + i))
            payload.append(_request_bytes(servers[i % procs].port, query, body))
        warm = []
        for k, s in enumerate(servers):
            for j in range(WARM_UP):
                query, body = cb.encrypt(cb.text(users[j % len(users)], f"预热{k}-{j}：客户确认需求", msg_id=20_000_000 + k * 1000 + j))
                warm.append(_request_bytes(s.port, query, body))
        async with aiohttp.ClientSession() as http:
            for s in servers:
                s.start()
            for s in servers:
                await s.wait_ready(http, timeout=60)
        engine = create_engine(normalise_url(db_url))
        groups = {"gen": [os.getpid()], "srv": [s.proc.pid for s in servers if s.proc], "api": [api.proc.pid]}
        pg_db = db_url.rpartition("/")[2] if db_base else ""
        # A fresh process builds its lexicons (large compiled regexes) on the first event it
        # handles; measured separately so the window shows the steady state.
        cold = snapshot(groups, pg_db)
        w = await drive(servers, warm, len(servers))
        await _wait_handled(engine, 30.0)
        await asyncio.sleep(0.5)
        warm_cpu = used(cold, snapshot(groups, pg_db))
        profilers = _start_profilers(servers, profile_dir, f"p{procs}_window") if profile_dir else []
        if profilers:
            await asyncio.sleep(1.0)  # py-spy attaches
        before: Snapshot = snapshot(groups, pg_db)
        d = await drive(servers, payload, concurrency)
        window_end = snapshot(groups, pg_db)
        paths = _stop_profilers(profilers)
        inbox_now, _ = _counts(engine)
        res = Result(procs, requests, d, used(before, window_end), inbox_now, sum(inbox_now.values()) - w.acked)
        res.warm_srv_ms = 1000 * warm_cpu["srv"] / procs
        if paths:
            res.profile = ["  profile of the servers, callback window:"] + pyspy_summary.report(pyspy_summary.load(paths), top=12)
        drain_profilers = _start_profilers(servers, profile_dir, f"p{procs}_drain") if profile_dir and drain_timeout > 0 else []
        if drain_timeout > 0:
            # The window's own CPU stays in ``before``..``window_end``; the drain figure runs from
            # the start, so it is the whole cost of taking and handling every event.
            deadline = time.perf_counter() + drain_timeout
            inbox_now = await _wait_handled(engine, drain_timeout)
            drained = snapshot(groups, pg_db)
            handled = inbox_now.get("done", 0) + inbox_now.get("failed", 0) - WARM_UP * procs
            total_s = d.elapsed + (time.perf_counter() - (deadline - drain_timeout))
            res.handled_s = handled / total_s if not inbox_now.get("pending", 0) else None
            res.drain_cpu = _per(used(before, drained), handled)
            _, res.outbox_at_end = _counts(engine)
            paths = _stop_profilers(drain_profilers)
            if paths:
                res.profile += ["  profile of the servers, window + drain:"] + pyspy_summary.report(pyspy_summary.load(paths), top=12)
    finally:
        for s in servers:
            s.stop()
        res_api = api.stop()
        if engine is not None:
            engine.dispose()
        await asyncio.sleep(0.5)  # exited backends' statistics reach pg_stat_database
        pg_totals = _pg_totals(db_base, db_url)
        _drop_db(db_base, db_url)
    res.api = res_api
    res.pg_totals = pg_totals
    return res


def _fmt(cpu_ms: dict[str, float], keys: tuple[str, ...]) -> str:
    return " ".join(f"{k} {cpu_ms.get(k, 0.0):.2f}" for k in keys)


def print_result(r: Result) -> None:
    lat = sorted(r.drive.latencies_ms)
    rps = r.requests / r.drive.elapsed
    p50 = statistics.median(lat)
    p99 = lat[max(0, int(len(lat) * 0.99) - 1)]
    per = _per(r.window_cpu, r.requests)
    ok = "ok" if r.rows == r.drive.acked == r.requests else f"MISMATCH acked {r.drive.acked} rows {r.rows} errors {r.drive.errors}"
    print(f"procs {r.procs}: {rps:.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, cpu ms/req {_fmt(per, ('gen', 'srv', 'pg'))}, inbox {ok}",
          flush=True)
    busy = sum(v for k, v in r.window_cpu.items() if k != "idle")
    print(f"  window {r.drive.elapsed:.2f} s: cpu ms/req api {per['api']:.2f} other {per['other']:.2f} idle {per['idle']:.2f}; "
          f"cores busy {busy / r.drive.elapsed:.2f} (ours {(busy - r.window_cpu['other']) / r.drive.elapsed:.2f}); "
          f"events handled meanwhile {r.inbox_at_window_end.get('done', 0) - WARM_UP * r.procs}; "
          f"warm-up cpu per server {r.warm_srv_ms:.0f} ms", flush=True)
    if r.drain_cpu:
        rate = f"{r.handled_s:.0f} events/s" if r.handled_s else "NOT drained in time"
        print(f"  handled end to end: {rate}, cpu ms/event {_fmt(r.drain_cpu, ('gen', 'srv', 'pg', 'api', 'other', 'idle'))}; "
              f"outbox {r.outbox_at_end}; fake WeCom accepted {r.api.get('accepted', '?')} silently dropped {r.api.get('dropped', '?')}",
              flush=True)
    if r.pg_totals:
        events = r.requests + WARM_UP * r.procs
        t = r.pg_totals
        print(f"  database, whole run per event: {t['xacts'] / events:.1f} transactions, {t['returned'] / events:.0f} rows scanned, "
              f"{t['fetched'] / events:.0f} fetched, {t['written'] / events:.1f} written", flush=True)
    for line in r.profile:
        print(line, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="", help="PostgreSQL server URL (a fresh database is created and dropped per run); default SQLite")
    ap.add_argument("--procs", default="1,2,4")
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--drain", action="store_true", help="also wait until every event is handled (minutes) and report that rate")
    ap.add_argument("--drain-timeout", type=float, default=300.0, help="seconds to wait for every event to be handled")
    ap.add_argument("--profile", type=Path, default=None, help="record servers with py-spy into this directory")
    args = ap.parse_args()
    kind = "PostgreSQL" if args.db else "SQLite"
    print(f"scale-out {kind}, {os.cpu_count()} cores, {args.requests} callbacks, {args.concurrency} connections", flush=True)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.procs.split(",")):
            r = asyncio.run(run(n, args.db, args.requests, args.concurrency, Path(tmp),
                                drain_timeout=args.drain_timeout if args.drain else 0.0, profile_dir=args.profile))
            print_result(r)


if __name__ == "__main__":
    main()
