"""Daily housekeeping over a large backlog (a figure, not a test).

Run: python3 bench/bench_prune.py [--rows 200000] [--batch 1000] [--db URL]
Seeds a year of alert-ledger, inbox and outbox rows (half of them past retention), then
runs the housekeeping tick by tick as the scheduler would and prints, per table, the rows
deleted, the rate, and the longest single transaction (on SQLite: how long the write lock
was held at a stretch, which is what the inbox would wait at worst). Also prints what a
tick costs when today's pruning is already done.

Target: no transaction over 100 ms with the default batch (500 rows) on SQLite.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event, func, insert, select

from nlp.calendar import SHANGHAI
from scheduler import housekeeping
from scheduler.config import ScanSettings
from store.db import Database, upgrade
from store.models import InboxEvent, OutboxMessage
from store.models_schedule import AlertRecord

NOW = datetime(2026, 11, 2, 3, 30, tzinfo=SHANGHAI)


def seed(db: Database, rows: int) -> None:
    """``rows`` per table over the past year, oldest first (ids follow time, as in production)."""
    span = timedelta(days=365)
    step = span / rows
    start = NOW - span
    chunk = 5000
    for first in range(0, rows, chunk):
        alerts, inbox, outbox = [], [], []
        for i in range(first, min(rows, first + chunk)):
            at = start + step * i
            alerts.append({"key": f"bench:{i}", "kind": "first_touch", "member_id": f"rep{i % 60}", "priority": "P2",
                           "subject": f"lead:{i}", "summary": "恒锐精密 尚无首通记录", "stake_fen": 50_000_000,
                           "status": "queued", "deliver_at": at, "created_at": at})
            inbox.append({"platform": "wecom", "event_key": f"u{i % 60}:{i}", "payload": '{"text": "张总确认下周看产线"}',
                          "status": "done", "attempts": 0, "received_at": at, "processed_at": at})
            outbox.append({"platform": "wecom", "recipient": f"u{i % 60}", "member_id": f"rep{i % 60}", "kind": "text",
                           "payload": '{"text": "好的，已记录跟进。"}', "dedupe_key": f"bench:{i}", "status": "sent",
                           "attempts": 1, "next_attempt_at": at, "created_at": at, "sent_at": at})
        with db.session() as s:
            s.execute(insert(AlertRecord), alerts)
            s.execute(insert(InboxEvent), inbox)
            s.execute(insert(OutboxMessage), outbox)
            s.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows per table")
    parser.add_argument("--batch", type=int, default=ScanSettings().prune_batch)
    parser.add_argument("--db", default="", help="database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    url = args.db or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench-prune.db'}"
    upgrade(url)
    db = Database(url)
    settings = replace(ScanSettings(), prune_batch=args.batch)
    try:
        t0 = time.perf_counter()
        seed(db, args.rows)
        print(f"seeded {args.rows} rows per table in {time.perf_counter() - t0:.1f} s ({db.engine.dialect.name})")
        durations: list[float] = []
        began: list[float] = []

        @event.listens_for(db.engine, "begin")
        def _begin(_conn: object) -> None:
            began.append(time.perf_counter())

        @event.listens_for(db.engine, "commit")
        def _commit(_conn: object) -> None:
            if began:
                durations.append(time.perf_counter() - began.pop())

        ticks, total, t0 = 0, 0, time.perf_counter()
        while True:
            ticks += 1
            deleted = housekeeping.run_housekeeping(db, NOW + timedelta(minutes=ticks), settings)
            total += deleted
            if deleted == 0:
                break
        elapsed = time.perf_counter() - t0
        with db.session() as s:
            left = {m.__name__: s.execute(select(func.count()).select_from(m)).scalar_one() for m in (AlertRecord, InboxEvent, OutboxMessage)}
        ms = sorted(d * 1000 for d in durations)
        print(f"prune: {total} rows deleted in {elapsed:.2f} s over {ticks} ticks ({total / elapsed:,.0f} rows/s), batch {args.batch}")
        print(f"prune: transaction p50 {statistics.median(ms):.1f} ms, p99 {ms[int(len(ms) * 0.99)]:.1f} ms, max {ms[-1]:.1f} ms ({len(ms)} transactions)")
        print(f"prune: rows left {left} (retention alert {settings.alert_retention.days} d, inbox {settings.inbox_retention.days} d, "
              f"outbox {settings.outbox_retention.days} d)")
        durations.clear()
        t0 = time.perf_counter()
        for i in range(100):
            housekeeping.run_housekeeping(db, NOW + timedelta(hours=2, minutes=i), settings)
        print(f"prune: a tick with today's pruning done costs {(time.perf_counter() - t0) * 10:.2f} ms")
        durations.clear()
        t0 = time.perf_counter()
        housekeeping.run_housekeeping(db, NOW + timedelta(days=1), settings)
        print(f"prune: the next day's pass over an already pruned table: {(time.perf_counter() - t0) * 1000:.1f} ms, "
              f"longest transaction {max(durations) * 1000:.1f} ms")
    finally:
        db.close()


if __name__ == "__main__":
    main()
