"""Scheduler tick cost over a large table of open leads.

    python3 bench/bench_scan.py [--leads 1000000] [--due 1000,10000] [--url sqlite:///…] [--extra-indexes]

1. Steady state: one full tick (every scan) over N open leads when nothing is due
   (target ≤ 20 ms). Reported as the median of repeated ticks, and per scan.
2. Due work: D leads past their accept deadline (re-assigned, one manager card), and
   D accepted leads past their first-touch deadline, for each D in --due: the time should
   grow linearly with D, not with N.

Rows are bulk-inserted with plain SQL (the bench measures scans, not intake).
``--extra-indexes`` adds the indexes the scans would like on ``lead`` (a composite
``(status, accept_due_at)`` and ``accepted_at``) to show their effect.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text
from sqlmodel import Session

from handlers.assignment import AssignmentRules
from handlers.context import FakeClock, HandlerContext, Outgoing
from nlp.calendar import SHANGHAI
from scheduler.config import ScanSettings
from scheduler.scans import SCANS, run_all, run_scan
from store.db import Database, upgrade
from store.models import Member, Region

NOW = datetime(2026, 3, 10, 10, 0, tzinfo=SHANGHAI)
REPS = [f"rep{i:02d}" for i in range(40)]


def _utc(ts: datetime) -> str:
    # SQLAlchemy's SQLite text format (always with microseconds): SQLite compares these as text.
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def seed(db: Database, n: int, extra_indexes: bool) -> None:
    """N leads: mostly accepted and recently touched, some assigned with future deadlines."""
    with db.session() as s:
        s.add(Region(name="华东", provinces='["江苏"]', manager_id="mgr"))
        s.add(Member(id="mgr", name="经理", role="manager", region="华东"))
        for rep in REPS:
            s.add(Member(id=rep, name=rep, role="rep", region="华东", manager_id="mgr", daily_capacity=100000))
        s.commit()
    rng = random.Random(7)
    cols = ("company, contact_name, phone, source, note, explanation, status, owner_id, region, province, tier, budget_fen, "
            "created_at, assigned_at, accept_due_at, accepted_at, last_interaction_at, updated_at")
    sql = text(f"INSERT INTO lead ({cols}) VALUES (:company, '', '', '官网表单', '', '', :status, :owner, '华东', '江苏', :tier, "
               ":budget, :created, :created, :due, :accepted, :touched, :created)")
    started = time.perf_counter()
    batch: list[dict[str, object]] = []
    with db.engine.begin() as conn:
        for i in range(n):
            created = NOW - timedelta(days=60 + rng.random() * 300)
            assigned = i % 50 == 0
            batch.append({
                "company": f"公司{i}", "status": "assigned" if assigned else "accepted", "owner": REPS[i % len(REPS)],
                "tier": "ABC"[i % 3], "budget": rng.randrange(1, 200) * 1_000_000,
                "created": _utc(created),
                # Open cards are due later today; accepted leads keep their old deadline.
                "due": _utc(NOW + timedelta(hours=1 + rng.random() * 5)) if assigned else _utc(created + timedelta(hours=2)),
                "accepted": None if assigned else _utc(created + timedelta(hours=1)),
                "touched": _utc(NOW - timedelta(hours=rng.random() * 40)),
            })
            if len(batch) == 20_000:
                conn.execute(sql, batch)
                batch.clear()
        if batch:
            conn.execute(sql, batch)
        if extra_indexes:
            conn.execute(text("CREATE INDEX IF NOT EXISTS ix_bench_lead_status_due ON lead (status, accept_due_at)"))
            conn.execute(text("CREATE INDEX IF NOT EXISTS ix_bench_lead_accepted_at ON lead (accepted_at)"))
        if db.is_sqlite:
            conn.execute(text("ANALYZE"))
    print(f"seeded {n:,} leads in {time.perf_counter() - started:.1f} s")


def use_indexed_capacity_count() -> None:
    """Swap in a handlers.leads.org_snapshot that counts today's assignments through the
    ``(assigned_at, owner_id)`` index. SQLite's planner otherwise walks ``ix_lead_owner_id``
    for the GROUP BY, i.e. every lead, once per re-assignment. Shows the proposed fix; the
    rest is the original function's logic."""
    import json
    from collections import Counter

    from sqlalchemy import func, select

    from handlers import leads
    from handlers.assignment import OrgSnapshot, Rep
    from handlers.assignment import Region as EngineRegion
    from store.models import Lead, Opportunity

    def fast(session: Session, rules: AssignmentRules, now: datetime) -> OrgSnapshot:
        start = now.astimezone(SHANGHAI).replace(hour=0, minute=0, second=0, microsecond=0)
        received = Counter(session.execute(select(Lead.owner_id).where(Lead.assigned_at >= start)).scalars())
        won = dict(session.execute(
            select(Opportunity.owner_id, func.coalesce(func.sum(Opportunity.amount_fen), 0))
            .where(Opportunity.stage == leads.WON_STAGE, Opportunity.updated_at >= now - timedelta(days=90))
            .group_by(Opportunity.owner_id)
        ).all())
        regions = tuple(EngineRegion(name=r.name, provinces=tuple(json.loads(r.provinces)), manager=r.manager_id)
                        for r in session.execute(select(Region).order_by(Region.name)).scalars())
        reps = tuple(
            Rep(id=m.id, name=m.name, region=m.region, active=m.active, on_leave=m.on_leave, daily_capacity=m.daily_capacity,
                received_today=int(received.get(m.id, 0)), won_amount_90d_fen=int(won.get(m.id, 0) or 0), joined_at=m.joined_at)
            for m in session.execute(select(Member).where(Member.role == "rep").order_by(Member.id)).scalars()
        )
        return OrgSnapshot(regions=regions, groups=rules.groups, reps=reps)

    leads.org_snapshot = fast  # type: ignore[assignment]


class LockWatch:
    """The longest write transaction since the last reset (SQLite holds its lock that long)."""

    def __init__(self, db: Database) -> None:
        from sqlalchemy import event

        self.longest = 0.0
        self._started: dict[int, float] = {}
        event.listen(db.engine, "begin", lambda conn: self._started.__setitem__(id(conn), time.perf_counter()))
        event.listen(db.engine, "commit", self._done)
        event.listen(db.engine, "rollback", self._done)

    def _done(self, conn: object) -> None:
        start = self._started.pop(id(conn), None)
        if start is not None:
            self.longest = max(self.longest, (time.perf_counter() - start) * 1000)

    def take(self) -> float:
        longest, self.longest = self.longest, 0.0
        return longest


def _decided(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM alert")).scalar_one())


def make_due(db: Database, count: int, at: datetime) -> None:
    """``count`` assigned leads past their accept deadline."""
    with db.engine.begin() as conn:
        conn.execute(text(
            "UPDATE lead SET accept_due_at = :due WHERE id IN (SELECT id FROM lead WHERE status = 'assigned' "
            "AND accept_due_at > :at ORDER BY id LIMIT :n)"), {"due": _utc(at - timedelta(minutes=1)), "at": _utc(at), "n": count})


def make_due_first_touch(db: Database, count: int, at: datetime) -> None:
    """``count`` accepted leads past their first-touch deadline without a touch."""
    with db.engine.begin() as conn:
        conn.execute(text(
            "UPDATE lead SET accepted_at = :acc, last_interaction_at = :acc WHERE id IN (SELECT id FROM lead WHERE status = 'accepted' "
            "AND accepted_at < :old ORDER BY id DESC LIMIT :n)"),
            {"acc": _utc(at - timedelta(hours=30)), "old": _utc(at - timedelta(days=40)), "n": count})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--due", default="1000,10000", help="first-touch deadlines due at once")
    parser.add_argument("--reassign", default="100,1000", help="lead cards past their accept deadline at once")
    parser.add_argument("--ticks", type=int, default=30)
    parser.add_argument("--url", default="")
    parser.add_argument("--extra-indexes", action="store_true")
    parser.add_argument("--indexed-capacity-count", action="store_true",
                        help="re-assign with the proposed org_snapshot fix (see use_indexed_capacity_count)")
    args = parser.parse_args()
    if args.indexed_capacity_count:
        use_indexed_capacity_count()
    tmp = tempfile.mkdtemp(prefix="leadbot-bench-")
    url = args.url or f"sqlite:///{os.path.join(tmp, 'bench.db')}"
    upgrade(url)
    db = Database(url)
    seed(db, args.leads, args.extra_indexes)
    clock = FakeClock(NOW)
    ctx = HandlerContext(clock=clock, secret="bench-secret-0123456789", rules=AssignmentRules(accept_within_hours=2))
    settings = ScanSettings()
    queued = [0]

    def enqueue(session: Session, out: list[Outgoing], when: datetime) -> None:
        queued[0] += len(out)  # the bench measures the scans; the outbox is the gateway's cost

    # The first tick of the day sends 今日待办 and the weekly report and settles the cursors.
    watch = LockWatch(db)
    t0 = time.perf_counter()
    run_all(db, ctx, NOW - timedelta(minutes=1), enqueue, settings)
    print(f"first tick of the day (今日待办 for {len(REPS)} reps, weekly report, cursors): "
          f"{(time.perf_counter() - t0) * 1000:.0f} ms, longest transaction {watch.take():.0f} ms")

    samples, per_scan = [], {name: [] for name, _ in SCANS}
    for i in range(args.ticks):
        at = NOW + timedelta(seconds=i)
        clock.set(at)
        t = time.perf_counter()
        counts = run_all(db, ctx, at, enqueue, settings)
        samples.append((time.perf_counter() - t) * 1000)
        assert not any(counts.values()), counts
        for name, scan in SCANS:
            t = time.perf_counter()
            run_scan(db, name, scan, ctx, at, enqueue, settings)
            per_scan[name].append((time.perf_counter() - t) * 1000)
    print(f"steady tick over {args.leads:,} open leads, nothing due: median {statistics.median(samples):.2f} ms, "
          f"p90 {sorted(samples)[int(len(samples) * 0.9)]:.2f} ms (target ≤ 20 ms)")
    print("  per scan (median ms): " + ", ".join(f"{n} {statistics.median(v):.2f}" for n, v in per_scan.items()))

    at = NOW + timedelta(minutes=5)
    watch.take()
    plan = [("first_touch", int(x)) for x in args.due.split(",") if x]
    plan += [("unaccepted", int(x)) for x in args.reassign.split(",") if x]
    for name, count in plan:
        (make_due if name == "unaccepted" else make_due_first_touch)(db, count, at)
        clock.set(at)
        queued[0] = 0
        before = _decided(db)
        t = time.perf_counter()
        counts = {name: run_scan(db, name, dict(SCANS)[name], ctx, at, enqueue, settings)}
        ms = (time.perf_counter() - t) * 1000
        print(f"{name:>12} with {count:>6,} due: {ms:8.0f} ms ({ms * 1000 / count:6.0f} µs/row, "
              f"{_decided(db) - before:,} alerts decided, {queued[0]:,} messages queued; "
              f"longest transaction {watch.take():.0f} ms)")
        assert counts[name] == queued[0]
        at += timedelta(minutes=5)
    db.close()
    if not args.url:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
